"""evaluate_run returns a result object; saving it writes every output and changes nothing."""

import json
import shutil

import pytest

from edgeped.evaluate.inference import int8_threshold
from edgeped.evaluate.run import EvalConfig, evaluate_run


@pytest.mark.parametrize(
    "score,scale,zero_point,expected",
    [
        (0.5, 1 / 256, -128, 0),  # (0 + 128) / 256 = 0.5 exactly
        (0.501, 1 / 256, -128, 1),
        (0.0, 1 / 256, -128, -128),
        (-1.0, 1 / 256, -128, -128),  # clamped: every output is pedestrian
        (1.5, 1 / 256, -128, 256),  # above every score: no int8 output reaches it
    ],
)
def test_int8_threshold_is_the_smallest_output_at_or_above_the_score(
    score, scale, zero_point, expected
):
    q = int8_threshold(score, scale, zero_point)
    assert q == max(-128, expected)
    if -128 < q <= 127:
        assert (q - zero_point) * scale >= score - 1e-9
        assert (q - 1 - zero_point) * scale < score


@pytest.mark.slow
def test_an_eval_result_saves_twice_identically(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = evaluate_run(run, EvalConfig(bootstrap_resamples=20, threads=1))
    before = json.dumps(result.to_dict(), sort_keys=True)
    json.dumps(result.metrics)  # JSON-able as it is: no arrays hidden inside
    first = result.save(run)
    metrics_once = json.loads(first["metrics"].read_text())
    second = result.save(run)  # the old writer popped its arrays and raised KeyError here
    assert json.loads(second["metrics"].read_text()) == metrics_once
    assert json.dumps(result.to_dict(), sort_keys=True) == before
    assert set(metrics_once["models"]) == set(result.metrics["models"])
    assert metrics_once["test_scores"]["file"] == "test_scores.npz"
