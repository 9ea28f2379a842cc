"""Calibration: expected calibration error and reliability bins."""

from __future__ import annotations

import numpy as np


def reliability(labels: np.ndarray, scores: np.ndarray, bins: int = 15) -> dict:
    """Equal-width bins over [0, 1]: count, mean score and positive rate per bin, and ECE.

    ECE = sum_b (n_b / N) * |positive_rate_b - mean_score_b|.
    """
    labels = np.asarray(labels).astype(float)
    scores = np.asarray(scores, dtype=np.float64)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1], right=False), 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(float)
    score_sum = np.bincount(which, weights=scores, minlength=bins)
    pos_sum = np.bincount(which, weights=labels, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.where(count > 0, score_sum / count, np.nan)
        pos_rate = np.where(count > 0, pos_sum / count, np.nan)
    n = max(count.sum(), 1.0)
    gap = np.where(count > 0, np.abs(pos_rate - mean_score), 0.0)
    return {
        "ece": float((count / n * gap).sum()),
        "bins": bins,
        "edges": edges.tolist(),
        "count": count.astype(int).tolist(),
        "mean_score": mean_score.tolist(),
        "positive_rate": pos_rate.tolist(),
    }
