"""Beam batch scoring (interpreters in DoFn.setup, 2 worker processes) equals the local eval."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgeped.data.beam_runtime import BeamConfig
from edgeped.evaluate.run import EvalConfig, evaluate_run

pytest.importorskip("apache_beam")

TWO = BeamConfig(("direct_num_workers=2",))


@pytest.mark.slow
def test_beam_eval_writes_the_same_scores_and_metrics(tmp_path, tiny_run):
    from edgeped.evaluate.beam_score import beam_scorer

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = EvalConfig(bootstrap_resamples=50)
    outputs = {}
    for label, scorer in (("local", None), ("beam", beam_scorer(TWO))):
        paths = evaluate_run(run, config, scorer=scorer).save(run)
        outputs[label] = {k: paths[k].read_bytes() for k in ("metrics", "test_scores")}
    assert outputs["beam"] == outputs["local"]

    # A metadata-dropout experiment draws the same per-record numbers on every worker.
    dropped = EvalConfig(bootstrap_resamples=50, metadata_dropout=0.5)
    local = evaluate_run(run, dropped).test
    beam = evaluate_run(run, dropped, scorer=beam_scorer(TWO)).test
    assert np.array_equal(local.crop_ids, beam.crop_ids)
    for name in local.scores:
        assert np.array_equal(local.scores[name], beam.scores[name]), name
    plain = evaluate_run(run, config).test
    assert any(not np.array_equal(local.scores[n], plain.scores[n]) for n in local.scores)


def test_eval_command_refuses_beam_options_without_the_beam_runner(tmp_path):
    from click.testing import CliRunner

    from edgeped.cli import main

    result = CliRunner().invoke(
        main, ["eval", str(tmp_path), "--beam-option", "direct_num_workers=2"]
    )
    assert result.exit_code == 2 and "--beam-option needs --runner beam" in result.output
    result = CliRunner().invoke(
        main, ["eval", str(tmp_path), "--runner", "beam", "--beam-option", "direct_num_workers"]
    )
    assert result.exit_code == 2 and "K=V" in result.output


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
