"""`edgeped bench` and `edgeped deploy`: run a model on a target and record what it costs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgeped.cli._common import console, overwrite_option, stdout_console
from edgeped.errors import EdgepedError, ExitCode


def _bench_options(**kw):
    """BenchOptions from CLI values; emulated targets default to fewer timed runs."""
    from edgeped.targets import BenchOptions

    emulated = kw.pop("emulated")
    runs, min_seconds = kw.pop("runs"), kw.pop("min_seconds")
    pin = kw.pop("pin")
    try:
        return BenchOptions(
            min_runs=runs or (10 if emulated else 50),
            min_seconds=min_seconds if min_seconds is not None else (0.0 if emulated else 1.0),
            pin=tuple(pin or ()),
            **kw,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _bench_common(func):
    for decorator in reversed(
        [
            click.option(
                "--targets",
                "targets_file",
                type=click.Path(dir_okay=False, path_type=Path),
                help="targets.toml [default: $EDGEPED_TARGETS, else ./targets.toml]",
            ),
            click.option("--threads", default=1, show_default=True, help="interpreter threads"),
            click.option("--batch", default=1, show_default=True, help="crops per invoke"),
            click.option(
                "--runs", type=int, help="minimum timed invokes [default: 50, emulated 10]"
            ),
            click.option(
                "--min-seconds", type=float, help="minimum timed seconds [default: 1, emulated 0]"
            ),
            click.option("--warmup", default=5, show_default=True, help="untimed invokes first"),
            click.option(
                "--crops",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help=".npz of real crops (images uint8 [N,128,64,3], metadata [N,6])",
            ),
            click.option(
                "--preprocess",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="metadata mean/std JSON [default: the model card's preprocessing]",
            ),
            click.option(
                "--timeout",
                "timeout_s",
                default=600.0,
                show_default=True,
                help="seconds before the run is stopped (also on the board)",
            ),
        ]
    ):
        func = decorator(func)
    return func


def _parity_failed(result) -> bool:
    parity = result.parity
    if parity is not None and not parity["ok"]:
        click.secho(
            f"parity FAILED for {Path(result.model_path).name}: {parity['mismatches']} of "
            f"{parity['n']} outputs differ from the host",
            fg="red",
            err=True,
        )
        return True
    return False


def _render_bench(result, path: Path) -> int:
    from edgeped.targets.render import latency_png, summary_table

    stdout_console().print(summary_table(result))
    click.echo(f"wrote {path}")
    picture = latency_png(result, path.with_name(path.stem + ".latency.png"))
    if picture:
        click.echo(f"wrote {picture}")
    return int(ExitCode.FAILED if _parity_failed(result) else ExitCode.OK)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--target",
    "target_name",
    default="local",
    show_default=True,
    help="local, arm64-emu, or a target name in targets.toml",
)
@click.option(
    "--core",
    type=click.Choice(["a53", "a72", "a76"]),
    help="core model of the emulated board [default: every core the budgets count "
    "instructions on (cost.max_instructions_per_invoke), else a76]",
)
@click.option(
    "--budgets",
    "budgets_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="budgets whose evidence the defaults measure [default: as `edgeped gate`: "
    "$EDGEPED_BUDGETS, else ./budgets.toml if there, else the built-in budgets]",
)
@_bench_common
@click.option(
    "--golden",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="golden outputs .npz [default: computed on the host when --parity]",
)
@click.option(
    "--parity/--no-parity",
    default=None,
    help="check outputs against the host (bit-exact for int8) "
    "[default: on when the budgets require parity (device.parity_required)]",
)
@click.option("--no-xnnpack", is_flag=True, help="run without the XNNPACK delegate")
@click.option("--delegate", help="external delegate shared library on the target")
@click.option(
    "--pin",
    type=int,
    multiple=True,
    help="a CPU to pin the runner to; repeatable (--pin 0 --pin 1)",
)
@click.option(
    "--load-threads",
    default=0,
    show_default=True,
    help="busy background threads mimicking other ECU tasks",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="folder for <model>.<target>.json and its latency PNG "
    "[default: bench/ beside the model, where the gate reads it]",
)
@overwrite_option
@click.option(
    "--proposals-per-frame",
    default=0,
    type=click.IntRange(min=0),
    help="frame mode: N crops per frame, one batched invoke vs N single ones (0 = off)",
)
@click.option("--fps", default=30.0, show_default=True, help="frame mode: budget 1000/fps ms")
def bench(
    model,
    target_name,
    core,
    budgets_file,
    targets_file,
    crops,
    golden,
    parity,
    preprocess,
    out_dir,
    no_xnnpack,
    overwrite,
    proposals_per_frame,
    fps,
    **kw,
) -> None:
    """Benchmark MODEL (a .tflite, or every .tflite of a RUN_DIR) on a target.

    Latency percentiles, RSS, size, parity and instructions per model; a run directory
    gives one table of all its models. By default it measures what the gate's budgets
    ask for: parity when they require it and, on arm64-emu, instructions on every
    core they name, so `edgeped bench MODEL --target arm64-emu` then `edgeped gate
    RUN_DIR` is enough.
    """
    from edgeped.outdir import claim_into
    from edgeped.targets import bench_model, resolve_target
    from edgeped.targets.suite import bench_models, result_name, run_models

    if model.is_dir() and (crops or golden or preprocess):
        raise EdgepedError(
            "--crops, --golden and --preprocess apply to one model",
            "bench a single .tflite with them, or drop them for RUN_DIR",
            exit_code=ExitCode.USAGE,
        )
    cores, parity, why = _budget_defaults(target_name, targets_file, core, parity, budgets_file)
    default = model / "bench" if model.is_dir() else model.parent / "bench"
    claim = claim_into(out_dir, "bench", overwrite=overwrite, default=default)
    con = console()

    def say(msg: str) -> None:
        con.print(f"[dim]• {msg}[/dim]")

    if why:
        say(why)
    if proposals_per_frame:
        target = resolve_target(target_name, targets_file, cores[0])
        options = _bench_options(emulated=target.emulated, xnnpack=not no_xnnpack, **kw)
        code = _bench_frames(
            model, target, options, proposals_per_frame, fps, crops, preprocess, claim.path, say
        )
        claim.done()
        sys.exit(code)
    code = int(ExitCode.OK)
    for one_core in cores:
        target = resolve_target(target_name, targets_file, one_core)
        options = _bench_options(emulated=target.emulated, xnnpack=not no_xnnpack, **kw)
        if model.is_dir():
            entries = bench_models(run_models(model), target, options, parity=parity, progress=say)
            code = max(code, _render_suite(entries, claim.path, target))
            continue
        result = bench_model(
            model,
            target,
            options,
            crops=crops,
            golden=golden,
            preprocess=preprocess,
            parity=parity or golden is not None,
            progress=say,
        )
        path = result.save(claim.path / f"{result_name(model, target)}.json")
        code = max(code, _render_bench(result, path))
    claim.done()
    sys.exit(code)


def _budget_defaults(target_name, targets_file, core, parity, budgets_file):
    """The cores and parity to measure: as given, else what the gate's budgets ask for.

    Returns:
        (cores to run on, with None for a target without a core choice; parity; a line
        saying what the defaults came from, or "" when everything was given).
    """
    from edgeped.gate.budgets import resolve_budgets
    from edgeped.targets import resolve_target

    if core is not None and parity is not None:
        return [core], parity, ""
    budgets, where = resolve_budgets(budgets_file)
    said = []
    if parity is None:
        parity = budgets.device.parity_required
        said.append(f"parity {'on' if parity else 'off'} (device.parity_required)")
    cores: list[str | None] = [core]
    if core is None and resolve_target(target_name, targets_file).emulated:
        wanted = [c.removeprefix("cortex-") for c in budgets.cost.max_instructions_per_invoke]
        cores = wanted or ["a76"]
        said.append(
            f"core(s) {', '.join(cores)} (cost.max_instructions_per_invoke)"
            if wanted
            else "core a76 (the budgets count instructions on no core)"
        )
    return cores, parity, f"measuring what the budgets ask for: {'; '.join(said)} [{where}]"


def _bench_frames(model, target, options, n, fps, crops, preprocess, out_dir, say) -> int:
    from edgeped.targets.frames import FrameOptions, bench_frames
    from edgeped.targets.suite import result_name

    try:
        frame = FrameOptions(proposals_per_frame=n, fps=fps)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    result = bench_frames(
        model, target, options, frame, crops=crops, preprocess=preprocess, progress=say
    )
    folder = out_dir or Path(model).parent / "bench"
    path = result.save(folder / f"{result_name(Path(model), target)}.frames-{n}.json")
    for line in result.lines():
        click.echo(line)
    click.echo(f"wrote {path}")
    return int(ExitCode.OK)


def _render_suite(entries, folder: Path, target) -> int:
    from edgeped.targets.render import latency_png, suite_table
    from edgeped.targets.suite import result_name

    stdout_console().print(suite_table(entries))
    failed = False
    for e in entries:
        if e.result is None:
            failed = True
            continue
        path = e.result.save(folder / f"{result_name(e.model, target)}.json")
        latency_png(e.result, path.with_name(path.stem + ".latency.png"))
        failed |= _parity_failed(e.result)
    click.echo(
        f"wrote {len(entries) - sum(e.result is None for e in entries)} result(s) in {folder}"
    )
    return int(ExitCode.FAILED if failed else ExitCode.OK)


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", "host", required=True, help="SSH target name in targets.toml, e.g. ecu-dev")
@_bench_common
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="run directory for bench.json [default: the model's directory]",
)
def deploy(model, host, targets_file, crops, preprocess, run_dir, **kw) -> None:
    """Push MODEL to a board, check parity with the host, benchmark, store bench.json."""
    from edgeped.targets import deploy_model, resolve_target

    target = resolve_target(host, targets_file)
    options = _bench_options(emulated=target.emulated, pin=None, load_threads=0, **kw)
    con = console()
    result, path = deploy_model(
        model,
        target,
        run_dir or model.parent,
        options,
        crops=crops,
        preprocess=preprocess,
        progress=lambda msg: con.print(f"[dim]• {msg}[/dim]"),
    )
    sys.exit(_render_bench(result, path))
