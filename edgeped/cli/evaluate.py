"""`edgeped eval` and `edgeped compare`: metrics of the .tflite files themselves."""

from __future__ import annotations

from dataclasses import replace

import click

from edgeped.cli._common import console, log, overwrite_option
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
    help="Which corrupted copies of test to score at the clean-val threshold: `quick` "
    "(the default: every family at severities 1, 3, 5 on up to 300 pedestrians and 300 "
    "background crops, about a minute), `all` (the full suite, "
    "every model), one or more names such as fog (repeatable), or `none` (the gate's "
    "robustness budgets then fail closed). Writes robustness.json, robustness.md, "
    "plots-robustness/ and a summary in metrics.json and report.md (docs/robustness.md).",
)
@click.option(
    "--severities",
    multiple=True,
    help="A severity 1-5 of named --corruptions or `all`; repeatable [default: 1 to 5].",
)
@click.option(
    "--max-negatives",
    type=click.IntRange(min=0),
    default=None,
    help="With --corruptions all or named ones: keep every test pedestrian but only about "
    "this many background crops (chosen by a hash of the crop id; recall is unchanged, "
    "FPR gets a wider interval) [default: all].",
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
    max_negatives,
    runner,
    beam_options,
) -> None:
    """Evaluate RUN_DIR's .tflite models: threshold on val, metrics on test.

    Writes metrics.json, report.md and plots/{pr,roc}.png into RUN_DIR and the
    chosen threshold into each model card; with --corruptions, also the corruption
    suite's results.
    """
    from edgeped.evaluate.run import EvalConfig, evaluate_run

    config = EvalConfig(
        max_fpr=max_fpr,
        min_recall=min_recall,
        threads=threads,
        metadata_dropout=metadata_dropout,
    )
    if tag and not tag.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"tag must be letters, digits, - or _, got {tag!r}")
    # Repeated values; a single comma-joined value (the older form) still parses.
    suite = _suite(
        ",".join(corruptions) or ("quick" if not tag else "none"),
        ",".join(severities),
        max_fpr,
        threads,
    )
    if max_negatives is not None:
        if suite is None or suite.suite == "quick":
            raise ValueError("--max-negatives goes with --corruptions all or named ones")
        suite = replace(suite, max_negatives=max_negatives)
    data_dir = _run_dataset(run_dir, data_dir)
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
    if not tag:
        from edgeped.rollout.drift_run import write_run_reference

        write_run_reference(run_dir, result)
    print_metrics(result.metrics)
    click.echo(
        f"report: {paths['report']}\nmetrics: {paths['metrics']}\n"
        f"per-crop test scores: {paths['test_scores']}"
    )
    if "gallery" in paths:
        click.echo(f"error gallery: {paths['gallery']} (every error: {paths['gallery_list']})")
    if suite is not None:
        from edgeped.evaluate.outputs import attach_robustness
        from edgeped.evaluate.robustness import evaluate_robustness

        log(f"robustness: the {suite.suite} suite")
        robust = evaluate_robustness(
            run_dir, suite, only=tuple(only) or None, data_dir=data_dir, progress=log
        )
        written = robust.save(run_dir, tag=tag)
        attach_robustness(run_dir, robust.report, written, tag=tag)
        print_robustness(robust.report)
        click.echo(
            f"robustness: {written['report']}\nrobustness json: {written['json']}\n"
            f"plots: {written['severity']}, {written['flips']}"
        )


def _run_dataset(run_dir, data_dir):
    """--data, else the run's own dataset wherever it now is (config.json records it).

    None leaves the choice to evaluate_run (the model cards' dataset), for a folder of
    converted models without a training config.
    """
    from pathlib import Path

    from edgeped.train.run_dir import resolve_run_dataset

    if data_dir is not None or not (Path(run_dir) / "config.json").is_file():
        return data_dir
    return str(resolve_run_dataset(run_dir, command="eval").absolute())


def _suite(corruptions: str, severities: str, max_fpr: float, threads: int):
    """The suite config (None: no robustness run) from the options.

    Raises:
        ValueError: a severity that is not 1-5, or severities given with quick/none.
    """
    from edgeped.evaluate.corruptions import parse_corruptions
    from edgeped.evaluate.robustness import RobustnessConfig, full_suite, quick_suite

    name = corruptions.strip()
    if name in ("quick", "none"):
        if severities:
            raise ValueError(f"--severities goes with named corruptions or all, not with {name}")
        return quick_suite(max_fpr, threads) if name == "quick" else None
    try:
        levels = tuple(int(s) for s in (severities or "1,2,3,4,5").split(",") if s.strip())
    except ValueError:
        raise ValueError(f"severities must be a comma list of 1-5, got {severities!r}") from None
    if name == "all" and levels == (1, 2, 3, 4, 5):
        return full_suite(max_fpr, threads)
    return RobustnessConfig(
        corruptions=parse_corruptions(corruptions),
        severities=levels,
        max_fpr=max_fpr,
        threads=threads,
    )


def print_robustness(report: dict) -> None:
    from rich.table import Table

    def ratio(x) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    table = Table(
        title=f"corrupted test recall at the clean-val threshold ({report['config']['suite']} "
        "suite)"
    )
    for col in (
        "model",
        "clean",
        "mean corrupted",
        "x clean",
        "held-out x clean",
        "worst sev<=3 x clean",
        "mean FPR",
        "worst",
    ):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, entry in report["models"].items():
        s = entry["summary"]
        mild = s.get("worst_mild") or {}
        held = ((s.get("families") or {}).get("held_out") or {}).get("recall_ratio")
        table.add_row(
            name,
            f"{s['clean_recall']:.4f}",
            f"{s['mean_corrupted_recall']:.4f}",
            ratio(s.get("recall_ratio")),
            ratio(held),
            f"{ratio(mild.get('recall_ratio'))} ({mild.get('corruption')} {mild.get('severity')})",
            f"{100 * s['mean_corrupted_fpr']:.2f}%",
            f"{s['worst']['recall']:.4f} ({s['worst']['corruption']} {s['worst']['severity']})",
        )
    console().print(table)
    for name, entry in report["models"].items():
        alerts = entry["summary"].get("fpr_alerts") or []
        if alerts:
            cells = ", ".join(
                f"{a['corruption']} {a['severity']} {100 * a['fpr']:.1f}%" for a in alerts
            )
            console().print(f"{name}: FPR above 2% at the clean-val threshold under {cells}")


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
