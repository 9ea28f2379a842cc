"""The runner on the emulated arm64 board: bit-exact int8 parity, instruction counts per core."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
from conftest import REPO_ROOT, run_device_runner

from edgeped.errors import EdgepedError
from edgeped.targets import BenchOptions, bench_model
from edgeped.targets.emulated import EmulatedArm64Target

pytestmark = [pytest.mark.emulated, pytest.mark.slow]
FEW = ["--min-runs", "3", "--min-seconds", "0", "--warmup", "1"]


def _emulated(board, *args, core="cortex-a76", insn_file=None):
    env = dict(os.environ, EDGEPED_EMU_CORE=core)
    env.pop("EDGEPED_INSN_OUT", None)
    if insn_file is not None:
        env["EDGEPED_INSN_OUT"] = str(insn_file)
    return run_device_runner(*args, python=board / "bin" / "python-aarch64", env=env)


def test_setup_script_is_idempotent(arm64_board):
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "tools" / "setup_arm64_emu.sh"), str(arm64_board)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "already built" in proc.stderr
    for core, part in (("cortex-a53", "0xd03"), ("cortex-a72", "0xd08"), ("cortex-a76", "0xd0b")):
        assert (
            f"CPU part\t: {part}" in (arm64_board / "cores" / core / "proc" / "cpuinfo").read_text()
        )
    assert (arm64_board / "plugin" / "libinsncount.so").is_file()
    foreign = subprocess.run(
        ["dpkg", "--print-foreign-architectures"], capture_output=True, text=True
    )
    assert "arm64" not in foreign.stdout, "the host's dpkg architectures stay untouched"


def test_int8_parity_is_bit_exact_with_the_host(arm64_board, device_models, device_crops, tmp_path):
    golden = tmp_path / "golden.npz"
    code, _, _ = run_device_runner(
        device_models["int8"], "--crops", device_crops, "--write-golden", golden
    )
    assert code == 0
    code, result, _ = _emulated(
        arm64_board, device_models["int8"], "--crops", device_crops, "--golden", golden, *FEW
    )
    assert code == 0, result
    env = result["environment"]
    assert env["machine"] == "aarch64" and env["cpu_model"] == "Cortex-A76"
    parity = result["parity"]
    assert parity["exact"] is True and parity["ok"] is True
    assert parity["mismatches"] == 0 and parity["max_abs_diff"] == 0.0 and parity["n"] == 6


def test_instruction_counts_repeat_exactly_and_depend_on_the_core(
    arm64_board, device_models, tmp_path
):
    def count(core, tag):
        out = tmp_path / f"{core}-{tag}.txt"
        code, result, _ = _emulated(
            arm64_board,
            device_models["int8"],
            "--insn-count",
            "--insn-runs",
            "3",
            *FEW,
            core=core,
            insn_file=out,
        )
        assert code == 0, result
        return result["instructions"]

    first, again = count("cortex-a76", 1), count("cortex-a76", 2)
    assert first["per_invoke"] == again["per_invoke"], "counts must repeat run to run"
    assert first["runs"] == 3 and first["instructions_per_invoke"] > 10_000
    # The runner's own work around an invoke is counted too, as exactly.
    assert first["overhead_instructions_per_invoke"] == again["overhead_instructions_per_invoke"]
    assert first["overhead_instructions_per_invoke"] > 0
    a53 = count("cortex-a53", 1)
    assert a53["instructions_per_invoke"] != first["instructions_per_invoke"], (
        "XNNPACK picks different kernels per core model"
    )


def test_emulated_target_labels_results_and_counts_instructions(
    arm64_board, device_models, device_crops
):
    target = EmulatedArm64Target(core="a72", board_dir=arm64_board)
    result = bench_model(
        device_models["float"],
        target,
        BenchOptions(min_runs=3, min_seconds=0, warmup=1),
        crops=device_crops,
        parity=True,
    )
    summary = result.summary()
    assert summary["emulated"] is True and summary["core"] == "cortex-a72"
    assert summary["instructions_per_invoke"] > 10_000
    assert summary["parity_ok"] is True  # float: within tolerance of the host
    assert result.runner["environment"]["machine"] == "aarch64"


def test_background_processes_are_refused_under_emulation(arm64_board, device_models):
    code, result, _ = _emulated(arm64_board, device_models["int8"], "--load-processes", "1", *FEW)
    assert code == 65 and result["error"]["code"] == "load_processes_unavailable"
    assert "--load-threads" in result["error"]["fix"]


def test_background_threads_work_under_emulation(arm64_board, device_models):
    code, result, _ = _emulated(arm64_board, device_models["int8"], "--load-threads", "1", *FEW)
    assert code == 0 and result["config"]["background_load"]["threads"] == 1


def test_unknown_core_is_rejected(arm64_board):
    with pytest.raises(ValueError, match="not supported"):
        EmulatedArm64Target(core="max", board_dir=arm64_board)


def test_missing_board_without_qemu_is_a_clear_error(tmp_path, device_models, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no qemu-aarch64 on PATH
    target = EmulatedArm64Target(board_dir=tmp_path / "board")
    with pytest.raises(EdgepedError, match="qemu-aarch64 not found"):
        bench_model(device_models["int8"], target, BenchOptions(min_runs=1, min_seconds=0))


def test_crops_travel_unchanged(arm64_board, device_crops, tmp_path):
    # The same bytes reach the emulated numpy: a checksum computed on the board matches.
    code = (
        "import numpy as np, hashlib, sys; d = np.load(sys.argv[1]); "
        "print(hashlib.sha256(d['images'].tobytes()).hexdigest())"
    )
    proc = subprocess.run(
        [str(arm64_board / "bin" / "python-aarch64"), "-c", code, str(device_crops)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    import hashlib

    want = hashlib.sha256(np.load(device_crops)["images"].tobytes()).hexdigest()
    assert proc.stdout.strip() == want


def test_standardize_rule_parity_is_bit_exact_on_the_board(
    arm64_board, device_models, device_crops, tmp_path
):
    """The per-crop image rule (integer sums, float64, table look-up) on aarch64 numpy."""
    import json

    pre = tmp_path / "preprocess.json"
    pre.write_text(
        json.dumps(
            {
                "image": {"rule": "standardize"},
                "metadata": {"mean": [3.0] * 6, "std": [2.0] * 6, "clip": 4.0},
            }
        )
    )
    golden = tmp_path / "golden.npz"
    common = ["--crops", device_crops, "--preprocess", pre]
    code, _, _ = run_device_runner(device_models["int8"], *common, "--write-golden", golden)
    assert code == 0
    fixed = tmp_path / "golden-fixed.npz"
    code, _, _ = run_device_runner(
        device_models["int8"], "--crops", device_crops, "--write-golden", fixed
    )
    assert code == 0
    # The rule reaches the model: its outputs differ from the fixed rule's.
    assert not np.array_equal(np.load(golden)["raw"], np.load(fixed)["raw"])
    code, result, _ = _emulated(
        arm64_board, device_models["int8"], *common, "--golden", golden, *FEW
    )
    assert code == 0, result
    parity = result["parity"]
    assert parity["exact"] is True and parity["mismatches"] == 0 and parity["n"] == 6
