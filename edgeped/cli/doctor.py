"""`edgeped doctor`: check the environment and say how to fix what is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgeped.cli._common import console
from edgeped.errors import ExitCode


@click.command()
@click.option(
    "--targets",
    "targets_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="targets.toml to check [default: $EDGEPED_TARGETS, else ./targets.toml]",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    help="Run only this check (python, keras, litert, xnnpack, emulated board, targets). "
    "Repeatable.",
)
@click.option(
    "--timeout",
    "timeout_s",
    default=60.0,
    show_default=True,
    help="Seconds each remote or emulated probe may take.",
)
@click.option(
    "--no-emulated-probe",
    is_flag=True,
    help="Do not start the emulated Python (saves 10-30 s; files are still checked).",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Also write the findings as JSON to this file ('-' for stdout).",
)
def doctor(targets_file, only, timeout_s, no_emulated_probe, json_out) -> None:
    """Check Keras 2 (tf-keras), LiteRT, XNNPACK, the emulated board and every target.

    Exits 0 when nothing failed (warnings allowed), 1 when a check failed.
    """
    from rich.table import Table
    from rich.text import Text

    from edgeped.doctor import DoctorOptions, Level, run_checks

    options = DoctorOptions(
        targets_file=str(targets_file) if targets_file else None,
        timeout_s=timeout_s,
        emulated_probe=not no_emulated_probe,
    )
    report = run_checks(options, tuple(only))
    colours = {Level.OK: "green", Level.WARN: "yellow", Level.FAIL: "red", Level.SKIP: "dim"}
    counts = report.counts()
    table = Table(
        title="edgeped doctor: "
        + " · ".join(f"{counts[lv.value]} {lv.value.upper()}" for lv in Level if counts[lv.value]),
        title_justify="left",
    )
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for f in report.findings:
        table.add_row(
            Text(f.check),
            Text(f.level.value.upper(), style=colours[f.level]),
            Text(f.detail),
            Text(f.fix),
        )
    console().print(table)
    if json_out:
        from edgeped.cli._common import write_json_or_stdout

        write_json_or_stdout(json_out, report.to_dict())
    sys.exit(int(ExitCode.OK if report.ok else ExitCode.FAILED))
