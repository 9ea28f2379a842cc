import numpy as np
import pytest

from edgeped.errors import EdgepedError
from edgeped.evaluate import metrics as m

LABELS = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
SCORES = np.array([0.9, 0.8, 0.3, 0.85, 0.2, 0.1, 0.1, 0.05, 0.0, 0.0])


def test_rates_at_threshold_hand_computed():
    op = m.rates_at(LABELS, SCORES, 0.5)
    assert (op.tp, op.fp, op.positives, op.negatives) == (2, 1, 3, 7)
    assert op.recall == pytest.approx(2 / 3) and op.fpr == pytest.approx(1 / 7)


def test_score_equal_to_threshold_counts_as_positive():
    assert m.rates_at(LABELS, SCORES, 0.3).tp == 3


def test_max_recall_with_zero_fpr():
    op = m.threshold_max_recall(LABELS, SCORES, max_fpr=0.0)
    assert op.threshold == pytest.approx(0.9) and op.recall == pytest.approx(1 / 3) and op.fp == 0


def test_max_recall_uses_the_fpr_budget():
    op = m.threshold_max_recall(LABELS, SCORES, max_fpr=0.15)
    assert op.threshold == pytest.approx(0.3)
    assert op.recall == 1.0 and op.fpr == pytest.approx(1 / 7)


def test_tied_scores_cannot_be_split():
    op = m.threshold_max_recall(np.array([1, 0, 0]), np.array([0.5, 0.5, 0.1]), max_fpr=0.0)
    assert op.threshold > 0.5 and op.recall == 0.0 and op.fpr == 0.0


def test_no_feasible_positive_threshold_gives_zero_recall():
    # Every positive scores below every negative: only "call nothing" meets FPR 0.
    op = m.threshold_max_recall(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.8, 0.9]), 0.0)
    assert op.recall == 0.0 and op.fp == 0 and op.threshold > 0.9


@pytest.mark.parametrize("labels", [np.zeros(5, int), np.ones(5, int)])
def test_one_class_is_an_error(labels):
    with pytest.raises(EdgepedError, match="both"):
        m.threshold_max_recall(labels, np.linspace(0, 1, 5), 0.01)


def test_min_fpr_for_a_recall_floor():
    op = m.threshold_min_fpr(LABELS, SCORES, min_recall=0.6)
    assert op.threshold == pytest.approx(0.8) and op.tp == 2 and op.fp == 1


def test_average_precision_hand_computed():
    got = m.ranking_metrics(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7]))
    assert got["auc_pr"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert got["roc_auc"] == pytest.approx(0.5)


def test_nan_scores_and_length_mismatch_are_errors():
    with pytest.raises(EdgepedError, match="NaN"):
        m.rates_at(LABELS, np.full(10, np.nan), 0.5)
    with pytest.raises(EdgepedError, match="labels but"):
        m.rates_at(LABELS, SCORES[:5], 0.5)
    with pytest.raises(EdgepedError, match="empty"):
        m.rates_at(np.array([]), np.array([]), 0.5)


def test_slices_flag_small_samples():
    tags = {"lighting": np.array(["day"] * 8 + ["night"] * 2)}
    out = m.slice_metrics(LABELS, SCORES, 0.5, tags, min_samples=3)
    day = out["lighting"]["day"]
    assert day["positives"] == 3 and day["recall"] == pytest.approx(2 / 3)
    assert day["recall_judgeable"] and day["fpr_judgeable"]
    night = out["lighting"]["night"]
    assert night["positives"] == 0 and night["recall"] is None and not night["recall_judgeable"]
    assert night["negatives"] == 2 and not night["fpr_judgeable"]


def test_decision_flips_per_class():
    labels = np.array([1, 1, 0, 0])
    a = np.array([0.9, 0.4, 0.6, 0.1])
    b = np.array([0.9, 0.6, 0.4, 0.1])
    flips = m.decision_flips(labels, a, 0.5, b, 0.5)
    assert flips["flips"] == 2 and flips["flip_rate"] == 0.5
    assert flips["flip_rate_positives"] == 0.5 and flips["flip_rate_negatives"] == 0.5
    assert m.decision_flips(labels, a, 0.5, a, 0.5)["flips"] == 0
