"""Disagreement between a baseline and a candidate on the same crops: the shadow report.

Everything here is pure: `shadow_report` takes `ShadowRecords` (from a device log or
offline scores) and returns a `ShadowReport`; `edgeped.rollout.shadow_render` writes it.

Rates (TFMA's flip-rate family, with the directions apart):
- flip rate: crops where the two decisions differ, over all crops;
- new misses: baseline says pedestrian, candidate says background (safety-critical);
  ``new_miss_rate`` is over the crops the baseline calls pedestrian,
  ``new_miss_rate_all`` over all crops;
- new detections: baseline background, candidate pedestrian, over the baseline's
  background calls (and over all crops).
Where every crop carries a label (offline test scores, a labelled replay set) the
verdict figures judge errors instead (``basis: "labels"``): ``new_miss_rate`` counts the
pedestrians the candidate loses, baseline false alarms it rejects are a gain, and
``harmful_flip_rate`` counts only flips that add an error; the raw disagreement stays
under ``disagreement``. On unlabelled vehicle logs (``basis: "disagreement"``) the same
names mean disagreement with the baseline, which is all that can be known there.
Every rate carries a Wilson 95% interval; McNemar's exact test asks whether the two
directions are out of balance (one model calls pedestrian more often than the other).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest

from edgeped.provenance import stamp
from edgeped.rollout.shadow_log import ShadowRecords

REPORT_KIND = "edgeped.shadow_report"


@dataclass(frozen=True)
class ShadowConfig:
    """How the report judges size and what it shows.

    min_slice_crops: a slice with fewer crops is marked too small to judge.
    level: confidence level of every interval.
    gallery_max: new-miss crops shown in the gallery (highest baseline score first).
    estimate_window: crops per window when the label-free estimate is checked against labels.
    """

    min_slice_crops: int = 30
    level: float = 0.95
    gallery_max: int = 24
    estimate_window: int = 500

    def __post_init__(self) -> None:
        if not isinstance(self.min_slice_crops, int) or self.min_slice_crops < 1:
            raise ValueError(
                f"min_slice_crops must be an integer >= 1, got {self.min_slice_crops!r}"
            )
        if not 0.5 <= self.level < 1:
            raise ValueError(f"level must be in [0.5, 1), got {self.level!r}")
        if not isinstance(self.gallery_max, int) or self.gallery_max < 0:
            raise ValueError(f"gallery_max must be an integer >= 0, got {self.gallery_max!r}")
        if not isinstance(self.estimate_window, int) or self.estimate_window < 10:
            raise ValueError(
                f"estimate_window must be an integer >= 10, got {self.estimate_window!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when there are no trials."""
    if trials == 0:
        return (0.0, 1.0)
    ci = binomtest(int(successes), int(trials)).proportion_ci(level, method="wilson")
    return (float(ci.low), float(ci.high))


def rate(count: int, of: int, level: float) -> dict[str, Any]:
    """A count, its denominator, the rate (None when undefined) and its Wilson interval."""
    return {
        "count": int(count),
        "of": int(of),
        "rate": count / of if of else None,
        "ci95": list(wilson(count, of, level)) if of else None,
    }


def mcnemar_exact(new_detections: int, new_misses: int) -> dict[str, Any]:
    """Exact (binomial) McNemar test on the discordant pairs, two-sided."""
    n = new_detections + new_misses
    p = 1.0 if n == 0 else float(binomtest(min(new_detections, new_misses), n, 0.5).pvalue)
    return {
        "discordant": n,
        "new_detections": int(new_detections),
        "new_misses": int(new_misses),
        "p_value": min(p, 1.0),
        "test": "exact binomial on discordant pairs, two-sided",
    }


def _disagreement(b: np.ndarray, c: np.ndarray, level: float) -> dict[str, Any]:
    n = int(b.size)
    flips = b != c
    new_miss = (b == 1) & (c == 0)
    new_det = (b == 0) & (c == 1)
    base_pos = int((b == 1).sum())
    return {
        "crops": n,
        "basis": "disagreement",
        "flip_rate": rate(int(flips.sum()), n, level),
        "new_miss_rate": rate(int(new_miss.sum()), base_pos, level),
        "new_miss_rate_all": rate(int(new_miss.sum()), n, level),
        "new_detection_rate": rate(int(new_det.sum()), n - base_pos, level),
        "new_detection_rate_all": rate(int(new_det.sum()), n, level),
        "baseline_positive_calls": base_pos,
        "candidate_positive_calls": int((c == 1).sum()),
        "mcnemar": mcnemar_exact(int(new_det.sum()), int(new_miss.sum())),
    }


def _quality(labels: np.ndarray, y: np.ndarray, level: float) -> dict[str, Any]:
    pos, neg = labels == 1, labels == 0
    return {
        "recall": rate(int((y[pos] == 1).sum()), int(pos.sum()), level),
        "fpr": rate(int((y[neg] == 1).sum()), int(neg.sum()), level),
    }


def _judged_on_labels(
    row: dict[str, Any], labels: np.ndarray, b: np.ndarray, c: np.ndarray, level: float
) -> None:
    """Rewrites the row's rates to judge errors, not disagreement, where every crop is labelled.

    ``new_miss_rate`` becomes the pedestrians the baseline found that the candidate loses
    (over the pedestrians the baseline found); the baseline's false alarms the candidate
    rejects are a gain (``false_alarms_removed``), as are pedestrians only the candidate
    finds. ``harmful_flip_rate`` counts only flips that add an error. The plain
    disagreement figures stay, under ``disagreement``.
    """
    pos, neg = labels == 1, labels == 0
    lost = (b == 1) & (c == 0) & pos
    removed = (b == 1) & (c == 0) & neg
    found = (b == 0) & (c == 1) & pos
    added = (b == 0) & (c == 1) & neg
    row["disagreement"] = {k: row[k] for k in ("flip_rate", "new_miss_rate", "new_detection_rate")}
    row["basis"] = "labels"
    row["new_miss_rate"] = rate(int(lost.sum()), int(((b == 1) & pos).sum()), level)
    row["new_false_alarm_rate"] = rate(int(added.sum()), int(((b == 0) & neg).sum()), level)
    row["harmful_flip_rate"] = rate(int((lost | added).sum()), int(b.size), level)
    row["gains"] = {
        "false_alarms_removed": rate(int(removed.sum()), int(((b == 1) & neg).sum()), level),
        "pedestrians_found": rate(int(found.sum()), int(((b == 0) & pos).sum()), level),
    }
    row["new_misses_of_pedestrians"] = rate(int(lost.sum()), int(pos.sum()), level)


def _row(records: ShadowRecords, mask: np.ndarray, config: ShadowConfig) -> dict[str, Any]:
    b = records.baseline.decisions[mask]
    c = records.candidate.decisions[mask]
    row = _disagreement(b, c, config.level)
    row["judgeable"] = row["crops"] >= config.min_slice_crops
    if records.labels is not None:
        labels = records.labels[mask]
        known = labels >= 0
        row["labelled"] = int(known.sum())
        if known.any():
            row["baseline"] = _quality(labels[known], b[known], config.level)
            row["candidate"] = _quality(labels[known], c[known], config.level)
            real = (b == 1) & (c == 0) & (labels == 1)
            row["new_misses_of_pedestrians"] = rate(
                int(real.sum()), int((labels == 1).sum()), config.level
            )
        if known.all() and known.size:
            _judged_on_labels(row, labels, b, c, config.level)
    return row


@dataclass(frozen=True)
class ShadowReport:
    """The comparison: overall and per-slice rows, new-miss crops, timing, integrity."""

    baseline: dict[str, Any]
    candidate: dict[str, Any]
    source: dict[str, Any]
    config: ShadowConfig
    overall: dict[str, Any]
    slices: dict[str, dict[str, dict[str, Any]]]
    new_miss_ids: tuple[str, ...]
    integrity: dict[str, Any]
    score_agreement: dict[str, Any]
    invoke_ms: dict[str, Any]
    cost: dict[str, Any] | None
    estimate: dict[str, Any] | None = None  # label-free recall/FPR (edgeped.rollout.estimate)

    def to_dict(self) -> dict[str, Any]:
        return {
            **stamp(REPORT_KIND),
            "baseline": self.baseline,
            "candidate": self.candidate,
            "source": self.source,
            "config": self.config.to_dict(),
            "overall": self.overall,
            "slices": self.slices,
            "new_miss_crop_ids": list(self.new_miss_ids),
            "integrity": self.integrity,
            "score_agreement": self.score_agreement,
            "invoke_ms": self.invoke_ms,
            "cost": self.cost,
            "estimate": self.estimate,
        }


def _ms(values: np.ndarray | None) -> dict[str, float] | None:
    if values is None or values.size == 0:
        return None
    return {
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "mean": float(values.mean()),
    }


def _model_info(info: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "name", "sha256", "size_bytes", "threshold", "threshold_int8", "decision_rule",
        "calibrator",
    )  # fmt: skip
    return {k: info.get(k) for k in keep if k in info}


def label_free_estimate(records: ShadowRecords, config: ShadowConfig) -> dict[str, Any]:
    """Each model's recall and FPR estimated from its calibrated probabilities (CBPE).

    Where every crop is labelled, the estimate is also checked against the labels over
    windows of ``config.estimate_window`` crops (its mean absolute error).
    """
    from edgeped.rollout.estimate import calibrated, estimate_rates, validate_windows

    out: dict[str, Any] = {
        "method": "CBPE: expected TP/FP from calibrated probabilities; interval from "
        "Bernoulli label draws (Poisson-binomial)",
    }
    labelled = records.labels is not None and len(records) and bool((records.labels >= 0).all())
    for role, side, info in (
        ("baseline", records.baseline, records.baseline_info),
        ("candidate", records.candidate, records.candidate_info),
    ):
        cal = info.get("calibrator")
        p = calibrated(side.scores, cal)
        est = estimate_rates(p, side.decisions, level=config.level)
        entry = {"calibrated": cal is not None, **est.to_dict()}
        if labelled:
            entry["validation"] = validate_windows(
                records.labels, p, side.decisions, window=config.estimate_window, level=config.level
            )
        out[role] = entry
    return out


def shadow_report(records: ShadowRecords, config: ShadowConfig = ShadowConfig()) -> ShadowReport:
    """Compares the two models' decisions on every crop, overall and per slice."""
    everything = np.ones(len(records), bool)
    slices = {
        name: {
            str(value): _row(records, values == value, config)
            for value in sorted(np.unique(values))
        }
        for name, values in sorted(records.tags.items())
    }
    b, c = records.baseline, records.candidate
    new_miss = (b.decisions == 1) & (c.decisions == 0)
    order = np.argsort(-b.scores[new_miss], kind="stable")
    diff = c.scores - b.scores
    return ShadowReport(
        baseline=_model_info(records.baseline_info),
        candidate=_model_info(records.candidate_info),
        source={k: v for k, v in records.source.items() if k != "environment"}
        | {"environment": records.source.get("environment", {})},
        config=config,
        overall=_row(records, everything, config),
        slices=slices,
        new_miss_ids=tuple(str(x) for x in records.crop_ids[new_miss][order]),
        integrity=records.integrity.to_dict(),
        score_agreement={
            "mean_abs_diff": float(np.abs(diff).mean()),
            "max_abs_diff": float(np.abs(diff).max()),
            "mean_diff": float(diff.mean()),
            "pearson_r": float(np.corrcoef(b.scores, c.scores)[0, 1])
            if b.scores.std() > 0 and c.scores.std() > 0
            else None,
        },
        invoke_ms={"baseline": _ms(b.invoke_ms), "candidate": _ms(c.invoke_ms)},
        cost=records.cost,
        estimate=label_free_estimate(records, config),
    )
