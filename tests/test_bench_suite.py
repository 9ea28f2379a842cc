"""`edgeped bench RUN_DIR`: every model of a run on one target, one table, one file each."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edgeped.cli import main
from edgeped.errors import EdgepedError
from edgeped.targets.bench import BenchOptions, BenchResult
from edgeped.targets.emulated import EmulatedArm64Target
from edgeped.targets.local import LocalTarget
from edgeped.targets.render import latency_png
from edgeped.targets.suite import result_name, run_models


def test_result_names_say_model_target_and_core(tmp_path):
    model = tmp_path / "student_qat_int8.tflite"
    assert result_name(model, LocalTarget(name="local")) == "student_qat_int8.local"
    emu = EmulatedArm64Target(core="a53", board_dir=tmp_path)
    assert result_name(model, emu) == "student_qat_int8.arm64-emu-cortex-a53"


def test_run_models_needs_a_run_with_models(tmp_path):
    with pytest.raises(EdgepedError, match="run directory not found"):
        run_models(tmp_path / "nope")
    with pytest.raises(EdgepedError, match="no .tflite"):
        run_models(tmp_path)
    (tmp_path / "b.tflite").write_bytes(b"x")
    (tmp_path / "a.tflite").write_bytes(b"x")
    assert [p.name for p in run_models(tmp_path)] == ["a.tflite", "b.tflite"]


def _result(samples):
    runner = {
        "invoke_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0},
        "e2e_ms_per_crop": {"p50": 1.1, "p95": 2.2},
        "init_ms": 5.0,
        "first_inference_ms": 4.0,
        "throughput_crops_per_s": 900.0,
        "memory": {"phase_peak_rss_mb": 10.0, "process_peak_rss_mb": 40.0},
        "runs": len(samples),
        "invoke_ms_samples": samples,
        "e2e_ms_samples": [v * 1.1 for v in samples],
    }
    target = {"name": "local", "kind": "local", "emulated": False}
    return BenchResult("m.tflite", "a" * 64, 100, target, BenchOptions(), runner)


def test_latency_picture_from_samples(tmp_path):
    import matplotlib.image as mpimg

    rng = np.random.default_rng(0)
    samples = list(np.concatenate([rng.normal(0.3, 0.02, 190), rng.uniform(20, 60, 10)]))
    path = latency_png(_result(samples), tmp_path / "lat.png")
    image = mpimg.imread(path)
    assert image.shape[1] > 1000 and image.std() > 0.05
    assert latency_png(_result([]), tmp_path / "none.png") is None


@pytest.mark.slow
def test_bench_run_dir_measures_every_model(device_models, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(device_models["int8"], run / "m_int8.tflite")
    shutil.copy(device_models["float"], run / "m_float32.tflite")
    result = CliRunner().invoke(
        main, ["bench", str(run), "--runs", "5", "--min-seconds", "0", "--parity"]
    )
    assert result.exit_code == 0, result.output
    assert "benchmark of 2 model(s)" in result.output
    assert "m_int8.tflite" in result.output and "m_float32.tflite" in result.output
    for stem in ("m_int8", "m_float32"):
        data = json.loads((run / "bench" / f"{stem}.local.json").read_text())
        assert data["parity_ok"] is True and data["runs"] >= 5
        assert (run / "bench" / f"{stem}.local.latency.png").is_file()
    usage = CliRunner().invoke(main, ["bench", str(run), "--crops", str(run / "m_int8.tflite")])
    assert usage.exit_code == 64
