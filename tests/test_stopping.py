"""The one rule every training stage follows: keep the best epoch, cut on a plateau, stop."""

import pytest

from edgeped.train.stopping import EpochPolicy


def run(policy: EpochPolicy, values: list[float]) -> list[tuple[bool, bool, bool]]:
    out = []
    for epoch, value in enumerate(values, start=1):
        v = policy.step(epoch, value)
        out.append((v.keep, v.cut, v.stop))
        if v.stop:
            break
    return out


def test_keeps_only_epochs_that_beat_the_best():
    p = EpochPolicy.for_stage(patience=0, schedule="cosine")
    got = run(p, [0.5, 0.7, 0.6, 0.7, 0.8])
    assert [k for k, _, _ in got] == [True, True, False, False, True]  # a tie is not a gain
    assert p.best == {"value": 0.8} and p.best_epoch == 5 and p.epochs == 5
    assert p.lr_cuts == []  # a fixed schedule is never cut


def test_patience_zero_never_stops():
    got = run(EpochPolicy.for_stage(patience=0, schedule="plateau"), [0.9] + [0.1] * 20)
    assert len(got) == 21 and not any(s for _, _, s in got)


@pytest.mark.parametrize(
    "patience,values,cuts,stopped_at",
    [
        # patience 4 -> cut after 2 epochs without a gain; the stop epoch is not cut.
        (4, [0.5, 0.4, 0.4, 0.4, 0.4], [3], 5),
        # a gain resets the count; the next cut needs 2 more flat epochs.
        (4, [0.5, 0.4, 0.4, 0.6, 0.5, 0.5, 0.5, 0.5], [3, 6], 8),
        # cuts are spaced by cut_after even while the plateau goes on (patience 8 -> 4).
        (8, [0.9] + [0.1] * 8, [5], 9),
        # patience 1 -> cut after 1, but the first flat epoch already stops.
        (1, [0.5, 0.4], [], 2),
    ],
)
def test_plateau_cuts_and_stop(patience, values, cuts, stopped_at):
    p = EpochPolicy.for_stage(patience=patience, schedule="plateau")
    got = run(p, values)
    assert p.lr_cuts == cuts
    assert len(got) == stopped_at and got[-1][2]
    assert [e for e, (_, c, _) in enumerate(got, 1) if c] == cuts


def test_long_plateau_is_cut_every_cut_after_epochs():
    p = EpochPolicy.for_stage(patience=12, schedule="plateau")  # cut after 6
    run(p, [0.9] + [0.1] * 11)
    assert p.lr_cuts == [7]
    p = EpochPolicy(patience=0, cut_after=2)
    run(p, [0.9] + [0.1] * 6)
    assert p.lr_cuts == [3, 5, 7]


def test_shared_best_keeps_a_mining_round_only_if_it_helps():
    best = {"value": -1.0}
    main = EpochPolicy.for_stage(patience=0, schedule="cosine", best=best)
    run(main, [0.6, 0.8])
    mined = EpochPolicy.for_stage(patience=0, schedule="cosine", best=best)
    assert run(mined, [0.75, 0.85]) == [(False, False, False), (True, False, False)]
    assert best == {"value": 0.85} and mined.best_epoch == 2
