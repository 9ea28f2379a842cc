"""device/runner.py on the host: measurements, inputs, parity and every error it reports."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import RUNNER, run_device_runner
from helpers import device_module

FAST = ["--min-runs", "20", "--min-seconds", "0", "--warmup", "2"]


@pytest.fixture(scope="module")
def preprocess_module():
    return device_module("preprocess")


@pytest.fixture(scope="module")
def stats_module():
    return device_module("stats")


# --------------------------------------------------------------------------- pure parts


def test_runner_imports_neither_tensorflow_nor_edgeped():
    code = (
        f"import runpy, sys; sys.argv = ['runner', '--help']\n"
        f"try:\n    runpy.run_path({str(RUNNER)!r}, run_name='__main__')\n"
        f"except SystemExit:\n    pass\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'edgeped', 'tf_keras')]\n"
        f"assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _python39() -> str:
    """A working Python 3.9: $EDGEPED_PYTHON39, pyenv's, or python3.9 on PATH."""
    import glob
    import os
    import shutil

    candidates = [
        os.environ.get("EDGEPED_PYTHON39"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python"))),
        shutil.which("python3.9"),  # a pyenv shim may be there without working
    ]
    for python in filter(None, candidates):
        probe = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if probe.stdout.strip() == "(3, 9)":
            return python
    pytest.fail("no Python 3.9 found: install one (pyenv install 3.9) or set EDGEPED_PYTHON39")


def test_device_code_runs_under_python39(tmp_path):
    # A real 3.9 interpreter compiles every device module and starts runner and agent: it
    # catches what a parse with feature_version misses (3.10+ stdlib calls and arguments
    # at import time, runtime-evaluated `X | Y` annotations, dataclass(slots=...)).
    python = _python39()
    device = RUNNER.parent
    proc = subprocess.run(
        [python, "-m", "compileall", "-q", "-f", "-d", "device", "-x", "__pycache__", str(device)],
        capture_output=True,
        text=True,
        env={"PYTHONPYCACHEPREFIX": str(tmp_path / "pyc"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    helped = subprocess.run([python, str(RUNNER), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--crops" in helped.stdout, helped.stderr
    agent = subprocess.run(
        [python, str(device / "agent.py"), "--root", str(tmp_path / "root"), "status"],
        capture_output=True,
        text=True,
    )
    assert agent.returncode == 0, agent.stderr
    assert '"ok": true' in agent.stdout


@pytest.mark.parametrize("q", [0.5, 0.95])
def test_percentile_ci_covers_true_quantile(stats_module, q):
    rng = np.random.default_rng(0)
    true = -math.log(1 - q)  # exponential(1) quantile
    hits = 0
    trials = 200
    for _ in range(trials):
        low, high = stats_module.percentile_ci(sorted(rng.exponential(size=400)), q)
        hits += low <= true <= high
    assert hits / trials >= 0.92  # nominal 95%, distribution-free


def test_percentile_ci_admits_too_few_samples(stats_module):
    low, high = stats_module.percentile_ci(list(range(50)), 0.99)
    assert high is None and low is not None
    assert stats_module.percentile_ci(list(range(1000)), 0.5) == (468, 531)


class _FakeIO:
    np = np

    def __init__(self, meta_dtype, scale=1.0, zero=0):
        self.meta = {"dtype": meta_dtype, "quantization": (scale, zero)}
        self.image = {"dtype": np.int8, "quantization": (1 / 128, 0)}


def test_preprocessing_follows_the_training_rule(preprocess_module):
    pre = preprocess_module.Preprocessor(
        _FakeIO(np.float32), mean=[1.0] * 6, std=[2.0] * 6, clip=4.0
    )
    values = np.array([[3.0, np.nan, 100.0, -100.0, 1.0, np.nan]], np.float32)
    got = pre.meta(values)
    np.testing.assert_allclose(got[0, :6], [1.0, 0.0, 4.0, -4.0, 0.0, 0.0])
    np.testing.assert_array_equal(got[0, 6:], [1, 0, 1, 1, 1, 0])
    crops = np.array([0, 127, 128, 255], np.uint8).reshape(1, 1, 4, 1)
    np.testing.assert_array_equal(pre.image(crops).ravel(), [-128, -1, 0, 127])
    quantised = preprocess_module.Preprocessor(
        _FakeIO(np.int8, scale=4 / 127, zero=0), mean=[1.0] * 6, std=[2.0] * 6, clip=4.0
    )
    q = quantised.meta(values)
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q[0, :6], [32, 0, 127, -127, 0, 0])


# --------------------------------------------------------------------------- on the host


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["int8", "float"])
def test_runner_measures_on_host(device_models, device_crops, kind):
    code, result, _ = run_device_runner(device_models[kind], "--crops", device_crops, *FAST)
    assert code == 0 and result["ok"], result
    inv = result["invoke_ms"]
    assert result["runs"] >= 20 and inv["n"] == result["runs"]
    samples = result["invoke_ms_samples"]
    assert len(samples) == min(result["runs"], 2000)
    assert min(samples) == pytest.approx(inv["min"], abs=1e-5)
    assert 0 < inv["min"] <= inv["p50"] <= inv["p90"] <= inv["p95"] <= inv["p99"] <= inv["max"]
    low, high = inv["p50_ci95"]
    assert low <= inv["p50"] <= high
    e2e = result["e2e_ms_per_crop"]
    assert e2e["p50"] > inv["p50"], "end-to-end per crop includes preprocessing"
    assert result["init_ms"] > 0 and result["first_inference_ms"] > 0
    mem = result["memory"]
    assert mem["phase_reset"] is True
    assert 0 < mem["phase_peak_rss_mb"] <= mem["process_peak_rss_mb"]
    # This test process holds TensorFlow (~1 GB); the runner's peak must not inherit it.
    assert mem["process_peak_rss_mb"] < 300
    assert result["model"]["size_bytes"] == device_models[kind].stat().st_size
    assert result["model"]["io"]["image"]["dtype"] == ("int8" if kind == "int8" else "float32")
    assert result["inputs"]["source"] == str(device_crops)
    env = result["environment"]
    assert env["machine"] == "x86_64" and env["runtime"] == "ai-edge-litert"
    assert env["numpy"] == np.__version__ and env["cpu_model"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["int8", "float"])
def test_parity_against_golden(device_models, device_crops, tmp_path, kind):
    golden = tmp_path / "golden.npz"
    code, made, _ = run_device_runner(
        device_models[kind], "--crops", device_crops, "--write-golden", golden
    )
    assert code == 0 and made["n"] == 6
    code, result, _ = run_device_runner(
        device_models[kind], "--crops", device_crops, "--golden", golden, *FAST
    )
    parity = result["parity"]
    assert parity["ok"] and parity["mismatches"] == 0 and parity["n"] == 6
    assert parity["exact"] is (kind == "int8")
    # A golden from another model is caught: the outputs differ.
    with np.load(golden) as npz:
        tampered = {k: npz[k] for k in npz.files}
    if kind == "int8":
        tampered["raw"] = (tampered["raw"].astype(np.int16) + 1).clip(-128, 127).astype(np.int8)
    else:
        tampered["probabilities"] = tampered["probabilities"] + 0.01
    np.savez(tmp_path / "bad.npz", **tampered)
    code, result, _ = run_device_runner(
        device_models[kind], "--crops", device_crops, "--golden", tmp_path / "bad.npz", *FAST
    )
    assert code == 0 and result["parity"]["ok"] is False and result["parity"]["mismatches"] > 0
    # A golden computed for another model is refused outright.
    other = "int8" if kind == "float" else "float"
    code, result, _ = run_device_runner(
        device_models[other], "--crops", device_crops, "--golden", golden, *FAST
    )
    assert code == 65 and result["error"]["code"] == "golden_invalid"
    assert "computed for model" in result["error"]["problem"]


@pytest.mark.slow
def test_batch_threads_pinning_and_background_load(device_models):
    code, result, _ = run_device_runner(
        device_models["int8"],
        "--batch",
        "4",
        "--threads",
        "2",
        "--pin",
        "0",
        "--load-threads",
        "1",
        *FAST,
    )
    assert code == 0, result
    assert result["model"]["io"]["image"]["shape"][0] == 4
    assert result["config"]["threads"] == 2
    assert result["environment"]["cpu_affinity"] == [0]
    assert result["config"]["background_load"]["threads"] == 1
    per_invoke, per_crop = result["e2e_ms_per_invoke"]["p50"], result["e2e_ms_per_crop"]["p50"]
    assert per_crop == pytest.approx(per_invoke / 4)


@pytest.mark.slow
def test_background_load_processes_start_and_stop(device_models):
    code, result, _ = run_device_runner(device_models["int8"], "--load-processes", "1", *FAST)
    assert code == 0 and result["config"]["background_load"]["processes"] == 1
    leftover = subprocess.run(["pgrep", "-f", f"{RUNNER} --busy-worker"], capture_output=True)
    assert leftover.returncode == 1, "busy worker processes must be stopped"


@pytest.mark.slow
def test_xnnpack_off_and_image_only_model(device_models):
    code, result, _ = run_device_runner(device_models["int8_image_only"], "--no-xnnpack", *FAST)
    assert code == 0, result
    assert result["config"]["xnnpack"] is False
    assert result["model"]["has_meta_input"] is False


@pytest.mark.slow
def test_preprocess_file_changes_the_meta_input(device_models, device_crops, tmp_path):
    spec = tmp_path / "pre.json"
    spec.write_text(
        '{"metadata": {"mean": [3, 3, 3, 3, 3, 3], "std": [2, 2, 2, 2, 2, 2], "clip": 4.0}}'
    )
    outs = []
    for extra in ([], ["--preprocess", spec]):
        golden = tmp_path / f"g{len(outs)}.npz"
        run_device_runner(
            device_models["float"], "--crops", device_crops, "--write-golden", golden, *extra
        )
        outs.append(np.load(golden)["probabilities"])
    assert not np.allclose(outs[0], outs[1])


# --------------------------------------------------------------------------- errors


@pytest.mark.slow
def test_missing_corrupt_and_truncated_models(device_models, tmp_path):
    truncated = tmp_path / "trunc.tflite"
    truncated.write_bytes(device_models["int8"].read_bytes()[:1500])
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00" * 64)
    for path, code_name in (
        (tmp_path / "absent.tflite", "model_missing"),
        (garbage, "model_corrupt"),
        (truncated, "model_corrupt"),
    ):
        code, result, _ = run_device_runner(path, *FAST)
        assert code == 65 and result["ok"] is False
        assert result["error"]["code"] == code_name, result
        assert result["error"]["fix"]


@pytest.mark.slow
def test_wrong_input_shape_is_rejected(device_models):
    code, result, _ = run_device_runner(device_models["bad_shape"], *FAST)
    assert code == 65 and result["error"]["code"] == "unsupported_model_io"
    assert "[N,128,64,3]" in result["error"]["problem"]


@pytest.mark.slow
def test_bad_crops_and_delegate_are_reported(device_models, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((2, 64, 64, 3), np.uint8))
    code, result, _ = run_device_runner(device_models["int8"], "--crops", bad, *FAST)
    assert code == 65 and result["error"]["code"] == "crops_invalid"
    code, result, _ = run_device_runner(
        device_models["int8"], "--delegate", tmp_path / "libnope.so", *FAST
    )
    assert code == 65 and result["error"]["code"] == "delegate_failed"


def test_missing_runtime_is_reported(tmp_path):
    code, result, _ = _run_isolated(tmp_path)
    assert code == 65 and result["error"]["code"] == "runtime_missing"
    assert "ai-edge-litert" in result["error"]["fix"] or "numpy" in result["error"]["fix"]


def _run_isolated(tmp_path):
    import json

    # -S skips site-packages, so neither numpy nor ai_edge_litert can be imported.
    proc = subprocess.run(
        [sys.executable, "-S", str(RUNNER), str(tmp_path / "m.tflite")],
        capture_output=True,
        text=True,
    )
    return proc.returncode, json.loads(proc.stdout), proc.stderr


@pytest.mark.slow
def test_instruction_count_needs_the_plugin(device_models):
    code, result, _ = run_device_runner(device_models["int8"], "--insn-count", *FAST)
    assert code == 65 and result["error"]["code"] == "insn_unavailable"


def test_runner_preprocessing_matches_the_training_contract(preprocess_module):
    from edgeped.data.preprocess import Preprocessing

    rng = np.random.default_rng(5)
    mean, std = rng.normal(size=6).tolist(), rng.uniform(0.5, 3, size=6).tolist()
    values = rng.normal(0, 8, size=(32, 6)).astype(np.float32)
    values[rng.random(values.shape) < 0.2] = np.nan
    crops = rng.integers(0, 256, (4, 128, 64, 3), dtype=np.uint8)
    contract = Preprocessing(mean=tuple(mean), std=tuple(std), clip=4.0)
    device = preprocess_module.Preprocessor(_FakeIO(np.float32), mean=mean, std=std, clip=4.0)
    np.testing.assert_allclose(device.meta(values), contract.metadata(values), atol=1e-6)
    float_io = _FakeIO(np.float32)
    float_io.image = {"dtype": np.float32, "quantization": (0.0, 0)}
    as_float = preprocess_module.Preprocessor(float_io, mean=mean, std=std, clip=4.0)
    np.testing.assert_array_equal(as_float.image(crops), contract.image(crops))


@pytest.mark.parametrize("seed", [0, 1])
def test_runner_standardize_rule_is_the_hosts_bit_for_bit(preprocess_module, seed):
    """The per-crop rule: the runner's fused table look-up gives eval's tensor exactly."""
    from edgeped.data.preprocess import Preprocessing
    from edgeped.evaluate.inference import quantize

    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 256, (5, 128, 64, 3), dtype=np.uint8)
    crops[1] = rng.integers(0, 6, (128, 64, 3), dtype=np.uint8)  # dark: std under the floor
    crops[2] = 200  # flat: std 0
    crops[3] = (crops[3] // 2 + 60).astype(np.uint8)  # low contrast
    host = Preprocessing(mean=(0.0,) * 6, std=(1.0,) * 6, image_rule="standardize")
    x = host.image(crops)
    assert x.dtype == np.float32 and np.abs(x).max() <= 2.0
    np.testing.assert_array_equal(x[2], 0.0)
    # Each crop's channels are centred and, above the floor, scaled to std 0.5.
    centred = x[0].reshape(-1, 3)
    np.testing.assert_allclose(centred.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(centred.std(0), 0.5, rtol=0.02)
    float_io = _FakeIO(np.float32)
    float_io.image = {"dtype": np.float32, "quantization": (0.0, 0)}
    as_float = preprocess_module.Preprocessor(float_io, [0.0] * 6, [1.0] * 6, 4.0, "standardize")
    np.testing.assert_array_equal(as_float.image(crops), x)
    for scale, zero in ((1 / 64, 0), (0.0157, -3), (1 / 128, 0)):
        io = _FakeIO(np.float32)
        io.image = {"dtype": np.int8, "quantization": (scale, zero)}
        device = preprocess_module.Preprocessor(io, [0.0] * 6, [1.0] * 6, 4.0, "standardize")
        np.testing.assert_array_equal(device.image(crops), quantize(x, scale, zero, "int8"))
    # A batch past 85 crops indexes its tables with 32-bit offsets: the same values.
    many = np.concatenate([crops] * 18)
    np.testing.assert_array_equal(as_float.image(many), host.image(many))


def test_runner_reads_the_image_rule_and_refuses_unknown_ones(preprocess_module, tmp_path):
    import json

    path = tmp_path / "pre.json"
    assert preprocess_module.load_image_rule(None) == "fixed"
    path.write_text(json.dumps({"metadata": {"mean": [0] * 6, "std": [1] * 6}}))
    assert preprocess_module.load_image_rule(str(path)) == "fixed"  # cards before the rule existed
    path.write_text(json.dumps({"image": {"rule": "standardize"}, "metadata": {}}))
    assert preprocess_module.load_image_rule(str(path)) == "standardize"
    path.write_text(json.dumps({"image": {"rule": "equalize"}}))
    with pytest.raises(preprocess_module.RunnerError, match="equalize"):
        preprocess_module.load_image_rule(str(path))
    with pytest.raises(preprocess_module.RunnerError, match="image rule"):
        preprocess_module.Preprocessor(_FakeIO(np.float32), [0.0] * 6, [1.0] * 6, 4.0, "bogus")


@pytest.mark.parametrize(
    "args, code, phrase",
    [
        (["--threads", "many"], 64, "invalid int value"),
        (["--batch", "0"], 64, "--batch must be >= 1"),
        (["--delegate-option", "novalue"], 64, "is not KEY=VALUE"),
        (["--preprocess", "{pre}"], 65, "6 finite values"),
    ],
)
def test_runner_refusals_are_one_json_line_and_error_fix_on_stderr(
    tmp_path, device_models, args, code, phrase
):
    pre = tmp_path / "pre.json"
    pre.write_text(json.dumps({"metadata": {"mean": [0] * 6, "std": [1] * 5 + [float("nan")]}}))
    argv = [device_models["float"], *(a.format(pre=pre) for a in args)]
    got, result, stderr = run_device_runner(*argv)
    assert got == code, stderr
    assert result["ok"] is False and phrase in result["error"]["problem"]
    assert "error: " in stderr and "fix: " in stderr and "Traceback" not in stderr
    assert "usage:" not in stderr


@pytest.mark.parametrize("dtype,scale,zero", [(np.int8, 4 / 127, 0), (np.int8, 0.0313, -7),
                                              (np.float32, 0.0, 0)])  # fmt: skip
def test_small_batch_paths_are_the_numpy_rule_bit_for_bit(preprocess_module, dtype, scale, zero):
    """Metadata, image and output of small batches (plain Python, one XOR) equal numpy's rule."""
    rng = np.random.default_rng(11)
    mean = rng.normal(0, 5, size=6).astype(np.float32).tolist()
    std = rng.uniform(0.01, 30, size=6).astype(np.float32).tolist()
    pre = preprocess_module.Preprocessor(_FakeIO(dtype, scale=scale, zero=zero), mean, std, 4.0)
    rows = []
    for magnitude in (1e-3, 0.3, 1.0, 10.0, 1e3, 1e30, 3.4e38):
        with np.errstate(over="ignore"):  # the largest magnitudes overflow to +/-inf: wanted
            block = rng.normal(0, magnitude, size=(400, 6)).astype(np.float32)
        block[rng.random(block.shape) < 0.2] = np.nan
        rows.append(block)
    values = np.concatenate(rows)
    values[:6] = [[np.inf, -np.inf, np.nan, 0.0, -0.0, 3.4028235e38]] * 6
    # Values on the rounding edges: the exact half steps of the quantised grid.
    if scale:
        half = (np.arange(-20, 20) + 0.5) * np.float32(scale)
        values[6:46, 0] = half * np.float32(std[0]) + np.float32(mean[0])
    reference = pre._meta_numpy(values)
    small = np.concatenate(
        [pre.meta(values[i : i + 16]) for i in range(0, len(values), 16)]  # the Python path
    )
    assert preprocess_module.SMALL_BATCH == 16
    assert small.dtype == reference.dtype
    np.testing.assert_array_equal(small, reference)
    crops = rng.integers(0, 256, (3, 128, 64, 3), dtype=np.uint8)
    if dtype == np.int8:
        pre.io.image = {"dtype": np.int8, "quantization": (1 / 128, 0)}
        expected = (crops.astype(np.int16) - 128).astype(np.int8)
        np.testing.assert_array_equal(pre.image(crops), expected)
        odd = crops[:, :, ::2]  # not contiguous: the byte-wise XOR
        np.testing.assert_array_equal(pre.image(odd), expected[:, :, ::2])
        pre.io.output = {"dtype": np.int8, "quantization": (np.float32(1 / 255), -128)}
        raw = np.arange(-128, 128, dtype=np.int8).reshape(-1, 1)
        fast = np.concatenate([pre.probabilities(raw[i : i + 16]) for i in range(0, 256, 16)])
        wide = ((raw[:, 0].astype(np.float32) + 128) * np.float32(1 / 255)).astype(np.float32)
        np.testing.assert_array_equal(fast, wide)
