"""`edgeped release | install | rollback | status | keygen | trust`: release bundles, the board's
A/B slots and the signatures it accepts."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgeped.cli._common import console

MAX_WAIT_S = 3600.0  # device/agent.py MAX_WAIT_S


def _check_wait(ctx, param, value: float) -> float:
    import math

    if not (math.isfinite(value) and 0.0 <= value <= MAX_WAIT_S):
        raise click.BadParameter(
            f"must be a number of seconds from 0 to {MAX_WAIT_S:g}, got {value}"
        )
    return value


def _device_options(func, wait: bool = True):
    """--host, --root, --targets, --core (and --wait), shared by the commands that reach a board."""
    options = [
        click.option(
            "--host",
            required=True,
            help="target: local, arm64-emu or a board in targets.toml (e.g. ecu-dev)",
        ),
        click.option(
            "--root",
            help="device root on the target (required for local and arm64-emu) "
            "[default on an SSH board: <workdir>/device]",
        ),
        click.option(
            "--targets",
            "targets_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="targets.toml [default: $EDGEPED_TARGETS or ./targets.toml]",
        ),
        click.option("--core", help="emulated core (a53, a72, a76) for --host arm64-emu"),
    ]
    if wait:
        options.append(
            click.option(
                "--wait",
                "wait_s",
                type=float,
                default=0.0,
                show_default=True,
                callback=_check_wait,
                help="seconds (0 to 3600) to wait for another command on the board to "
                "finish (else refused)",
            )
        )
    for option in reversed(options):
        func = option(func)
    return func


def _device(host, root, targets_file, core):
    from edgeped.rollout.agent_client import DeviceRoot, default_root
    from edgeped.targets import resolve_target

    target = resolve_target(host, targets_file, core)
    return DeviceRoot(target, default_root(target, root))


def _progress(message: str) -> None:
    console().print(f"[dim]• {message}[/dim]")


def _render(reply, *, show_health: bool = True) -> None:
    from rich.console import Console

    from edgeped.rollout import device_render as r

    out = Console(width=max(Console().width, 140))
    result = reply.result
    if show_health and result.get("health_before"):
        out.print(
            r.health_table(result["health_before"], "health before the switch (running model)")
        )
    if show_health and result.get("health"):
        out.print(r.health_table(result["health"], "health after the switch"))
    for line in result.get("recovered") or []:
        click.echo(f"recovered: {line}")
    if result.get("state"):
        out.print(r.slots_table(result["state"]))
    if "store" in result:
        out.print(r.store_table(result["store"], result["state"]))
    if result.get("history"):
        click.echo("history:")
        for line in r.history_lines(result["history"]):
            click.echo(f"  {line}")
    slots = (result.get("state") or {}).get("slots", {})
    for line in r.waiver_lines([s.get("release") for s in slots.values()]):
        click.secho(line, fg="yellow")
    line, warn = trust_line(result)
    click.secho(line, fg="yellow" if warn else None)
    click.echo(r.reply_headline(reply))


def trust_line(result: dict) -> tuple[str, bool]:
    """The board's signature policy, shown by every command that reaches it."""
    trust = result.get("trust") or {}
    keys = ", ".join(trust.get("trusted_keys") or []) or "none"
    slots = (result.get("state") or {}).get("slots", {})
    unsigned = sorted(
        f"slot {name}" for name, s in slots.items()
        if s.get("sha256") and not (s.get("signature") or {}).get("verified")
    )  # fmt: skip
    if trust.get("mode") == "signatures_required":
        verifier = trust.get("verifier") or "NO VERIFIER: every install is refused"
        return f"signatures: required (trusted keys: {keys}; {verifier})", not trust.get("verifier")
    if trust.get("mode") == "unsigned_allowed":
        held = f"; unverified: {', '.join(unsigned)}" if unsigned else ""
        return (
            f"signatures: UNSIGNED BUNDLES ALLOWED on this board (trusted keys: {keys}){held}",
            True,
        )
    return f"signatures: board trust config unreadable: {trust.get('problem', '?')}", True


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", help="model in RUN_DIR [default: the one gate.json judged]")
@click.option(
    "--waive",
    "waive",
    multiple=True,
    metavar="BUDGET",
    help="release despite this non-passed budget (repeat; each needs a --reason)",
)
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    metavar="TEXT",
    help="why, for the --waive at the same position (recorded in the release)",
)
@click.option(
    "--crops",
    type=click.Path(dir_okay=False, path_type=Path),
    help="golden crops .npz (images uint8 [N,128,64,3], metadata [N,6], eval_decision [N]) "
    "[default: 16 real test crops of the run, both classes, near the threshold]",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="the dataset the run was evaluated on, for the golden crops [default: the one "
    "metrics.json records]",
)
@click.option(
    "--baseline",
    type=click.Path(path_type=Path),
    help="the bundle (or its release.json) this release replaces",
)
@click.option(
    "--gate",
    "gate_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="gate verdict JSON [default: RUN_DIR/gate.json]",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="bundle directory [default: RUN_DIR/release-MODEL]; an existing folder is "
    "replaced only if it is a release bundle",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="replace an older bundle at --out that carries no output marker (never a run "
    "directory, dataset or other folder)",
)
@click.option(
    "--sign",
    "sign_key",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="KEY",
    help="sign the release with this Ed25519 private key (edgeped keygen); boards that "
    "require signatures refuse unsigned bundles",
)
def release(
    run_dir, model, waive, reasons, crops, data_dir, baseline, gate_file, out, overwrite, sign_key
) -> None:
    """Write a release bundle for a gated model: model, card, golden outputs, release.json.

    Refused unless the gate verdict passed, or every non-passed budget is waived with
    --waive BUDGET --reason TEXT; waivers are recorded and shown by every later command.
    """
    from edgeped.errors import EdgepedError
    from edgeped.rollout import device_render
    from edgeped.rollout.bundle import (
        ReleaseOptions,
        Waiver,
        plan_release,
        read_bundle,
        write_bundle,
    )

    if len(waive) != len(reasons):
        raise EdgepedError(
            f"{len(waive)} --waive but {len(reasons)} --reason",
            "give one --reason TEXT after each --waive BUDGET",
        )
    options = ReleaseOptions(
        model=model,
        waivers=tuple(Waiver(b, t) for b, t in zip(waive, reasons, strict=True)),
        crops=crops,
        data_dir=data_dir,
        sign_key=sign_key,
        baseline=baseline,
        gate_file=gate_file,
    )
    plan = plan_release(run_dir, options)
    _progress("computing golden outputs on the host")
    path = write_bundle(
        plan,
        out or Path(run_dir) / f"release-{plan.manifest['model']['name']}",
        # The default folder is edgeped's own: an older bundle there (no marker yet) is
        # replaced; anything that is not a bundle is still refused.
        overwrite=overwrite or out is None,
    )
    for line in device_render.manifest_lines(read_bundle(path)):
        click.secho(line, fg="yellow" if line.startswith("WAIVED") else None)
    click.echo(f"wrote {path}")


@click.command()
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@_device_options
@click.option(
    "--attempts",
    type=int,
    default=3,
    show_default=True,
    help="health check attempts after the switch",
)
@click.option(
    "--allow-downgrade",
    is_flag=True,
    help="install a signed release older than the newest the board has run (else refused "
    "as a replay)",
)
def install(bundle, host, root, targets_file, core, wait_s, attempts, allow_downgrade) -> None:
    """Install BUNDLE on a board: store, verify, check, switch, check again, keep or roll back.

    Exit 0 installed (or already active), 1 the health check after the switch failed
    and the board rolled back by itself, 64 a bad option, 65 refused or a problem
    (nothing switched: damaged or unsigned bundle, busy board, disk full).
    """
    from edgeped.rollout import agent_client

    device = _device(host, root, targets_file, core)
    reply = agent_client.install(
        device,
        bundle,
        attempts=attempts,
        wait_s=wait_s,
        allow_downgrade=allow_downgrade,
        progress=_progress,
    )
    _render(reply)
    for line in reply.result.get("warnings") or []:
        click.secho(f"warning: {line}", fg="yellow")
    sys.exit(0 if reply.exit_code == 0 else 1)


@click.command()
@_device_options
@click.option(
    "--to",
    "to",
    metavar="SHA256",
    help="a stored release: a unique prefix of its sha256 or of its model's [default: previous]",
)
@click.option("--reason", help="why, for the board's history")
def rollback(host, root, targets_file, core, wait_s, to, reason) -> None:
    """Switch the board back to the previous model, or to a stored one whose copy verifies."""
    from edgeped.rollout import agent_client

    device = _device(host, root, targets_file, core)
    reply = agent_client.rollback(device, to, reason=reason, wait_s=wait_s, progress=_progress)
    _render(reply)


@click.command()
@lambda func: _device_options(func, wait=False)
@click.option("--history", "history", type=int, default=20, show_default=True, help="events shown")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="write the reply as JSON ('-' for stdout, instead of the tables)",
)
def status(host, root, targets_file, core, history, json_out) -> None:
    """Show the board's slots, their states and attempts left, the store and the history."""
    from edgeped.cli._common import write_json_or_stdout
    from edgeped.rollout import agent_client

    # Status never waits: while another command holds the lock it reads without recovering.
    device = _device(host, root, targets_file, core)
    reply = agent_client.status(device, history, progress=_progress)
    if json_out:
        write_json_or_stdout(str(json_out), reply.result)
    if str(json_out) != "-":
        _render(reply)


@click.command()
@click.argument("out_prefix", type=click.Path(dir_okay=False, path_type=Path))
def keygen(out_prefix) -> None:
    """Make an Ed25519 signing key pair: OUT_PREFIX.key (private, 0600) and OUT_PREFIX.pub.

    Sign releases with `edgeped release RUN --sign OUT_PREFIX.key`; make a board trust
    them with `edgeped trust --host HOST --key OUT_PREFIX.pub` (docs/rollout.md). Existing
    files are never overwritten.
    """
    from edgeped.rollout.signing import generate_keypair

    private, public, kid = generate_keypair(out_prefix)
    click.echo(f"wrote {private} (private, mode 0600: keep it off the boards and out of git)")
    click.echo(f"wrote {public} (key id {kid}); make a board trust it with:")
    click.echo(f"  edgeped trust --host HOST [--root DIR] --key {public}")
    click.echo("(a read-only board image lists the line of the .pub in agent.json instead)")


@click.command()
@_device_options
@click.option(
    "--key",
    "key_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PUB",
    help="trust the public key in this .pub file from `edgeped keygen` (repeat for more)",
)
@click.option(
    "--allow-unsigned/--require-signed",
    "allow_unsigned",
    default=None,
    help="install unsigned bundles too (development boards; every reply then says so), "
    "or only bundles signed by a trusted key [default: the board's setting; a board "
    "without agent.json requires signatures]",
)
@click.option(
    "--replace",
    is_flag=True,
    help="the --key files become the only trusted keys (drops every other; also rewrites "
    "an unreadable agent.json) [default: add them to the keys the board trusts]",
)
@click.option(
    "--show",
    is_flag=True,
    help="only show what the board trusts (also what happens with no --key, "
    "--allow-unsigned/--require-signed or --replace)",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="write the agent's reply as JSON ('-' for stdout, instead of the lines)",
)
def trust(
    host, root, targets_file, core, wait_s, key_files, allow_unsigned, replace, show, json_out
) -> None:
    """Show or change which release signatures a board accepts: its agent.json.

    \b
    add a key (the others stay):
      edgeped trust --host ecu-dev --key keys/fleet.pub
    trust only this key (rotation, a leaked key):
      edgeped trust --host ecu-dev --key keys/new.pub --replace
    a development board that installs unsigned bundles too:
      edgeped trust --host local --root /tmp/board --allow-unsigned
    what the board trusts now:
      edgeped trust --host ecu-dev --show

    Every .pub is checked before anything reaches the board; the board's agent merges
    the change and writes agent.json itself (temp file, rename, under its lock). A config
    that trusts no key while requiring signatures would refuse every install: it is
    refused, nothing is written. Exit 0 written, unchanged or shown; 64 a bad option;
    65 a bad .pub, a lockout refused, an unreadable agent.json (pass --replace) or a
    busy board.
    """
    from edgeped.cli._common import write_json_or_stdout
    from edgeped.errors import EdgepedError, ExitCode
    from edgeped.rollout import agent_client, device_render
    from edgeped.rollout.trust import TrustChange, read_trusted_keys

    if show and (key_files or allow_unsigned is not None or replace):
        raise EdgepedError(
            "--show only shows the board's trust; it cannot go with --key, "
            "--allow-unsigned/--require-signed or --replace",
            "run the change without --show (it prints the trust afterwards)",
            exit_code=ExitCode.USAGE,
        )
    change = TrustChange(read_trusted_keys(key_files), allow_unsigned, replace)
    device = _device(host, root, targets_file, core)
    reply = agent_client.trust(device, change, wait_s=wait_s, progress=_progress)
    if json_out:
        write_json_or_stdout(str(json_out), reply.result)
    if str(json_out) == "-":
        return
    for line in device_render.trust_lines(reply):
        click.echo(line)
    line, warn = trust_line(reply.result)
    click.secho(line, fg="yellow" if warn else None)
    click.echo(device_render.reply_headline(reply))
