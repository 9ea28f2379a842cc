"""PR and ROC curves as PNG (matplotlib, headless)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from edgeped.fileio import write_bytes_atomic


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pr_roc_png(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    out_dir: Path,
    max_fpr: float,
    min_recall: float,
) -> dict[str, Path]:
    """Draws PR and ROC curves for each model's test scores; returns the PNG paths."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _figure()
    paths = {}
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, (labels, scores) in curves.items():
        precision, recall, _ = precision_recall_curve(labels, scores)
        ax.plot(recall, precision, label=name)
    ax.axvline(min_recall, color="grey", ls="--", lw=1, label=f"recall {min_recall}")
    ax.set(
        xlabel="recall",
        ylabel="precision",
        title="Precision-recall (test)",
        xlim=(0, 1.01),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower left", fontsize=8)
    paths["pr"] = _save(fig, plt, out_dir / "pr.png")
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(np.maximum(fpr, 1e-4), tpr, label=name)
    ax.axvline(max_fpr, color="grey", ls="--", lw=1, label=f"FPR {max_fpr}")
    ax.axhline(min_recall, color="grey", ls=":", lw=1)
    ax.set(
        xscale="log",
        xlabel="false positive rate (log)",
        ylabel="recall",
        title="ROC (test)",
        xlim=(1e-4, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right", fontsize=8)
    paths["roc"] = _save(fig, plt, out_dir / "roc.png")
    return paths


def _save(fig, plt, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def reliability_png(
    calibrations: dict[str, dict], path: Path, title: str = "Reliability (test)"
) -> Path:
    """Reliability diagram: positive rate against mean score per bin, one line per model."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect")
    for name, cal in calibrations.items():
        mean = np.array(cal["mean_score"], dtype=float)
        rate = np.array(cal["positive_rate"], dtype=float)
        ok = ~np.isnan(mean)
        ax.plot(mean[ok], rate[ok], marker="o", ms=3, label=f"{name} (ECE {cal['ece']:.3f})")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed pedestrian rate",
        title=title,
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left", fontsize=7)
    return _save(fig, plt, path)


def recall_vs_size_png(
    points: dict[str, tuple[float, float, tuple[float, float] | None]],
    path: Path,
    min_recall: float,
    max_fpr: float,
) -> Path:
    """Recall at the FPR limit against model size (KiB, log), with CI bars where known."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (size_kib, recall, ci) in points.items():
        err = None if ci is None else [[recall - ci[0]], [ci[1] - recall]]
        ax.errorbar([size_kib], [recall], yerr=err, fmt="o", capsize=3, label=name)
        ax.annotate(name, (size_kib, recall), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.axhline(min_recall, color="grey", ls="--", lw=1, label=f"target {min_recall}")
    ax.set(
        xscale="log",
        xlabel="model size (KiB, log)",
        ylabel=f"test recall at val FPR <= {max_fpr}",
        title="Recall vs size",
        ylim=(0, 1.02),
    )
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, plt, path)
