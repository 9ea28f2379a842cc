"""Beam batch scoring (interpreters in DoFn.setup, 2 worker processes) equals the local eval."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgeped.data.beam_runtime import BeamConfig
from edgeped.errors import EdgepedError
from edgeped.evaluate.run import EvalConfig, evaluate_run

pytest.importorskip("apache_beam")

TWO = BeamConfig(("direct_num_workers=2",))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, tiny_dataset):
    """One tiny student trained for a few steps, converted to float32 and int8 (PTQ)."""
    from edgeped.convert.run import convert_run
    from edgeped.train.config import TrainConfig
    from edgeped.train.loop import train

    run = tmp_path_factory.mktemp("beam_score") / "run"
    config = TrainConfig.from_dict(
        {
            "batch_size": 16,
            "seed": 1,
            "data_dir": str(tiny_dataset),
            "student": {"architecture": "tiny"},
            "student_stage": {"epochs": 1, "learning_rate": 0.01, "steps_per_epoch": 4},
        }
    )
    train(run, config, stages=("student",))
    convert_run(run, only=("student_float32", "student_ptq_int8"), calibration_samples=32)
    return run


@pytest.mark.slow
def test_beam_eval_writes_the_same_scores_and_metrics(tmp_path, small_run):
    from edgeped.evaluate.beam_score import beam_scorer

    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    config = EvalConfig(bootstrap_resamples=50)
    outputs, results = {}, {}
    for label, scorer in (("local", None), ("beam", beam_scorer(TWO))):
        results[label] = evaluate_run(run, config, scorer=scorer)
        paths = results[label].save(run)
        outputs[label] = {k: paths[k].read_bytes() for k in ("metrics", "test_scores")}
    assert outputs["beam"] == outputs["local"]
    assert {"student_float32", "student_ptq_int8"} <= set(
        json.loads(outputs["local"]["metrics"])["models"]
    )

    # A metadata-dropout experiment draws the same per-record numbers on every worker.
    dropped = EvalConfig(bootstrap_resamples=50, metadata_dropout=0.5)
    local = evaluate_run(run, dropped).test
    beam = evaluate_run(run, dropped, scorer=beam_scorer(TWO)).test
    assert np.array_equal(local.crop_ids, beam.crop_ids)
    for name in local.scores:
        assert np.array_equal(local.scores[name], beam.scores[name]), name
    plain = results["local"].test
    assert any(not np.array_equal(local.scores[n], plain.scores[n]) for n in local.scores)

    # A card that does not describe its model is refused on the Beam path too, before
    # any worker starts (its int8 threshold would be derived from the wrong scale).
    card_path = run / "student_ptq_int8.card.json"
    card = json.loads(card_path.read_text())
    card["outputs"][0]["scale"] *= 2
    card_path.write_text(json.dumps(card))
    with pytest.raises(EdgepedError, match="the card describes"):
        evaluate_run(run, config, scorer=beam_scorer(TWO))


def test_eval_command_refuses_beam_options_without_the_beam_runner(tmp_path):
    from click.testing import CliRunner

    from edgeped.cli import main

    result = CliRunner().invoke(
        main, ["eval", str(tmp_path), "--beam-option", "direct_num_workers=2"]
    )
    assert result.exit_code == 64 and "--beam-option needs --runner beam" in result.output
    result = CliRunner().invoke(
        main, ["eval", str(tmp_path), "--runner", "beam", "--beam-option", "direct_num_workers"]
    )
    assert result.exit_code == 64 and "K=V" in result.output


def test_beam_scoring_never_imports_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, apache_beam, edgeped.evaluate.beam_score, edgeped.data.beam_pipeline; "
        "from apache_beam.runners.portability.fn_api_runner import FnApiRunner; "
        "sys.exit(int('tensorflow' in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-500:]
