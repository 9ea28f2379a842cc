import numpy as np
import pytest

from edgeped.evaluate.calibration import reliability
from edgeped.evaluate.uncertainty import bootstrap_by_group, clopper_pearson


@pytest.mark.parametrize(
    "k,n,lo,hi",
    [
        # Reference values of the exact (Clopper-Pearson) 95% interval.
        (0, 10, 0.0, 0.30849710),
        (10, 10, 0.69150290, 1.0),
        (5, 10, 0.18708603, 0.81291397),
    ],
)
def test_clopper_pearson_known_cases(k, n, lo, hi):
    got = clopper_pearson(k, n)
    assert got[0] == pytest.approx(lo, abs=1e-6) and got[1] == pytest.approx(hi, abs=1e-6)


@pytest.mark.parametrize("k,n", [(92, 100), (3, 250), (140, 150)])
def test_clopper_pearson_bounds_have_tail_mass_2_5_percent(k, n):
    from scipy.stats import binom

    lo, hi = clopper_pearson(k, n)
    assert binom.sf(k - 1, n, lo) == pytest.approx(0.025, abs=1e-9)
    assert binom.cdf(k, n, hi) == pytest.approx(0.025, abs=1e-9)


def test_clopper_pearson_edges():
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)


def test_bootstrap_by_drive_is_wider_than_by_crop_when_drives_cluster():
    rng = np.random.default_rng(0)
    # 40 drives of 50 crops; whether a drive's pedestrians are caught depends on the drive.
    labels = np.tile(np.r_[np.ones(10), np.zeros(40)], 40).astype(int)
    drive_good = rng.random(40) < 0.7
    scores = np.where(labels == 1, np.repeat(np.where(drive_good, 0.9, 0.2), 50), 0.1)
    groups = np.repeat(np.arange(40), 50)
    by_drive = bootstrap_by_group(labels, scores, groups, 0.5, seed=1)
    by_crop = bootstrap_by_group(labels, scores, np.arange(labels.size), 0.5, seed=1)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(by_drive["recall"]) > 2 * width(by_crop["recall"])
    point = ((scores >= 0.5) & (labels == 1)).sum() / labels.sum()
    assert by_drive["recall"][0] <= point <= by_drive["recall"][1]
    assert by_drive["fpr"] == (0.0, 0.0)
    assert by_drive["groups"] == 40


def test_reliability_hand_computed():
    out = reliability(np.array([0, 1, 1, 1]), np.array([0.1, 0.1, 0.9, 0.9]), bins=2)
    # bin 0: scores 0.1, 0.1 vs rate 0.5 -> gap 0.4; bin 1: 0.9 vs 1.0 -> gap 0.1
    assert out["count"] == [2, 2]
    assert out["ece"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)


def test_perfectly_calibrated_has_zero_ece():
    scores = np.array([0.0] * 10 + [1.0] * 10)
    assert reliability(scores.astype(int), scores)["ece"] == 0.0
