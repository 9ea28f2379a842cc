"""Label-free estimates of a model's recall and FPR from its calibrated probabilities.

On an unlabelled shadow window nobody knows which crops are pedestrians, but a
calibrated model says how likely each one is: treating crop i as a pedestrian with
probability p_i (independently), the expected true positives are sum(p_i * y_i) over
the crops the model calls pedestrian (y_i = 1), the expected pedestrians sum(p_i), and

    recall ~= sum(p_i y_i) / sum(p_i),    FPR ~= sum((1 - p_i) y_i) / sum(1 - p_i).

This is confidence-based performance estimation (CBPE, as NannyML does it). The
interval comes from the same model of the labels: each draw samples labels
L_i ~ Bernoulli(p_i) (a Poisson-binomial count of pedestrians) and recomputes recall
and FPR; the quantiles of those draws bound what the labels could plausibly be.

It holds only while the probabilities stay calibrated on the new data: under a
shift that breaks calibration the estimate is wrong too, which is why
``validate_windows`` measures its error wherever labels do exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeped.evaluate.calibration import Calibrator


@dataclass(frozen=True)
class RateEstimate:
    """Estimated recall and FPR of one model on one window, with intervals."""

    crops: int
    expected_pedestrians: float
    recall: float | None
    recall_ci: tuple[float, float] | None
    fpr: float | None
    fpr_ci: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "crops": self.crops,
            "expected_pedestrians": self.expected_pedestrians,
            "recall": self.recall,
            "recall_ci": list(self.recall_ci) if self.recall_ci else None,
            "fpr": self.fpr,
            "fpr_ci": list(self.fpr_ci) if self.fpr_ci else None,
        }


def calibrated(scores: np.ndarray, calibrator: dict | Calibrator | None) -> np.ndarray:
    """The scores through the model's calibrator (its card's), or as they are without one."""
    p = np.asarray(scores, np.float64)
    if calibrator is None:
        return p
    cal = calibrator if isinstance(calibrator, Calibrator) else Calibrator(**calibrator)
    return cal(p)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def estimate_rates(
    p: np.ndarray,
    decisions: np.ndarray,
    *,
    level: float = 0.95,
    draws: int = 1000,
    seed: int = 0,
) -> RateEstimate:
    """CBPE recall and FPR of ``decisions`` given calibrated probabilities ``p``.

    Args:
        p: calibrated probability that each crop is a pedestrian, in [0, 1].
        decisions: the model's 0/1 calls on the same crops.
        level: interval level.
        draws: label draws for the interval (deterministic with ``seed``).

    Raises:
        ValueError: shapes differ, or p lies outside [0, 1].
    """
    p = np.asarray(p, np.float64)
    y = np.asarray(decisions).astype(bool)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"p and decisions must be 1-D of one length, got {p.shape}, {y.shape}")
    if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1 or np.isnan(p).any()):
        raise ValueError("p must hold probabilities in [0, 1]")
    pos, neg = p.sum(), (1 - p).sum()
    recall = float(p[y].sum() / pos) if pos > 0 else None
    fpr = float((1 - p)[y].sum() / neg) if neg > 0 else None
    rng = np.random.default_rng(seed)
    rec_draws, fpr_draws = [], []
    chunk = max(1, min(draws, 2_000_000 // max(p.size, 1)))
    done = 0
    while done < draws:
        k = min(chunk, draws - done)
        labels = rng.random((k, p.size)) < p
        tp = (labels & y).sum(axis=1)
        fp = (~labels & y).sum(axis=1)
        rec_draws.append(_ratio(tp, labels.sum(axis=1)))
        fpr_draws.append(_ratio(fp, (~labels).sum(axis=1)))
        done += k
    alpha = (1 - level) / 2

    def interval(values: list[np.ndarray]) -> tuple[float, float] | None:
        v = np.concatenate(values)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return None
        return (float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha)))

    return RateEstimate(
        crops=int(p.size),
        expected_pedestrians=float(pos),
        recall=recall,
        recall_ci=interval(rec_draws) if recall is not None else None,
        fpr=fpr,
        fpr_ci=interval(fpr_draws) if fpr is not None else None,
    )


def _actual(labels: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    pos, neg = labels == 1, labels == 0
    recall = float(y[pos].mean()) if pos.any() else None
    fpr = float(y[neg].mean()) if neg.any() else None
    return recall, fpr


def validate_windows(
    labels: np.ndarray,
    p: np.ndarray,
    decisions: np.ndarray,
    *,
    window: int = 500,
    level: float = 0.95,
    draws: int = 400,
    seed: int = 0,
) -> dict[str, Any]:
    """The estimate's error against the labels over consecutive windows of ``window`` crops.

    A window is a run of crops in log order (crops of a few drives, as a shadow
    window on the vehicle would be); a last partial window shorter than half a
    window is dropped. Recall is compared only on windows with a pedestrian.

    Returns:
        Mean absolute error of recall and FPR, how often the interval held the true
        value, and every window's figures.
    """
    labels = np.asarray(labels)
    n = int(labels.size)
    rows = []
    for i, start in enumerate(range(0, n, window)):
        stop = min(start + window, n)
        if stop - start < max(1, window // 2):
            continue
        sl = slice(start, stop)
        est = estimate_rates(p[sl], decisions[sl], level=level, draws=draws, seed=seed + i)
        recall, fpr = _actual(labels[sl], np.asarray(decisions[sl]).astype(bool))
        rows.append(
            {
                "start": start,
                "crops": stop - start,
                "pedestrians": int((labels[sl] == 1).sum()),
                "recall": recall,
                "recall_est": est.recall,
                "recall_ci": list(est.recall_ci) if est.recall_ci else None,
                "fpr": fpr,
                "fpr_est": est.fpr,
                "fpr_ci": list(est.fpr_ci) if est.fpr_ci else None,
            }
        )

    def summary(key: str) -> dict[str, Any]:
        pairs = [
            (r[key], r[f"{key}_est"], r[f"{key}_ci"])
            for r in rows
            if r[key] is not None and r[f"{key}_est"] is not None
        ]
        if not pairs:
            return {"windows": 0, "mae": None, "bias": None, "interval_coverage": None}
        err = np.array([e - a for a, e, _ in pairs])
        covered = [ci is not None and ci[0] <= a <= ci[1] for a, _, ci in pairs]
        return {
            "windows": len(pairs),
            "mae": float(np.abs(err).mean()),
            "bias": float(err.mean()),
            "interval_coverage": float(np.mean(covered)),
        }

    return {
        "window_crops": window,
        "level": level,
        "recall": summary("recall"),
        "fpr": summary("fpr"),
        "windows": rows,
    }
