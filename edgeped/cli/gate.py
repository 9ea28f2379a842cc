"""`edgeped gate`: judge a run's model against the budgets (docs/budgets.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgeped.cli._common import console, stdout_console, write_json_or_stdout
from edgeped.fileio import check_outputs


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--budgets",
    "budgets_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="budgets TOML (docs/budgets.md) [default: $EDGEPED_BUDGETS, else ./budgets.toml "
    "if there, else the built-in budgets]",
)
@click.option("--model", help="model name in RUN_DIR [default: the budgets file's `model`]")
@click.option(
    "--baseline",
    type=click.Path(file_okay=False, path_type=Path),
    help="previous release's run directory, for the change budgets: recall drop, "
    "decision flips crop by crop (both runs' test_scores.npz, same test crops) "
    "and real-target latency regression",
)
@click.option(
    "--bench",
    "bench_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="extra bench.json kept outside RUN_DIR (RUN_DIR/bench*.json and "
    "RUN_DIR/bench/*.json are always read). Repeatable.",
)
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="write JUnit XML")
@click.option(
    "--summary", type=click.Path(dir_okay=False, path_type=Path), help="write a Markdown summary"
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="write the verdict as JSON ('-' for stdout; the table then goes to stderr)",
)
def gate(run_dir, budgets_file, model, baseline, bench_files, junit, summary, json_out) -> None:
    """Judge a run's model against every budget; exit 0 pass, 1 fail, 2 missing/stale evidence.

    Reads the model card, metrics.json and bench results in RUN_DIR. Latency and
    memory budgets accept only real-target measurements; the gate fails closed.
    """
    from edgeped.gate import gate_run
    from edgeped.gate.budgets import find_budgets_file, resolve_budgets
    from edgeped.gate.render import console_table, headline, problems, write_reports

    check_outputs(
        {"--json": json_out, "--junit": junit, "--summary": summary},
        [
            *([found] if (found := find_budgets_file(budgets_file)) else []),
            *bench_files,
            *_evidence_files(run_dir),
            *_evidence_files(baseline),
        ],
    )
    budgets, where = resolve_budgets(budgets_file)
    to_stdout = str(json_out) == "-"  # stdout then carries only the JSON
    click.echo(f"budgets: {where}", err=to_stdout)
    verdict = gate_run(
        run_dir,
        budgets,
        model=model,
        baseline=baseline,
        bench_files=tuple(str(p) for p in bench_files),
    )
    (console() if to_stdout else stdout_console(min_width=140)).print(console_table(verdict))
    for line in problems(verdict):
        click.echo(f"  {line}", err=to_stdout)
    written = write_reports(
        verdict, json_path=None if to_stdout else json_out, junit_path=junit, summary_path=summary
    )
    for path in written:
        click.echo(f"wrote {path}", err=to_stdout)
    click.echo(headline(verdict), err=to_stdout)
    if to_stdout:
        write_json_or_stdout("-", verdict.to_dict())
    sys.exit(verdict.exit_code)


_EVIDENCE = (
    "*.tflite",
    "*.card.json",
    "*.h5",
    "metrics*.json",
    "test_scores*.npz",
    "bench*.json",
    "bench/*.json",
    "config.json",
    "train_log.json",
)


def _evidence_files(run: Path | None) -> list[Path]:
    """The files of a run the gate reads (never to be overwritten by its reports)."""
    if run is None or not Path(run).is_dir():
        return []
    return [p for pattern in _EVIDENCE for p in Path(run).glob(pattern)]
