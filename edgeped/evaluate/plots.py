"""Evaluation pictures as PNG (matplotlib, headless), each answering one question.

- pr.png: how much precision is left in the recall range that matters, and where
  is each model's operating point (AP in the legend)?
- roc.png: recall against FPR (log), with the FPR limit and recall target labelled.
- reliability.png: do scores mean probabilities, and how many crops back each bin?
- recall_vs_size.png: what recall does each model buy per KiB?
- slices_<model>.png: which conditions/kinds fall short, with 95% intervals?
- training.png: did each stage converge (loss, val loss, val AUC-PR per epoch)?
- int8_vs_float_<model>.png: where does quantisation move scores, and which crops flip?
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from edgeped.evaluate.names import slice_label
from edgeped.evaluate.uncertainty import clopper_pearson
from edgeped.fileio import write_bytes_atomic

DPI = 110


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(names) -> dict[str, str]:
    palette = [f"C{i}" for i in range(10)]
    return {name: palette[i % 10] for i, name in enumerate(names)}


def _save(fig, plt, path: Path, tight: bool = True) -> Path:
    buffer = io.BytesIO()
    if tight and fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def operating_point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Recall, precision and FPR of ``scores >= threshold`` (NaN where undefined)."""
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(scores) >= threshold
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    positives, negatives = int(labels.sum()), int((~labels).sum())
    return {
        "recall": tp / positives if positives else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "fpr": fp / negatives if negatives else float("nan"),
    }


def pr_zoom_limits(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    thresholds: dict[str, float] | None = None,
    min_recall: float = 0.9,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """(recall range, precision range) around the operating points and the recall target.

    Recall from 0.15 below the lowest operating point (or target) to 1; precision from 0.2
    below the lowest operating point's precision to 1. Without thresholds: recall >= 0.5
    and the curves' lowest precision up to recall 0.98.
    """
    from sklearn.metrics import precision_recall_curve

    points = [operating_point(*curves[n], t) for n, t in (thresholds or {}).items() if n in curves]
    points = [p for p in points if p["recall"] == p["recall"] and p["precision"] == p["precision"]]
    if points:
        x_low = min([p["recall"] for p in points] + [min_recall]) - 0.15
        y_low = min(p["precision"] for p in points) - 0.2
    else:
        x_low, y_low = 0.5, 1.0
        for labels, scores in curves.values():
            precision, recall, _ = precision_recall_curve(labels, scores)
            inside = precision[(recall >= 0.5) & (recall <= 0.98)]
            if inside.size:
                y_low = min(y_low, float(inside.min()) - 0.05)
    floor = lambda v: max(0.0, np.floor(v * 20) / 20)  # noqa: E731 - to a 0.05 grid
    return (floor(x_low), 1.005), (floor(y_low), 1.005)


def pr_roc_png(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    out_dir: Path,
    max_fpr: float,
    min_recall: float,
    thresholds: dict[str, float] | None = None,
) -> dict[str, Path]:
    """PR (zoomed around the operating points) and ROC curves; returns the PNG paths.

    Args:
        curves: model name -> (test labels, test scores).
        out_dir: folder for pr.png and roc.png.
        max_fpr: the FPR limit (drawn on the ROC).
        min_recall: the recall target (drawn on both).
        thresholds: model name -> operating threshold, marked on both curves.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

    plt = _figure()
    colours = _colours(curves)
    thresholds = thresholds or {}
    paths = {}
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for name, (labels, scores) in curves.items():
        precision, recall, _ = precision_recall_curve(labels, scores)
        ap = average_precision_score(labels, scores)
        ax.plot(recall, precision, color=colours[name], label=f"{name} (AP {ap:.3f})")
        if name in thresholds:
            op = operating_point(labels, scores, thresholds[name])
            ax.plot(
                op["recall"], op["precision"], "o", color=colours[name], ms=7, mec="black", mew=0.8
            )
    ax.axvline(min_recall, color="grey", ls="--", lw=1, label=f"recall target {min_recall}")
    ax.plot([], [], "o", color="white", mec="black", label="operating point (val threshold)")
    xlim, ylim = pr_zoom_limits(curves, thresholds, min_recall)
    ax.set(
        xlabel="recall",
        ylabel="precision",
        title=f"Precision-recall on test, zoomed: recall >= {xlim[0]:.2f}",
        xlim=xlim,
        ylim=ylim,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7)
    paths["pr"] = _save(fig, plt, out_dir / "pr.png")

    fig, ax = plt.subplots(figsize=(6.5, 5))
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(np.maximum(fpr, 1e-4), tpr, color=colours[name], label=name)
        if name in thresholds:
            op = operating_point(labels, scores, thresholds[name])
            ax.plot(max(op["fpr"], 1e-4), op["recall"], "o", color=colours[name], mec="black", ms=7)
    ax.axvline(max_fpr, color="grey", ls="--", lw=1, label=f"FPR limit {max_fpr}")
    ax.axhline(min_recall, color="grey", ls=":", lw=1, label=f"recall target {min_recall}")
    ax.plot([], [], "o", color="white", mec="black", label="operating point (val threshold)")
    ax.set(
        xscale="log",
        xlabel="false positive rate (log)",
        ylabel="recall",
        title="ROC on test",
        xlim=(1e-4, 1),
        ylim=(0, 1.01),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    paths["roc"] = _save(fig, plt, out_dir / "roc.png")
    return paths


def reliability_png(
    calibrations: dict[str, dict], path: Path, title: str = "Reliability on test"
) -> Path:
    """Reliability diagram with 95% intervals per bin, and the crop count of every bin below.

    Middle bins hold a handful of crops; the intervals and counts say so, so noise is
    not read as miscalibration.
    """
    plt = _figure()
    colours = _colours(calibrations)
    fig, (ax, counts_ax) = plt.subplots(
        2, 1, figsize=(6.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    n_models = max(len(calibrations), 1)
    width = 1.0 / max(next(iter(calibrations.values()))["bins"], 1) if calibrations else 0.05
    for i, (name, cal) in enumerate(calibrations.items()):
        mean = np.array(cal["mean_score"], dtype=float)
        rate = np.array(cal["positive_rate"], dtype=float)
        count = np.array(cal["count"], dtype=int)
        ok = ~np.isnan(mean)
        low, high = [], []
        for r, n in zip(rate[ok], count[ok], strict=True):
            lo, hi = clopper_pearson(int(round(r * n)), int(n))
            low.append(max(0.0, r - lo))
            high.append(max(0.0, hi - r))
        ax.errorbar(
            mean[ok],
            rate[ok],
            yerr=[low, high],
            marker="o",
            ms=3,
            lw=1,
            capsize=2,
            elinewidth=0.7,
            color=colours[name],
            label=f"{name} (ECE {cal['ece']:.3f})",
        )
        edges = np.array(cal["edges"], dtype=float)
        centres = (edges[:-1] + edges[1:]) / 2
        offset = (i - (n_models - 1) / 2) * width / n_models
        counts_ax.bar(
            centres + offset, np.maximum(count, 0), width=width / n_models, color=colours[name]
        )
    if calibrations:
        first = next(iter(calibrations.values()))
        edges = np.array(first["edges"], dtype=float)
        centres = (edges[:-1] + edges[1:]) / 2
        for c, n in zip(centres, first["count"], strict=True):
            counts_ax.annotate(
                str(n),
                (c, max(n, 1)),
                textcoords="offset points",
                xytext=(0, 2),
                ha="center",
                fontsize=6,
            )
        counts_ax.set_title(
            f"test crops per bin (numbers: {next(iter(calibrations))})", fontsize=8, loc="left"
        )
    ax.set(
        ylabel="observed pedestrian rate (95% interval)",
        title=title,
        xlim=(0, 1),
        ylim=(-0.02, 1.02),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)
    counts_ax.set(yscale="log", xlabel="mean predicted probability in bin", ylabel="crops")
    return _save(fig, plt, path)


def recall_vs_size_png(
    points: dict[str, tuple[float, float, tuple[float, float] | None]],
    path: Path,
    min_recall: float,
    max_fpr: float,
) -> Path:
    """Recall at the FPR limit against model size (KiB, log), with CI bars where known.

    Names go in the legend (with the size), not beside the points, where models of one
    size would print on top of each other.
    """
    plt = _figure()
    colours = _colours(points)
    markers = "osD^vP*Xh<>"
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, (name, (size_kib, recall, ci)) in enumerate(points.items()):
        # A percentile bootstrap interval need not contain the point estimate.
        err = None if ci is None else [[max(0.0, recall - ci[0])], [max(0.0, ci[1] - recall)]]
        ax.errorbar(
            [size_kib],
            [recall],
            yerr=err,
            fmt=markers[i % len(markers)],
            capsize=3,
            color=colours[name],
            label=f"{name} ({size_kib:,.0f} KiB)",
        )
    ax.axhline(min_recall, color="grey", ls="--", lw=1, label=f"target {min_recall}")
    lows = [ci[0] if ci else r for _, r, ci in points.values()]
    ax.set(
        xscale="log",
        xlabel="model size (KiB, log)",
        ylabel=f"test recall at val FPR <= {max_fpr}",
        title="Recall vs size (bars: 95% by-drive interval)",
        ylim=(max(0.0, min([*lows, min_recall]) - 0.05), 1.01),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, plt, path)


def _slice_rows(slices: dict, rate: str) -> list[tuple[str, float, float, float, int, bool]]:
    """(label, value, low, high, n, judgeable) per slice that has ``rate`` defined."""
    count_key = "positives" if rate == "recall" else "negatives"
    rows = []
    for tag in slices:
        for value, s in slices[tag].items():
            if s.get(rate) is None:
                continue
            n = int(s[count_key])
            k = int(round(s[rate] * n))
            lo, hi = clopper_pearson(k, n)
            rows.append((slice_label(tag, value), s[rate], lo, hi, n, bool(s[f"{rate}_judgeable"])))
    return rows


def slices_png(
    model: str, slices: dict, path: Path, min_recall: float, max_fpr: float, overall: dict
) -> Path:
    """Per-slice recall (on pedestrians) and FPR (on negatives) with exact 95% intervals.

    Slices too small to judge are drawn hollow; every bar says how many crops back it.
    """
    plt = _figure()
    panels = [("recall", _slice_rows(slices, "recall")), ("fpr", _slice_rows(slices, "fpr"))]
    heights = [max(len(rows), 1) for _, rows in panels]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.32 * max(heights) + 1.6), layout="constrained")
    for ax, (rate, rows) in zip(axes, panels, strict=True):
        y = np.arange(len(rows))[::-1]
        for yi, (_, value, lo, hi, n, judgeable) in zip(y, rows, strict=True):
            colour = "C0" if rate == "recall" else "C3"
            ax.barh(
                yi,
                value,
                color=colour if judgeable else "white",
                edgecolor=colour,
                hatch=None if judgeable else "//",
                height=0.7,
            )
            ax.errorbar(
                value,
                yi,
                xerr=[[max(0.0, value - lo)], [max(0.0, hi - value)]],
                color="black",
                capsize=2,
            )
            ax.annotate(f"n={n}", (hi, yi), textcoords="offset points", xytext=(3, -3), fontsize=6)
        ax.set_yticks(y, [r[0] for r in rows], fontsize=7)
        limit = min_recall if rate == "recall" else max_fpr
        ax.axvline(
            limit,
            color="grey",
            ls="--",
            lw=1,
            label=f"{'target' if rate == 'recall' else 'limit'} {limit}",
        )
        ax.axvline(overall[rate], color="black", ls=":", lw=1, label=f"overall {overall[rate]:.3f}")
        if rate == "recall":
            ax.set(xlim=(0, 1.08), xlabel="recall on the slice's pedestrians (95% exact interval)")
        else:
            top = max([r[3] for r in rows] + [max_fpr * 2])
            ax.set(xlim=(0, top * 1.15), xlabel="FPR on the slice's negatives (95% exact interval)")
        ax.legend(loc="lower right", fontsize=6)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        f"{model}: slices on test at the val threshold (hatched: too few crops to judge)",
        fontsize=9,
    )
    return _save(fig, plt, path)


def training_png(train_log: dict, path: Path) -> Path:
    """Loss, val loss and val AUC-PR per epoch for every stage in train_log.json, side by side."""
    plt = _figure()
    stages = [s for s in train_log.get("stages", []) if s.get("history")]
    fig, axes = plt.subplots(
        2, max(len(stages), 1), figsize=(3.2 * max(len(stages), 1), 5), squeeze=False
    )
    for col, stage in enumerate(stages):
        history = stage["history"]
        epochs = np.arange(1, len(next(iter(history.values()))) + 1)
        loss_ax, auc_ax = axes[0][col], axes[1][col]
        for key, style in (("loss", "-"), ("val_loss", "--")):
            if key in history:
                loss_ax.plot(epochs, history[key], style, marker="o", ms=3, label=key)
        if "val_auc_pr" in history:
            values = history["val_auc_pr"]
            auc_ax.plot(epochs, values, marker="o", ms=3, color="C2", label="val AUC-PR")
            best = int(np.argmax(values))
            auc_ax.plot(
                epochs[best],
                values[best],
                "*",
                ms=11,
                color="gold",
                mec="black",
                label=f"kept: epoch {best + 1}",
            )
        loss_ax.set_title(f"{stage['name']} ({stage.get('seconds', 0):.0f} s)", fontsize=9)
        loss_ax.set(xlabel="epoch", ylabel="loss" if col == 0 else "")
        auc_ax.set(xlabel="epoch", ylabel="val AUC-PR" if col == 0 else "")
        for ax in (loss_ax, auc_ax):
            ax.set_xticks(epochs)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
    if not stages:
        axes[0][0].text(0.5, 0.5, "train_log.json has no per-epoch history", ha="center")
    fig.suptitle("Training curves (train_log.json)", fontsize=10)
    return _save(fig, plt, path)


def int8_vs_float_png(
    float_name: str,
    quant_name: str,
    labels: np.ndarray,
    float_scores: np.ndarray,
    quant_scores: np.ndarray,
    float_threshold: float,
    quant_threshold: float,
    path: Path,
) -> Path:
    """Scatter of each test crop's float vs int8 score (logit axes), decision flips ringed."""
    plt = _figure()
    eps = 1e-4
    x = np.clip(np.asarray(float_scores, float), eps, 1 - eps)
    y = np.clip(np.asarray(quant_scores, float), eps, 1 - eps)
    labels = np.asarray(labels).astype(bool)
    flips = (np.asarray(float_scores) >= float_threshold) != (
        np.asarray(quant_scores) >= quant_threshold
    )
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(
        x[~labels], y[~labels], s=4, alpha=0.35, color="C0", label=f"background ({(~labels).sum()})"
    )
    ax.scatter(
        x[labels], y[labels], s=9, alpha=0.7, color="C1", label=f"pedestrian ({labels.sum()})"
    )
    ax.scatter(
        x[flips],
        y[flips],
        s=60,
        facecolors="none",
        edgecolors="red",
        linewidths=1.2,
        label=f"decision flips ({int(flips.sum())}: {int((flips & labels).sum())} pedestrians)",
    )
    ax.plot([eps, 1 - eps], [eps, 1 - eps], color="grey", lw=1, ls="-")
    ax.axvline(
        np.clip(float_threshold, eps, 1 - eps),
        color="C0",
        ls="--",
        lw=1,
        label=f"float threshold {float_threshold:.3g}",
    )
    ax.axhline(
        np.clip(quant_threshold, eps, 1 - eps),
        color="C3",
        ls="--",
        lw=1,
        label=f"int8 threshold {quant_threshold:.3g}",
    )
    ax.set(
        xscale="logit",
        yscale="logit",
        xlabel=f"{float_name} score (logit axis)",
        ylabel=f"{quant_name} score (logit axis)",
        title=f"int8 vs float on test: {quant_name}",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)
    return _save(fig, plt, path)
