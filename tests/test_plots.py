"""Evaluation pictures and the report's opening: built from metric functions on fake scores."""

import json

import numpy as np
import pytest

from edgeped.evaluate import metrics as m
from edgeped.evaluate import plots
from edgeped.evaluate.calibration import reliability
from edgeped.evaluate.report import render_markdown, shipping_choice
from edgeped.evaluate.uncertainty import bootstrap_by_group


def _scores(rng, labels, separation):
    return 1 / (1 + np.exp(-(rng.normal(size=labels.size) + separation * (2 * labels - 1))))


@pytest.fixture(scope="module")
def fake():
    """Labels, tags and three models' scores; a report shaped like metrics.json."""
    rng = np.random.default_rng(0)
    n = 3000
    labels = (rng.random(n) < 0.1).astype(int)
    tags = {
        "lighting": np.where(rng.random(n) < 0.3, "night", "day"),
        "hard_negative": np.where(
            labels == 1, "none", np.where(rng.random(n) < 0.5, "pole", "background")
        ),
    }
    drives = np.array([f"d{i % 60}" for i in range(n)])
    scores = {
        "student_float32": _scores(rng, labels, 2.6),
        "student_qat_int8": _scores(rng, labels, 2.5),
        "student_ptq_int8": _scores(rng, labels, 1.5),
    }
    models = {}
    for name, s in scores.items():
        chosen = m.threshold_max_recall(labels, s, 0.05)
        at = m.rates_at(labels, s, chosen.threshold)
        models[name] = {
            "model": {
                "mode": {"float32": "float32", "qat": "qat-int8", "ptq": "ptq-int8"}[
                    name.split("_")[1]
                ],
                "size_bytes": 300_000 if "float" in name else 90_000,
                "parameters": 70_000,
            },
            "threshold": {"threshold": chosen.threshold, **chosen.to_dict()},
            "threshold_min_fpr": chosen.to_dict(),
            "both_constraints_hold_on_val": True,
            "test": {**at.to_dict(), **m.ranking_metrics(labels, s)},
            "test_ci95": {
                "recall_exact": (0.0, 1.0),
                "fpr_exact": (0.0, 1.0),
                "by_drive_bootstrap": bootstrap_by_group(
                    labels, s, drives, chosen.threshold, resamples=50, auc_resamples=10, seed=0
                ),
            },
            "test_calibration": reliability(labels, s),
            "test_slices": m.slice_metrics(labels, s, chosen.threshold, tags, 30),
        }
    report = {
        "config": {"max_fpr": 0.05, "min_recall": 0.8, "min_slice_samples": 30},
        "dataset": {
            "root": "data/x",
            "manifest_sha256": "ab" * 32,
            "val": {"crops": n, "positives": int(labels.sum())},
            "test": {"crops": n, "positives": int(labels.sum())},
        },
        "models": models,
        "comparisons": [],
    }
    return labels, tags, scores, report


def _png_size(path):
    import matplotlib.image as mpimg

    image = mpimg.imread(path)
    assert image.ndim == 3 and image.std() > 0.01, f"{path} is blank"
    return image.shape[1], image.shape[0]


def test_operating_point_matches_rates_at(fake):
    labels, _, scores, report = fake
    s = scores["student_qat_int8"]
    threshold = report["models"]["student_qat_int8"]["threshold"]["threshold"]
    op = plots.operating_point(labels, s, threshold)
    at = m.rates_at(labels, s, threshold)
    assert op["recall"] == pytest.approx(at.recall) and op["fpr"] == pytest.approx(at.fpr)
    assert op["precision"] == pytest.approx(at.tp / (at.tp + at.fp))


def test_pr_plot_is_zoomed_on_the_recall_that_matters(fake, tmp_path):
    labels, _, scores, report = fake
    curves = {n: (labels, s) for n, s in scores.items()}
    thresholds = {n: r["threshold"]["threshold"] for n, r in report["models"].items()}
    (x_low, x_high), (y_low, y_high) = plots.pr_zoom_limits(curves, thresholds, 0.8)
    points = [plots.operating_point(labels, scores[n], t) for n, t in thresholds.items()]
    assert 0.0 < x_low <= min(p["recall"] for p in points) and x_high > 1.0  # not 0-1
    assert 0.0 <= y_low <= min(p["precision"] for p in points) and y_high > 1.0
    assert x_low > 0.3 or y_low > 0.0
    paths = plots.pr_roc_png(curves, tmp_path, 0.05, 0.8, thresholds)
    assert _png_size(paths["pr"])[0] > 500 and _png_size(paths["roc"])[0] > 500


def test_every_picture_renders(fake, tmp_path):
    labels, _, scores, report = fake
    models = report["models"]
    plots.reliability_png({n: r["test_calibration"] for n, r in models.items()}, tmp_path / "r.png")
    plots.recall_vs_size_png(
        {
            n: (r["model"]["size_bytes"] / 1024, r["test"]["recall"], (0.7, 0.95))
            for n, r in models.items()
        },
        tmp_path / "s.png",
        0.8,
        0.05,
    )
    r = models["student_qat_int8"]
    plots.slices_png(
        "student_qat_int8", r["test_slices"], tmp_path / "sl.png", 0.8, 0.05, r["test"]
    )
    log = {
        "stages": [
            {
                "name": "teacher",
                "seconds": 60,
                "history": {"loss": [0.5, 0.3], "val_loss": [0.2, 0.1], "val_auc_pr": [0.6, 0.8]},
            },
            {"name": "student_qat", "seconds": 30, "history": {"loss": [0.2], "val_auc_pr": [0.9]}},
        ]
    }
    plots.training_png(log, tmp_path / "t.png")
    plots.int8_vs_float_png(
        "student_float32",
        "student_qat_int8",
        labels,
        scores["student_float32"],
        scores["student_qat_int8"],
        0.5,
        0.5,
        tmp_path / "q.png",
    )
    for name in ("r", "s", "sl", "t", "q"):
        _png_size(tmp_path / f"{name}.png")


def test_slice_rows_have_exact_intervals_and_readable_names(fake):
    _, _, _, report = fake
    rows = plots._slice_rows(report["models"]["student_qat_int8"]["test_slices"], "recall")
    labels = [r[0] for r in rows]
    assert "kind=pedestrian" in labels and not any("hard_negative" in x for x in labels)
    for _, value, lo, hi, n, _ in rows:
        assert lo <= value <= hi and n > 0


def test_report_opens_with_the_model_that_ships(fake):
    _, _, _, report = fake
    choice = shipping_choice(report)
    int8 = {n: r for n, r in report["models"].items() if "int8" in n}
    # Picked on val (like the threshold), never on test.
    assert choice["model"] == max(int8, key=lambda n: int8[n]["threshold"]["recall"])
    assert choice["runner_up"] in int8 and choice["runner_up"] != choice["model"]
    text = render_markdown(json.loads(json.dumps(report)))
    first = text.split("\n## ")[0]
    assert f"**Ships: `{choice['model']}`**" in first
    assert "runner-up" in first and "kind=pedestrian" in text and "hard_negative" not in text


def test_no_int8_model_and_no_constraint_are_said(fake):
    _, _, _, report = fake
    only_float = {
        **report,
        "models": {
            "student_float32": {
                **report["models"]["student_float32"],
                "both_constraints_hold_on_val": False,
            }
        },
    }
    choice = shipping_choice(only_float)
    assert choice["model"] == "student_float32" and not choice["meets_val_constraint"]
    assert any("no int8 model" in r for r in choice["reasons"])
    assert any("NO candidate meets" in r for r in choice["reasons"])
