import math

import numpy as np
import pytest

from edgeped.train.losses import distillation_loss, make_loss


def _np(x):
    return float(np.asarray(x))


def test_weighted_bce_hand_computed():
    loss = make_loss("bce", pos_weight=3.0)
    got = _np(loss(np.array([[1.0], [0.0]]), np.array([[0.8], [0.3]])))
    want = -(3.0 * math.log(0.8) + math.log(0.7)) / 2
    assert got == pytest.approx(want, rel=1e-5)


def test_focal_hand_computed():
    loss = make_loss("focal", gamma=2.0, alpha=0.25)
    got = _np(loss(np.array([1.0, 0.0]), np.array([0.9, 0.4])))
    want = -(0.25 * 0.1**2 * math.log(0.9) + 0.75 * 0.4**2 * math.log(0.6)) / 2
    assert got == pytest.approx(want, rel=1e-5)


def test_focal_with_gamma_zero_is_alpha_weighted_bce():
    focal = make_loss("focal", gamma=0.0, alpha=0.5)
    bce = make_loss("bce", pos_weight=1.0)
    y, p = np.array([1.0, 0.0, 1.0]), np.array([0.7, 0.2, 0.4])
    assert _np(focal(y, p)) == pytest.approx(0.5 * _np(bce(y, p)), rel=1e-5)


def test_distillation_hand_computed_and_zero_gradient_point():
    kd = distillation_loss(temperature=2.0)
    t, s = 0.9, 0.6
    zt, zs = math.log(t / (1 - t)) / 2, math.log(s / (1 - s)) / 2
    pt, ps = 1 / (1 + math.exp(-zt)), 1 / (1 + math.exp(-zs))
    want = 4.0 * -(pt * math.log(ps) + (1 - pt) * math.log(1 - ps))
    assert _np(kd(np.array([t]), np.array([s]))) == pytest.approx(want, rel=1e-4)
    # Matching the teacher gives the minimum: the soft-target entropy.
    same = _np(kd(np.array([t]), np.array([t])))
    assert same < _np(kd(np.array([t]), np.array([s])))


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="bce"):
        make_loss("hinge")


def test_jensen_shannon_hand_computed_symmetric_and_bounded():
    from scipy.spatial.distance import jensenshannon

    from edgeped.train.losses import jensen_shannon

    p1, p2 = np.array([0.9, 0.2, 0.5]), np.array([0.5, 0.2, 0.99])
    # scipy gives the square root of the divergence between two distributions (natural log).
    want = np.mean(
        [jensenshannon([a, 1 - a], [b, 1 - b]) ** 2 for a, b in zip(p1, p2, strict=True)]
    )
    assert _np(jensen_shannon(p1, p2)) == pytest.approx(want, rel=1e-4)
    assert _np(jensen_shannon(p2, p1)) == pytest.approx(want, rel=1e-4)
    assert _np(jensen_shannon(p1, p1)) == pytest.approx(0.0, abs=1e-6)
    assert _np(jensen_shannon(np.array([0.0]), np.array([1.0]))) == pytest.approx(
        math.log(2), rel=1e-4
    )
