"""Input drift: a frozen reference profile recorded at evaluation, and checks of a window.

The reference holds, per feature (the six metadata fields, crop brightness and contrast,
and every model's score), quantile bin edges fitted ONCE on the reference data and frozen,
the reference share in each bin, the missing rate, and the reference CDF at 1001
quantiles (for a KS test without keeping the data). Per slice (lighting, weather, scene)
it keeps the counts in the same frozen bins. A window (a shadow log or a dataset) is
binned with those edges, never refitted, so a window cannot move its own yardstick.

Per feature: PSI (warn 0.1, alert 0.25), a one-sample KS test against the reference CDF
with a Bonferroni correction over every test made, and the change in missing rate.
Windows or slices with too few values are marked too small, never passed silently.
numpy and scipy only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import kstest

from edgeped.data.schema import METADATA_FIELDS
from edgeped.provenance import stamp

REFERENCE_KIND = "edgeped.drift_reference"
REPORT_KIND = "edgeped.drift_report"
LUMA = (0.299, 0.587, 0.114)  # must match device/edgeped_device/shadow.py image_stats
IMAGE_FEATURES = ("brightness", "contrast")
FEATURES = (*METADATA_FIELDS, *IMAGE_FEATURES)
SLICE_TAGS = ("lighting", "weather", "scene")
CDF_POINTS = 1001
PSI_FLOOR = 1e-4
MIN_DISTINCT_FOR_KS = 200  # distinct reference quantiles (of 1001) for the KS test  # share given to an empty bin so PSI stays finite


def image_stats(images: np.ndarray) -> np.ndarray:
    """(N, 2): mean brightness and contrast (mean and std of luma, in 0..1) per crop."""
    out = np.empty((len(images), 2), np.float64)
    weights = np.asarray(LUMA, np.float32)
    for start in range(0, len(images), 512):
        luma = images[start : start + 512].astype(np.float32) @ weights
        out[start : start + 512, 0] = luma.mean(axis=(1, 2)) / 255.0
        out[start : start + 512, 1] = luma.std(axis=(1, 2)) / 255.0
    return out


def feature_matrix(metadata: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """(N, 8) in FEATURES order, NaN where a metadata value is missing."""
    return np.concatenate([np.asarray(metadata, np.float64), stats], axis=1)


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds of the check (PSI levels as Evidently and NannyML use them)."""

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    ks_alpha: float = 0.05
    # Crops of a drive are correlated, so with thousands of crops KS p-values flag tiny
    # differences (D ~ 0.03 between the train and test drives of one dataset): a KS result
    # counts only when it is significant AND its statistic D reaches this effect size.
    ks_min_statistic: float = 0.1
    missing_warn: float = 0.05
    missing_alert: float = 0.10
    min_window: int = 500
    min_slice: int = 200
    bins: int = 10

    def __post_init__(self) -> None:
        for name in ("psi_warn", "psi_alert", "missing_warn", "missing_alert"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        for warn, alert in (("psi_warn", "psi_alert"), ("missing_warn", "missing_alert")):
            if getattr(self, alert) < getattr(self, warn):
                raise ValueError(
                    f"{alert} must be >= {warn}, got {getattr(self, alert)} < {getattr(self, warn)}"
                )
        if not 0 < self.ks_min_statistic < 1:
            raise ValueError(f"ks_min_statistic must be in (0, 1), got {self.ks_min_statistic!r}")
        if not 0 < self.ks_alpha < 1:
            raise ValueError(f"ks_alpha must be in (0, 1), got {self.ks_alpha!r}")
        for name in ("min_window", "min_slice", "bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _profile(values: np.ndarray, bins: int) -> dict[str, Any]:
    """Frozen edges, reference shares, missing rate and CDF quantiles of one feature."""
    present = values[~np.isnan(values)]
    missing = 1.0 - present.size / values.size if values.size else 0.0
    if present.size == 0:
        return {"n": int(values.size), "missing_rate": missing, "edges": [], "shares": [],
                "cdf": []}  # fmt: skip
    inner = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(inner, present, side="right"), minlength=inner.size + 1)
    return {
        "n": int(values.size),
        "missing_rate": float(missing),
        "edges": [float(e) for e in inner],
        "shares": [float(c) for c in counts / present.size],
        "cdf": [float(q) for q in np.quantile(present, np.linspace(0, 1, CDF_POINTS))],
    }


def _counts(values: np.ndarray, edges: list[float]) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    counts = np.bincount(
        np.searchsorted(np.asarray(edges), present, side="right"), minlength=len(edges) + 1
    )
    return {
        "n": int(values.size),
        "missing_rate": 1.0 - present.size / values.size if values.size else 0.0,
        "counts": [int(c) for c in counts],
    }


def reference_profile(
    features: np.ndarray,
    tags: dict[str, np.ndarray],
    scores: dict[str, np.ndarray],
    models: dict[str, dict[str, Any]],
    *,
    bins: int = 10,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Builds the reference from the reference data (train+val features, val scores).

    Args:
        features: (N, 8) in FEATURES order (NaN = missing).
        tags: slice name -> (N,) values, for per-slice counts.
        scores: model name -> val probabilities.
        models: model name -> {"sha256": ..., ...}, recorded beside each score profile.
    """
    profile = {name: _profile(features[:, i], bins) for i, name in enumerate(FEATURES)}
    slices = {}
    for tag in SLICE_TAGS:
        if tag not in tags:
            continue
        values = np.asarray(tags[tag]).astype(str)
        slices[tag] = {
            str(v): {
                name: _counts(features[values == v, i], profile[name]["edges"])
                for i, name in enumerate(FEATURES)
            }
            for v in sorted(np.unique(values))
        }
    return {
        **stamp(REFERENCE_KIND),
        "features": profile,
        "slices": slices,
        "scores": {
            name: {**_profile(np.asarray(s, np.float64), bins), **models.get(name, {})}
            for name, s in scores.items()
        },
        "bins": bins,
        "source": source or {},
    }


def psi(ref_shares: np.ndarray, counts: np.ndarray) -> float:
    """Population stability index of window counts against reference shares."""
    total = counts.sum()
    if total == 0:
        return float("nan")
    a = np.maximum(counts / total, PSI_FLOOR)
    e = np.maximum(np.asarray(ref_shares, np.float64), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _ref_cdf(cdf: list[float]):
    q = np.asarray(cdf)
    p = np.linspace(0, 1, q.size)

    def f(x):
        return np.interp(x, q, p, left=0.0, right=1.0)

    return f


@dataclass(frozen=True)
class WindowData:
    """What a window offers the check: features, optional slices and model scores."""

    features: np.ndarray  # (N, 8)
    tags: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)


def _status(row: dict[str, Any], config: DriftConfig) -> str:
    if row.get("too_small"):
        return "too_small"
    psi_v, dm = row.get("psi"), abs(row.get("missing_change") or 0.0)
    if (psi_v is not None and psi_v >= config.psi_alert) or dm >= config.missing_alert:
        return "alert"
    if (
        (psi_v is not None and psi_v >= config.psi_warn)
        or dm >= config.missing_warn
        or row.get("ks_significant")
    ):
        return "warn"
    return "ok"


def _feature_row(
    values: np.ndarray, ref: dict[str, Any], minimum: int, cdf: list[float] | None
) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    missing = 1.0 - present.size / values.size if values.size else float("nan")
    row: dict[str, Any] = {
        "n": int(values.size),
        "present": int(present.size),
        "missing_rate": missing,
        "reference_missing_rate": ref["missing_rate"],
        "missing_change": missing - ref["missing_rate"] if values.size else None,
        "too_small": present.size < minimum,
        "psi": None,
        "ks_statistic": None,
        "ks_p": None,
    }
    if not ref.get("edges") and not ref.get("shares"):
        return row
    counts = np.bincount(
        np.searchsorted(np.asarray(ref["edges"]), present, side="right"),
        minlength=len(ref["edges"]) + 1,
    )
    ref_shares = ref["shares"] if "shares" in ref else _shares(ref["counts"])
    row["psi"] = psi(np.asarray(ref_shares), counts) if present.size else None
    row["window_shares"] = [float(c) for c in counts / max(present.size, 1)]
    row["reference_shares"] = list(ref_shares)
    # KS needs a continuous reference: an int8 model's scores take a few dozen values, and
    # a clipped field (analog gain at 0 dB) has an atom the one-sample test cannot take.
    if cdf and present.size and _continuous(cdf):
        test = kstest(present, _ref_cdf(cdf))
        row["ks_statistic"], row["ks_p"] = float(test.statistic), float(test.pvalue)
    return row


def _continuous(cdf: list[float]) -> bool:
    """No value holds more than 1% of the reference quantiles, and enough distinct ones."""
    values, counts = np.unique(np.asarray(cdf), return_counts=True)
    return values.size >= MIN_DISTINCT_FOR_KS and counts.max() <= len(cdf) // 100


def _shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def check_drift(
    reference: dict[str, Any], window: WindowData, config: DriftConfig | None = None
) -> dict[str, Any]:
    """PSI, KS (Bonferroni) and missing-rate change per feature, overall and per slice.

    Returns:
        The drift report (JSON-ready): ``status`` is "alert", "warn", "ok" or
        "too_small" (the window cannot be judged), with a row per feature and slice.
    """
    config = config or DriftConfig()
    ref_f, rows, tests = reference["features"], {}, 0
    for i, name in enumerate(FEATURES):
        rows[name] = _feature_row(
            window.features[:, i], ref_f[name], config.min_window, ref_f[name]["cdf"]
        )
        tests += rows[name]["ks_p"] is not None
    score_rows = {}
    for name, values in window.scores.items():
        ref = reference["scores"].get(name)
        if ref is None:
            continue
        score_rows[name] = _feature_row(
            np.asarray(values, np.float64), ref, config.min_window, ref["cdf"]
        )
        tests += score_rows[name]["ks_p"] is not None
    slice_rows: dict[str, dict[str, Any]] = {}
    for tag, values in window.tags.items():
        if tag not in reference["slices"]:
            continue
        values = np.asarray(values).astype(str)
        slice_rows[tag] = {}
        for value in sorted(np.unique(values)):
            ref_slice = reference["slices"][tag].get(str(value))
            mask = values == value
            if ref_slice is None:
                slice_rows[tag][str(value)] = {"crops": int(mask.sum()), "status": "new_slice",
                                               "features": {}}  # fmt: skip
                continue
            feats = {}
            for i, name in enumerate(FEATURES):
                ref = {
                    "edges": ref_f[name]["edges"],
                    "counts": ref_slice[name]["counts"],
                    "missing_rate": ref_slice[name]["missing_rate"],
                }
                feats[name] = _feature_row(window.features[mask, i], ref, config.min_slice, None)
                feats[name]["status"] = _status(feats[name], config)
            slice_rows[tag][str(value)] = {
                "crops": int(mask.sum()),
                "status": _worst([r["status"] for r in feats.values()]),
                "features": feats,
            }
    bonferroni = config.ks_alpha / max(tests, 1)
    for row in [*rows.values(), *score_rows.values()]:
        row["ks_significant"] = (
            row["ks_p"] is not None
            and row["ks_p"] < bonferroni
            and row["ks_statistic"] >= config.ks_min_statistic
        )
        row["status"] = _status(row, config)
    n = int(window.features.shape[0])
    too_small = n < config.min_window
    status = "too_small" if too_small else _worst(
        [r["status"] for r in [*rows.values(), *score_rows.values()]]
    )  # fmt: skip
    flagged = {
        level: sorted(k for k, r in [*rows.items(), *score_rows.items()] if r["status"] == level)
        for level in ("alert", "warn")
    }
    return {
        **stamp(REPORT_KIND),
        "status": status,
        "window": {"crops": n, **window.source},
        "config": config.to_dict(),
        "ks_tests": tests,
        "ks_alpha_bonferroni": bonferroni,
        "features": rows,
        "scores": score_rows,
        "slices": slice_rows,
        "flagged": flagged,
        "reference": reference.get("source", {}),
    }


_ORDER = ("too_small", "ok", "warn", "alert")


def _worst(statuses: list[str]) -> str:
    judged = [s for s in statuses if s in ("ok", "warn", "alert")]
    if not judged:
        return "too_small"
    return max(judged, key=_ORDER.index)
