"""What `edgeped eval` writes: metrics.json, report.md, plots, the error gallery,
per-crop test scores, the drift reference and the operating thresholds in the model cards.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeped.convert.model_card import CARD_SUFFIX, read_card, write_card
from edgeped.data.shards import Dataset
from edgeped.evaluate.inference import int8_threshold
from edgeped.evaluate.scores import SplitScores, write_test_scores
from edgeped.fileio import read_json, sha256_file, write_json_atomic, write_text_atomic


def write_plots(run: Path, report: dict, curves: dict, test: SplitScores, plot_dir: Path) -> dict:
    """Every evaluation picture (see `edgeped.evaluate.plots`); returns name -> path."""
    from edgeped.evaluate import plots as p
    from edgeped.fileio import read_json

    cfg, models = report["config"], report["models"]
    thresholds = {n: r["threshold"]["threshold"] for n, r in models.items()}
    out = p.pr_roc_png(curves, plot_dir, cfg["max_fpr"], cfg["min_recall"], thresholds)
    out["reliability"] = p.reliability_png(
        {n: r["test_calibration"] for n, r in models.items()}, plot_dir / "reliability.png"
    )
    out["recall_vs_size"] = p.recall_vs_size_png(
        {
            n: (
                r["model"]["size_bytes"] / 1024,
                r["test"]["recall"],
                r["test_ci95"]["by_drive_bootstrap"]["recall"],
            )
            for n, r in models.items()
        },
        plot_dir / "recall_vs_size.png",
        cfg["min_recall"],
        cfg["max_fpr"],
    )
    for name, r in models.items():
        out[f"slices_{name}"] = p.slices_png(
            name,
            r["test_slices"],
            plot_dir / f"slices_{name}.png",
            cfg["min_recall"],
            cfg["max_fpr"],
            r["test"],
        )
    for c in report["comparisons"]:
        out[f"int8_vs_float_{c['quantized']}"] = p.int8_vs_float_png(
            c["float"],
            c["quantized"],
            test.labels,
            test.scores[c["float"]],
            test.scores[c["quantized"]],
            thresholds[c["float"]],
            thresholds[c["quantized"]],
            plot_dir / f"int8_vs_float_{c['quantized']}.png",
        )
    log = run / "train_log.json"
    if log.is_file():
        out["training"] = p.training_png(read_json(log, "train log"), plot_dir / "training.png")
    return out


def write_error_gallery(report: dict, test: SplitScores, model: str, out_dir: Path) -> dict:
    from edgeped.evaluate.gallery import select_errors, write_gallery

    selection = select_errors(
        model,
        test.labels,
        test.scores[model],
        report["models"][model]["threshold"]["threshold"],
        test.tags,
        test.crop_ids,
    )
    return write_gallery(Dataset.open(report["dataset"]["root"]), "test", selection, out_dir)


def write_outputs(
    run_dir: str | os.PathLike,
    report: dict,
    val: SplitScores,
    test: SplitScores,
    tag: str = "",
) -> dict[str, Path]:
    """Writes metrics.json, report.md, plots, and the thresholds into the model cards.

    A `tag` (e.g. "nometa") writes metrics-<tag>.json, report-<tag>.md and
    plots-<tag>/ beside the main ones and leaves the model cards alone: a side
    experiment must not move the shipped operating threshold. ``report`` (metrics.json
    as `evaluate_run` measured it) gains the files' names and hashes and the shipping
    choice: pass a copy (`EvalResult.save` does) to keep the measured one as it was.
    """
    from edgeped.evaluate.report import render_markdown, shipping_choice

    run = Path(run_dir)
    suffix = f"-{tag}" if tag else ""
    plot_dir = run / f"plots{suffix}"
    curves = {name: (test.labels, test.scores[name]) for name in report["models"]}
    scores_path = run / f"test_scores{suffix}.npz"
    report["test_scores"] = {
        "file": scores_path.name,
        "sha256": write_test_scores(scores_path, test.crop_ids, test.labels, test.scores),
        "content": "per-crop test probabilities of every model, by crop_id",
    }
    plots = write_plots(run, report, curves, test, plot_dir)
    calibrated = {
        n: r["calibration"]["test_reliability_calibrated"]
        for n, r in report["models"].items()
        if r["calibration"].get("fitted")
    }
    if calibrated:
        from edgeped.evaluate.plots import reliability_png

        plots["reliability_calibrated"] = reliability_png(
            calibrated,
            plot_dir / "reliability_calibrated.png",
            "Reliability on test after temperature + bias fitted on val",
        )
    report["shipping"] = shipping_choice(report)
    shipped = report["gallery_model"] = report["shipping"]["model"]
    plots.update(write_error_gallery(report, test, shipped, run / f"gallery{suffix}"))
    report["plots"] = {k: str(p.relative_to(run)) for k, p in plots.items()}
    metrics_path, report_path = run / f"metrics{suffix}.json", run / f"report{suffix}.md"
    write_json_atomic(metrics_path, report)
    write_text_atomic(report_path, render_markdown(report))
    for name, model in [] if tag else report["models"].items():
        card_file = run / f"{name}{CARD_SUFFIX}"
        card = read_card(card_file)
        threshold = model["threshold"]
        out = card["outputs"][0]
        card["threshold"] = {
            "score": threshold["threshold"],
            "rule": threshold["rule"],
            "selected_on": "val",
            "val_recall": threshold["recall"],
            "val_fpr": threshold["fpr"],
        }
        if model["calibration"].get("fitted"):
            card["calibration"] = {
                **model["calibration"]["calibrator"],
                "rule": "p_calibrated = sigmoid(slope * logit(p) + bias)",
                "fitted_on": "val",
            }
        if out["dtype"] == "int8":
            card["threshold"]["int8"] = int8_threshold(
                threshold["threshold"], out["scale"], out["zero_point"]
            )
            card["threshold"]["int8_rule"] = "pedestrian when output q >= int8"
        write_card(card_file, card)
    return {"metrics": metrics_path, "report": report_path, "test_scores": scores_path, **plots}


def record_in_metrics(run_dir: str | os.PathLike, key: str, value: dict, tag: str = "") -> None:
    """Adds one section (a later step's output) to metrics[-TAG].json and re-renders the report.

    Steps after the evaluation proper (the drift reference, the robustness summary) add
    their entry here, so evaluate never imports them.
    """
    from edgeped.evaluate.report import render_markdown

    run = Path(run_dir)
    suffix = f"-{tag}" if tag else ""
    metrics_path = run / f"metrics{suffix}.json"
    report = read_json(metrics_path, "metrics")
    report[key] = value
    write_json_atomic(metrics_path, report)
    write_text_atomic(run / f"report{suffix}.md", render_markdown(report))


def attach_robustness(
    run_dir: str | os.PathLike, robustness: dict, paths: dict, tag: str = ""
) -> None:
    """Adds the robustness summary to metrics[-TAG].json and re-renders report[-TAG].md.

    Args:
        robustness: the robustness.json content `evaluate_robustness` made.
        paths: what `write_robustness` wrote (its "json" and "report" paths).
    """
    cfg = robustness["config"]
    section = {
        "file": Path(paths["json"]).name,
        "report": Path(paths["report"]).name,
        "sha256": sha256_file(paths["json"]),
        "suite": cfg.get("suite", "custom"),
        "cells": f"{len(cfg['corruptions'])} families x severities "
        f"{','.join(str(s) for s in cfg['severities'])}",
        "families": robustness.get("families"),
        "models": {n: e["summary"] for n, e in robustness["models"].items()},
    }
    record_in_metrics(run_dir, "robustness", section, tag)
