"""`edgeped profile`: where a model's instructions (or time) go, one row per op."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgeped.cli._common import console
from edgeped.errors import ExitCode


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--target",
    "target_name",
    default="arm64-emu",
    show_default=True,
    help="arm64-emu (exact instructions per op on each core), local, or an SSH target "
    "in targets.toml (time per op)",
)
@click.option(
    "--core",
    "cores",
    multiple=True,
    help="an emulated core (a53, a72, a76); repeatable [default: all three]",
)
@click.option(
    "--targets",
    "targets_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="targets.toml [default: $EDGEPED_TARGETS, else ./targets.toml]",
)
@click.option(
    "--crops",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=".npz whose first crop feeds the model [default: a seeded random crop]",
)
@click.option(
    "--preprocess",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="metadata mean/std JSON [default: the model card's preprocessing]",
)
@click.option("--insn-runs", default=3, show_default=True, help="counted invokes per prefix")
@click.option("--runs", default=200, show_default=True, help="timed invokes per prefix (timed)")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="folder for the .json/.md/.png [default: profile/ beside the model]",
)
@click.option("--name", help="file name stem of the outputs [default: <model>.<target>]")
def profile(
    model, target_name, cores, targets_file, crops, preprocess, insn_runs, runs, out, name
) -> None:
    """Profile MODEL (a .tflite, or a RUN_DIR's shipped model) per op on a target.

    One row per op: type, shapes, MACs, the instructions of the op on each emulated core
    (the model cut after each op, exact counts), MAC per instruction against the core's
    int8 limit (a76 sdot 16; a53/a72 8), the share of the invoke, and flags for ops far
    below the limit. Writes JSON, Markdown and a PNG bar chart; exits 1 when the per-op
    costs do not add up to the whole invoke within 2%.
    """
    from edgeped.profile.run import ProfileOptions, profile_model, resolve_model

    options = ProfileOptions(
        cores=tuple(c.strip() for v in cores for c in v.split(",") if c.strip())
        or ("a53", "a72", "a76"),
        insn_runs=insn_runs,
        timed_runs=runs,
    )
    con = console()
    result = profile_model(
        model,
        target_name,
        options,
        targets_file=targets_file,
        crops=crops,
        preprocess=preprocess,
        progress=lambda msg: con.print(f"[dim]• {msg}[/dim]"),
    )
    path = resolve_model(model)
    stem = (out or path.parent / "profile") / (name or f"{path.stem}.{target_name}")
    from edgeped.profile.render import save as save_report

    for written in save_report(result, stem):
        click.echo(f"wrote {written}")
    for where, s in result.summary().items():
        extra = (
            f", {s['mac_per_insn']:.2f} MAC/instr (limit {s['limit_mac_per_insn']:g})"
            if s["metric"] == "instructions"
            else ""
        )
        click.echo(
            f"{where}: whole {s['whole']:,.0f} {s['metric']}{extra}; ops sum to "
            f"{s['sum_over_whole']:.4f} of it; {len(s['flagged_ops'])} op(s) flagged"
        )
    sys.exit(int(ExitCode.OK if result.sums_to_whole else ExitCode.FAILED))
