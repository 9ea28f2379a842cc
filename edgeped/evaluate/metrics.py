"""Classification metrics at an operating point, threshold selection and slices.

Convention: a crop is called pedestrian when score >= threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from edgeped.errors import EdgepedError


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    recall: float
    fpr: float
    tp: int
    fp: int
    positives: int
    negatives: int

    def to_dict(self) -> dict:
        return asdict(self)


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(int).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise EdgepedError(
            f"{labels.size} labels but {scores.size} scores",
            "score every labelled crop exactly once",
        )
    if labels.size == 0:
        raise EdgepedError("no crops to evaluate", "the split is empty")
    if np.isnan(scores).any():
        raise EdgepedError("scores contain NaN", "the model produced NaN: check its inputs")
    return labels, scores


def rates_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> OperatingPoint:
    """Recall (TPR) and FPR when calling score >= threshold positive."""
    labels, scores = _check(labels, scores)
    pred = scores >= threshold
    pos, neg = int(labels.sum()), int((labels == 0).sum())
    tp, fp = int((pred & (labels == 1)).sum()), int((pred & (labels == 0)).sum())
    return OperatingPoint(
        float(threshold),
        tp / pos if pos else float("nan"),
        fp / neg if neg else float("nan"),
        tp,
        fp,
        pos,
        neg,
    )


def threshold_max_recall(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> OperatingPoint:
    """The lowest threshold whose FPR <= max_fpr (highest recall; ties -> lowest FPR).

    Raises:
        EdgepedError: one class only (recall or FPR undefined).
    """
    labels, scores = _check(labels, scores)
    if labels.min() == labels.max():
        raise EdgepedError(
            "threshold selection needs both pedestrians and background, "
            f"got only label {labels[0]}",
            "use a validation split with both classes",
        )
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    feasible = np.flatnonzero(fpr <= max_fpr + 1e-12)
    best_tpr = tpr[feasible].max()
    # Among feasible points with the best recall, the first (highest threshold) has the lowest FPR.
    idx = feasible[np.flatnonzero(tpr[feasible] == best_tpr)[0]]
    threshold = float(thresholds[idx])
    if not np.isfinite(threshold):  # sklearn's "nothing positive" point
        threshold = float(np.nextafter(scores.max(), np.inf))
    return rates_at(labels, scores, threshold)


def threshold_min_fpr(labels: np.ndarray, scores: np.ndarray, min_recall: float) -> OperatingPoint:
    """The highest threshold whose recall >= min_recall (lowest FPR meeting the recall floor)."""
    labels, scores = _check(labels, scores)
    if labels.min() == labels.max():
        raise EdgepedError(
            "threshold selection needs both classes", "use a split with both classes"
        )
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    idx = int(np.flatnonzero(tpr >= min_recall - 1e-12)[0])
    return rates_at(labels, scores, float(thresholds[idx]))


def ranking_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUC-PR (average precision) and ROC-AUC; NaN where a class is absent."""
    labels, scores = _check(labels, scores)
    if labels.min() == labels.max():
        return {"auc_pr": float("nan"), "roc_auc": float("nan")}
    return {
        "auc_pr": float(average_precision_score(labels, scores)),
        "roc_auc": float(roc_auc_score(labels, scores)),
    }


def slice_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    tags: dict[str, np.ndarray],
    min_samples: int = 30,
) -> dict[str, dict]:
    """Recall and FPR per value of each tag, flagged `judgeable` when big enough.

    Recall is judged on a slice's positives and FPR on its negatives; each is
    marked too small when fewer than `min_samples` crops back it.
    """
    labels, scores = _check(labels, scores)
    out: dict[str, dict] = {}
    for name, values in tags.items():
        values = np.asarray(values).astype(str)
        out[name] = {}
        for value in sorted(np.unique(values)):
            mask = values == value
            op = rates_at(labels[mask], scores[mask], threshold)
            out[name][value] = {
                "crops": int(mask.sum()),
                "positives": op.positives,
                "negatives": op.negatives,
                "recall": None if op.positives == 0 else op.recall,
                "fpr": None if op.negatives == 0 else op.fpr,
                "recall_judgeable": op.positives >= min_samples,
                "fpr_judgeable": op.negatives >= min_samples,
            }
    return out


def decision_flips(
    labels: np.ndarray,
    scores_a: np.ndarray,
    threshold_a: float,
    scores_b: np.ndarray,
    threshold_b: float,
) -> dict[str, float]:
    """How often two models' decisions differ at their own thresholds, overall and per class."""
    labels, scores_a = _check(labels, scores_a)
    _, scores_b = _check(labels, scores_b)
    flips = (scores_a >= threshold_a) != (scores_b >= threshold_b)
    pos, neg = labels == 1, labels == 0
    return {
        "flip_rate": float(flips.mean()),
        "flips": int(flips.sum()),
        "flip_rate_positives": float(flips[pos].mean()) if pos.any() else float("nan"),
        "flip_rate_negatives": float(flips[neg].mean()) if neg.any() else float("nan"),
        "score_mean_abs_diff": float(np.abs(scores_a - scores_b).mean()),
    }
