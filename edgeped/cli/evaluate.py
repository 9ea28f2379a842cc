"""`edgeped eval` and `edgeped compare`: metrics of the .tflite files themselves."""

from __future__ import annotations

import click

from edgeped.cli._common import bad_config, console, log, overwrite_option
from edgeped.cli.scale import beam_config, runner_options


@click.command("eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--max-fpr", default=0.01, show_default=True, help="FPR limit for the threshold.")
@click.option(
    "--min-recall", default=0.92, show_default=True, help="Recall target (second reading)."
)
@click.option("--data", "data_dir", type=click.Path(), help="Evaluate on another dataset.")
@click.option("--only", multiple=True, help="Evaluate only these models. Repeatable.")
@click.option(
    "--threads", default=2, show_default=True, help="LiteRT interpreter threads per model."
)
@click.option(
    "--metadata-dropout",
    default=0.0,
    show_default=True,
    help="Drop metadata (set NaN) for this share of val/test records before scoring.",
)
@click.option(
    "--tag",
    default="",
    help="Write metrics-TAG.json/report-TAG.md and leave the "
    "model cards' thresholds alone (for side experiments).",
)
@click.option(
    "--corruptions",
    multiple=True,
    help="Also score corrupted copies of test at the clean-val threshold (all, or one "
    "corruption such as low_light; repeatable): robustness.json, robustness.md, "
    "plots-robustness/ (docs/robustness.md).",
)
@click.option(
    "--severities",
    multiple=True,
    help="A severity 1-5 of --corruptions; repeatable (the gate's robustness budgets need "
    "all five) [default: 1 to 5].",
)
@runner_options
def eval_(
    run_dir,
    max_fpr,
    min_recall,
    data_dir,
    only,
    threads,
    metadata_dropout,
    tag,
    corruptions,
    severities,
    runner,
    beam_options,
) -> None:
    """Evaluate RUN_DIR's .tflite models: threshold on val, metrics on test.

    Writes metrics.json, report.md and plots/{pr,roc}.png into RUN_DIR and the
    chosen threshold into each model card; with --corruptions, also the corruption
    suite's results.
    """
    from edgeped.evaluate.run import EvalConfig, evaluate_run

    try:
        config = EvalConfig(
            max_fpr=max_fpr,
            min_recall=min_recall,
            threads=threads,
            metadata_dropout=metadata_dropout,
        )
        if tag and not tag.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"tag must be letters, digits, - or _, got {tag!r}")
        # Repeated values; a single comma-joined value (the older form) still parses.
        suite = (
            _suite(",".join(corruptions), ",".join(severities) or "1,2,3,4,5", max_fpr, threads)
            if corruptions
            else None
        )
    except ValueError as exc:
        raise bad_config(exc) from exc
    beam = beam_config(runner, beam_options)
    scorer = None
    if beam is not None:
        from edgeped.evaluate.beam_score import beam_scorer

        scorer = beam_scorer(beam)
    result = evaluate_run(
        run_dir,
        config,
        only=tuple(only) or None,
        data_dir=data_dir,
        progress=log,
        scorer=scorer,
    )
    paths = result.save(run_dir, tag=tag)
    print_metrics(result.metrics)
    click.echo(
        f"report: {paths['report']}\nmetrics: {paths['metrics']}\n"
        f"per-crop test scores: {paths['test_scores']}"
    )
    if "gallery" in paths:
        click.echo(f"error gallery: {paths['gallery']} (every error: {paths['gallery_list']})")
    if suite is not None:
        from edgeped.evaluate.robustness import evaluate_robustness

        robust = evaluate_robustness(
            run_dir, suite, only=tuple(only) or None, data_dir=data_dir, progress=lambda _: None
        )
        written = robust.save(run_dir, tag=tag)
        print_robustness(robust.report)
        click.echo(
            f"robustness: {written['report']}\nrobustness json: {written['json']}\n"
            f"plots: {written['severity']}, {written['flips']}"
        )


def _suite(corruptions: str, severities: str, max_fpr: float, threads: int):
    from edgeped.evaluate.corruptions import parse_corruptions
    from edgeped.evaluate.robustness import RobustnessConfig

    try:
        levels = tuple(int(s) for s in severities.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"severities must be a comma list of 1-5, got {severities!r}") from None
    return RobustnessConfig(
        corruptions=parse_corruptions(corruptions),
        severities=levels,
        max_fpr=max_fpr,
        threads=threads,
    )


def print_robustness(report: dict) -> None:
    from rich.table import Table

    table = Table(title="corrupted test recall at the clean-val threshold")
    for col in ("model", "clean", "mean corrupted", "relative drop", "worst"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, entry in report["models"].items():
        s = entry["summary"]
        drop = "n/a" if s["relative_drop"] is None else f"{100 * s['relative_drop']:.1f}%"
        table.add_row(
            name,
            f"{s['clean_recall']:.4f}",
            f"{s['mean_corrupted_recall']:.4f}",
            drop,
            f"{s['worst']['recall']:.4f} ({s['worst']['corruption']} {s['worst']['severity']})",
        )
    console().print(table)


def print_metrics(report: dict) -> None:
    from rich.table import Table

    cfg = report["config"]
    table = Table(title=f"test split, threshold from val (max recall at FPR <= {cfg['max_fpr']})")
    for col in ("model", "size KiB", "recall %", "FPR %", "AUC-PR", "ROC-AUC"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, r in report["models"].items():
        t = r["test"]
        table.add_row(
            name,
            f"{r['model']['size_bytes'] / 1024:.1f}",
            f"{100 * t['recall']:.2f}",
            f"{100 * t['fpr']:.2f}",
            f"{t['auc_pr']:.4f}",
            f"{t['roc_auc']:.4f}",
        )
    console().print(table)
    for c in report["comparisons"]:
        console().print(
            f"{c['quantized']} vs {c['float']}: decision flips {c['flips']} "
            f"({100 * c['flip_rate']:.2f}%), d recall {100 * c['delta']['recall']:+.2f} pp, "
            f"d AUC-PR {c['delta']['auc_pr']:+.4f}"
        )
    from edgeped.evaluate.report import shipping_choice

    shipping = report.get("shipping") or shipping_choice(report)
    console().print(f"ships: {shipping['model']} ({'; '.join(shipping['reasons'])})")


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for comparison.md, comparison.json and recall_vs_size.png.",
)
@click.option(
    "--slice",
    "slices",
    multiple=True,
    help="Also show recall/FPR of this slice, e.g. lighting=night. Repeatable.",
)
@overwrite_option
def compare(sources, out_dir, slices, overwrite) -> None:
    """Compare models across runs: SOURCES are RUN_DIR, metrics*.json, or LABEL=PATH.

    One row per model of each source: size, parameters, test recall with its
    by-drive 95% interval, FPR, AUC-PR, ECE, and the chosen slices.
    """
    from edgeped.evaluate.compare import Source, write_comparison
    from edgeped.evaluate.compare import compare as run_compare
    from edgeped.outdir import claim_into

    claim = claim_into(out_dir, "comparison", overwrite=overwrite)
    result = run_compare([Source.parse(s) for s in sources], tuple(slices))
    paths = write_comparison(out_dir, result)
    claim.done()
    click.echo(paths["markdown"].read_text())
    click.echo(f"written: {paths['markdown']}, {paths['json']}, {paths['plot']}")
