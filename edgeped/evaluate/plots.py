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


def pr_roc_png(curves: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path,
               max_fpr: float, min_recall: float) -> dict[str, Path]:
    """Draws PR and ROC curves for each model's test scores; returns the PNG paths."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _figure()
    paths = {}
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, (labels, scores) in curves.items():
        precision, recall, _ = precision_recall_curve(labels, scores)
        ax.plot(recall, precision, label=name)
    ax.axvline(min_recall, color="grey", ls="--", lw=1, label=f"recall {min_recall}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)", xlim=(0, 1.01),
           ylim=(0, 1.01))
    ax.legend(loc="lower left", fontsize=8)
    paths["pr"] = _save(fig, plt, out_dir / "pr.png")
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(np.maximum(fpr, 1e-4), tpr, label=name)
    ax.axvline(max_fpr, color="grey", ls="--", lw=1, label=f"FPR {max_fpr}")
    ax.axhline(min_recall, color="grey", ls=":", lw=1)
    ax.set(xscale="log", xlabel="false positive rate (log)", ylabel="recall",
           title="ROC (test)", xlim=(1e-4, 1), ylim=(0, 1.01))
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
