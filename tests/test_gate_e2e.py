"""The gate on a real tiny run: trained, converted, evaluated and benchmarked on this host."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from edgeped.cli import main
from edgeped.fileio import sha256_file
from edgeped.gate import Budgets, Status, gate_run
from edgeped.gate.budgets import RuntimeBudgets

pytestmark = pytest.mark.slow

MODEL = "student_qat_int8"


def test_gate_on_a_real_tiny_run(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    # Only real files from the pipeline: nothing benchmarked yet, so runtime is missing.
    verdict = gate_run(run, Budgets())
    got = {r.budget: r for r in verdict.results}
    assert verdict.model_sha256 == sha256_file(run / f"{MODEL}.tflite")
    for name in (
        "quality.recall",
        "quality.fpr",
        "quality.auc_pr",
        "cost.size_mb",
        "device.xnnpack_share",
        "change.flip_rate_vs_float",
    ):
        assert got[name].status in (Status.PASS, Status.FAIL), (name, got[name])
    metrics = json.loads((run / "metrics.json").read_text())
    assert got["quality.recall"].measured == metrics["models"][MODEL]["test"]["recall"]
    assert got["quality.recall"].source_sha256 == sha256_file(run / "metrics.json")
    assert got["runtime.invoke_ms_p95"].status is Status.MISSING
    assert verdict.exit_code == 2

    # A host benchmark with parity through the real bench command, allowed as a target kind.
    result = CliRunner().invoke(
        main,
        [
            "bench",
            str(run / f"{MODEL}.tflite"),
            "--parity",
            "--runs",
            "20",
            "--min-seconds",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    host = Budgets(runtime=RuntimeBudgets(target_kinds=("local",)))
    got = {r.budget: r for r in gate_run(run, host).results}
    bench = json.loads((run / "bench" / f"{MODEL}.local.json").read_text())  # the default place
    assert got["runtime.invoke_ms_p95"].measured == bench["invoke_ms_p95"]
    assert got["runtime.invoke_ms_p95"].status is Status.PASS  # a tiny model on the host
    assert got["device.parity"].status is Status.PASS

    # The run as its own baseline: eval's per-crop scores line up crop by crop, no flips.
    got = {r.budget: r for r in gate_run(run, host, baseline=tiny_run).results}
    assert got["change.flip_rate_vs_baseline"].status is Status.PASS
    assert got["change.flip_rate_vs_baseline"].measured == 0.0
    assert got["change.recall_drop_vs_baseline"].measured == 0.0

    # A model replaced after evaluation: metrics, card and bench now describe another
    # sha256 and the gate refuses all of them.
    model = run / f"{MODEL}.tflite"
    model.write_bytes(model.read_bytes() + b"\0")
    result = CliRunner().invoke(main, ["gate", str(run), "--budgets", str(tmp_path / "b.toml")])
    assert result.exit_code == 65  # missing budgets file
    (tmp_path / "b.toml").write_text('[runtime]\ntarget_kinds = ["local"]\n')
    result = CliRunner().invoke(main, ["gate", str(run), "--budgets", str(tmp_path / "b.toml")])
    assert result.exit_code == 2, result.output
    stale = {r.budget: r.status for r in gate_run(run, host).results}
    assert stale["quality.recall"] is Status.STALE
    assert stale["cost.size_mb"] is Status.STALE
    assert stale["runtime.invoke_ms_p95"] is Status.STALE
