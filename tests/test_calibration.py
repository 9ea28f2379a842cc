"""Calibration: temperature + bias fitted on val, prior shift, ECE before and after."""

import numpy as np
import pytest

from edgeped.evaluate.calibration import (
    Calibrator,
    calibration_report,
    fit_platt,
    prior_shift,
    reliability,
)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _miscalibrated(n: int, seed: int, slope: float = 0.5, bias: float = 1.5):
    """Labels drawn from true probabilities q; scores p with logit(q) = slope*logit(p) + bias."""
    rng = np.random.default_rng(seed)
    z_true = rng.normal(-1.0, 2.0, n)
    labels = (rng.random(n) < _sigmoid(z_true)).astype(int)
    scores = _sigmoid((z_true - bias) / slope)
    return labels, scores


def test_platt_recovers_the_distortion_and_lowers_ece():
    labels, scores = _miscalibrated(20000, seed=0)
    cal = fit_platt(labels, scores)
    assert cal.slope == pytest.approx(0.5, abs=0.05)
    assert cal.bias == pytest.approx(1.5, abs=0.1)
    test_labels, test_scores = _miscalibrated(20000, seed=1)
    assert reliability(test_labels, test_scores)["ece"] > 0.1
    assert reliability(test_labels, cal(test_scores))["ece"] < 0.02


def test_calibration_keeps_the_order_of_scores():
    labels, scores = _miscalibrated(2000, seed=2)
    out = fit_platt(labels, scores)(scores)
    order = np.argsort(scores, kind="stable")
    assert np.all(np.diff(out[order]) >= 0)


def test_prior_shift_moves_balanced_scores_to_the_deployment_prior():
    # A score of 0.5 learnt with 25% positives per batch means the class odds of the
    # sampled mix; at a 2.5% prior the same evidence gives odds x (0.025/0.975)/(0.25/0.75).
    shift = prior_shift(0.25, 0.025)
    expected = (1 / 3) * (0.025 / 0.975) / (0.25 / 0.75)
    assert shift(np.array([0.25]))[0] == pytest.approx(expected / (1 + expected), rel=1e-6)
    assert prior_shift(0.3, 0.3)(np.array([0.7]))[0] == pytest.approx(0.7)


def test_report_fits_on_val_and_measures_on_test():
    val_l, val_s = _miscalibrated(5000, seed=3)
    test_l, test_s = _miscalibrated(5000, seed=4)
    rep = calibration_report(val_l, val_s, test_l, test_s)
    assert rep["fitted"] and rep["fitted_on"] == "val"
    assert rep["test_ece_calibrated"] < rep["test_ece_raw"] / 3
    assert rep["test_reliability_calibrated"]["ece"] == rep["test_ece_calibrated"]
    one_class = calibration_report(np.zeros(10), np.full(10, 0.2), test_l, test_s)
    assert not one_class["fitted"] and "both classes" in one_class["reason"]


@pytest.mark.parametrize("slope,bias", [(0.0, 0.0), (-1.0, 0.0), (1.0, float("nan"))])
def test_bad_calibrator_is_refused(slope, bias):
    with pytest.raises(ValueError, match="slope"):
        Calibrator(slope, bias)
    with pytest.raises(ValueError, match="prior"):
        prior_shift(0.0, 0.5)
