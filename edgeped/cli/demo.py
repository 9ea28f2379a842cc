"""`edgeped demo`: the whole pipeline on small defaults."""

from __future__ import annotations

from pathlib import Path

import click

from edgeped.cli._common import (
    console,
    log,
    overwrite_option,
    rule,
    stdout_console,
)
from edgeped.cli.evaluate import print_metrics


@click.command()
@click.option(
    "--out",
    "out_dir",
    default="runs/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the demo's dataset and run.",
)
@click.option("--drives", type=int, help="Number of synthetic drives [default: 480].")
@click.option(
    "--epochs-scale",
    default=1.0,
    show_default=True,
    help="Multiply every stage's epochs (e.g. 0.5 for a quicker, weaker demo).",
)
@click.option(
    "--budgets",
    "budgets_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="budgets TOML for the demo's gate [default: the built-in budgets, which equal the "
    "shipped budgets.toml]",
)
@overwrite_option
def demo(out_dir, drives, epochs_scale, budgets_file, overwrite) -> None:
    """Run the whole pipeline on small defaults (about 10 minutes on 2 cores, 7 to 11 measured).

    Synthetic data, float teacher, QAT student, int8 conversion and evaluation;
    prints where the report is at the end.
    """
    import time

    from rich.progress import Progress

    from edgeped.demo import DemoConfig, run_demo
    from edgeped.outdir import claim_into

    claim = claim_into(out_dir, "demo", overwrite=overwrite, default=DemoConfig().out_dir)
    config = DemoConfig(out_dir=out_dir).with_options(drives=drives, epochs_scale=epochs_scale)
    start = time.perf_counter()
    out = console()
    with Progress(console=out, transient=True) as bar:
        task = bar.add_task("rendering drives", total=config.synth.drives)
        result = run_demo(
            config,
            step=rule,
            detail=log,
            synth_progress=lambda done, _: bar.update(task, completed=done),
            budgets_file=budgets_file,
        )
    claim.done()
    from edgeped.fileio import read_json

    print_metrics(read_json(result.metrics, "metrics"))
    _print_demo_gate(result)
    _print_summary(result, time.perf_counter() - start)


def _print_summary(result, total_s: float) -> None:
    """Where the time went and where the outputs are, as a table (not a Python dict)."""
    from rich.table import Table

    table = Table(title="demo summary", title_justify="left")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, seconds in result.seconds.items():
        table.add_row(stage, f"{seconds:.0f}")
    table.add_row("total", f"{total_s:.0f}", style="bold")
    console().print(table)
    click.echo(f"report: {result.report}")


def _print_demo_gate(result) -> None:
    """The demo's gate: the table, what it could judge here, and what needs a real board."""
    from edgeped.gate.render import console_table, headline, judged_and_missing

    verdict = result.gate
    stdout_console(min_width=140).print(console_table(verdict))
    judged, missing = judged_and_missing(verdict)
    click.echo(f"judged here ({len(judged)}): {', '.join(judged)}")
    click.echo(f"not judged ({len(missing)}): {', '.join(missing) or 'none'}")
    for note in result.gate_notes:
        click.echo(f"  - {note}")
    click.echo(headline(verdict))
    click.echo(f"gate: {result.run_dir / 'gate.md'} (the demo itself exits 0)")
