"""95% confidence intervals: exact binomial, and bootstrap over drives.

Crops from one drive are correlated (same scene, light, pedestrians seen
repeatedly), so resampling crops would understate uncertainty; the bootstrap
here resamples whole drives. The exact (Clopper-Pearson) interval treats crops
as independent and is reported beside it as the optimistic bound.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta
from sklearn.metrics import average_precision_score


def clopper_pearson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for a proportion; (0, 1) when there are no trials."""
    if trials == 0:
        return (0.0, 1.0)
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, trials], got {successes} of {trials}")
    a = 1.0 - level
    lo = 0.0 if successes == 0 else float(beta.ppf(a / 2, successes, trials - successes + 1))
    hi = (
        1.0
        if successes == trials
        else float(beta.ppf(1 - a / 2, successes + 1, trials - successes))
    )
    return (lo, hi)


def bootstrap_by_group(
    labels: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    threshold: float,
    *,
    resamples: int = 1000,
    auc_resamples: int = 300,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float] | None]:
    """Percentile intervals for recall, FPR (and AUC-PR) resampling whole groups (drives).

    Returns None for a metric no resample can define (e.g. no positives at all).
    """
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(groups).astype(str)
    uniq, inverse = np.unique(groups, return_inverse=True)
    g = len(uniq)
    pred = scores >= threshold
    per = np.zeros((g, 4))
    np.add.at(per[:, 0], inverse, (pred & (labels == 1)))
    np.add.at(per[:, 1], inverse, labels == 1)
    np.add.at(per[:, 2], inverse, (pred & (labels == 0)))
    np.add.at(per[:, 3], inverse, labels == 0)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, g, size=(resamples, g))
    counts = np.zeros((resamples, g))
    np.add.at(counts, (np.arange(resamples)[:, None], picks), 1)
    sums = counts @ per
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]

    def interval(num, den):
        ok = den > 0
        if not ok.any():
            return None
        lo, hi = np.percentile(num[ok] / den[ok], q)
        return (float(lo), float(hi))

    out = {"recall": interval(sums[:, 0], sums[:, 1]), "fpr": interval(sums[:, 2], sums[:, 3])}
    members = [np.flatnonzero(inverse == i) for i in range(g)]
    aps = []
    for row in picks[:auc_resamples]:
        idx = np.concatenate([members[i] for i in row])
        y = labels[idx]
        if 0 < y.sum() < y.size:
            aps.append(average_precision_score(y, scores[idx]))
    out["auc_pr"] = (
        (float(np.percentile(aps, q[0])), float(np.percentile(aps, q[1]))) if aps else None
    )
    out["groups"] = g
    out["resamples"] = resamples
    return out
