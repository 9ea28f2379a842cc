"""The label-free (CBPE) recall/FPR estimate: exact on its own model, honest intervals."""

from __future__ import annotations

import numpy as np
import pytest

from edgeped.rollout.estimate import calibrated, estimate_rates, validate_windows


def test_point_estimate_by_hand():
    p = np.array([0.9, 0.8, 0.2, 0.1, 0.5])
    y = np.array([1, 1, 1, 0, 0])
    est = estimate_rates(p, y)
    assert est.recall == pytest.approx((0.9 + 0.8 + 0.2) / p.sum())
    assert est.fpr == pytest.approx((0.1 + 0.2 + 0.8) / (1 - p).sum())
    assert est.expected_pedestrians == pytest.approx(p.sum())


def test_labels_drawn_from_calibrated_probabilities_are_estimated_well():
    rng = np.random.default_rng(0)
    n = 20_000
    p = rng.beta(0.3, 3.0, n)  # mostly background, some confident pedestrians
    labels = (rng.random(n) < p).astype(int)
    y = (p >= 0.4).astype(int)
    v = validate_windows(labels, p, y, window=500, draws=200)
    assert v["recall"]["windows"] == 40
    assert v["recall"]["mae"] < 0.08 and v["fpr"]["mae"] < 0.01
    assert abs(v["recall"]["bias"]) < 0.02
    # The interval is built from the same label model: it holds most of the time.
    assert v["recall"]["interval_coverage"] >= 0.85 and v["fpr"]["interval_coverage"] >= 0.85


def test_miscalibrated_scores_are_caught_by_the_validation():
    rng = np.random.default_rng(1)
    n = 5000
    p = rng.beta(0.3, 3.0, n)
    labels = (rng.random(n) < p).astype(int)
    y = (p >= 0.4).astype(int)
    overconfident = p**0.4  # says "pedestrian" far more often than true
    good = validate_windows(labels, p, y, draws=100)
    bad = validate_windows(labels, overconfident, y, draws=100)
    assert bad["recall"]["mae"] > 2 * good["recall"]["mae"]


def test_calibrator_from_metrics_and_bad_inputs():
    p = np.array([0.2, 0.7])
    assert np.array_equal(calibrated(p, None), p)
    shifted = calibrated(p, {"slope": 1.0, "bias": 1.0, "method": "platt"})
    assert (shifted > p).all()
    with pytest.raises(ValueError, match="probabilities"):
        estimate_rates(np.array([1.5]), np.array([1]))
    with pytest.raises(ValueError, match="one length"):
        estimate_rates(np.array([0.5, 0.5]), np.array([1]))
    est = estimate_rates(np.zeros(3), np.zeros(3))  # no expected pedestrian: no recall
    assert est.recall is None and est.fpr == 0.0
