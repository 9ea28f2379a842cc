"""Calibration: expected calibration error and reliability bins."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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


EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Calibrator:
    """p' = sigmoid(slope * logit(p) + bias): temperature scaling (slope = 1/T) with a bias.

    The bias is the prior correction: a model trained at one class mix (balanced
    batches, weighted loss) gets its log-odds shifted to the mix of the data it was
    fitted on. slope > 0 keeps the order of scores, so a threshold chosen on val
    selects the same crops before and after.
    """

    slope: float = 1.0
    bias: float = 0.0
    method: str = "identity"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.slope) and self.slope > 0 and np.isfinite(self.bias)):
            raise ValueError(
                f"calibrator slope must be finite and > 0 and bias finite, got "
                f"{self.slope}, {self.bias}"
            )

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        z = self.slope * _logit(scores) + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict:
        return asdict(self)


def fit_platt(labels: np.ndarray, scores: np.ndarray) -> Calibrator:
    """Fits slope and bias by minimising the log loss on (val) labels and scores.

    Raises:
        ValueError: labels hold one class only (nothing to fit).
    """
    from scipy.optimize import minimize

    y = np.asarray(labels).astype(np.float64)
    if y.min() == y.max():
        raise ValueError("calibration needs both classes in the fitting split")
    z = _logit(scores)

    def nll(params):
        a, b = params
        t = a * z + b
        # log(1 + e^t) - y t, and its gradient, computed stably.
        loss = np.logaddexp(0.0, t) - y * t
        g = 1.0 / (1.0 + np.exp(-t)) - y
        return loss.mean(), np.array([(g * z).mean(), g.mean()])

    fit = minimize(nll, x0=[1.0, 0.0], jac=True, method="L-BFGS-B", bounds=[(1e-3, 1e3), (-50, 50)])
    return Calibrator(float(fit.x[0]), float(fit.x[1]), "platt: temperature + bias, fit on val")


def prior_shift(train_prior: float, deploy_prior: float) -> Calibrator:
    """The log-odds shift that moves scores learnt at train_prior to deploy_prior."""
    for name, p in (("train_prior", train_prior), ("deploy_prior", deploy_prior)):
        if not 0.0 < p < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {p}")
    bias = float(_logit(np.array(deploy_prior)) - _logit(np.array(train_prior)))
    return Calibrator(1.0, bias, f"prior shift {train_prior:.3f} -> {deploy_prior:.3f}")


def calibration_report(
    val_labels: np.ndarray, val_scores: np.ndarray, test_labels: np.ndarray, test_scores: np.ndarray
) -> dict:
    """Fits on val, measures on test: ECE and reliability before and after, and the fit."""
    before = reliability(test_labels, test_scores)
    try:
        cal = fit_platt(val_labels, val_scores)
    except ValueError as exc:
        return {"fitted": False, "reason": str(exc), "test_ece_raw": before["ece"]}
    after = reliability(test_labels, cal(test_scores))
    return {
        "fitted": True,
        "calibrator": cal.to_dict(),
        "fitted_on": "val",
        "test_ece_raw": before["ece"],
        "test_ece_calibrated": after["ece"],
        "val_ece_raw": reliability(val_labels, val_scores)["ece"],
        "test_reliability_calibrated": after,
    }
