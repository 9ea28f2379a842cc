"""`shadow run` end to end on the emulated arm64 board and over SSH to the test ecu-dev."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgeped.fileio import sha256_file
from edgeped.rollout.shadow import ShadowOptions, run_shadow
from edgeped.rollout.shadow_log import read_log
from edgeped.targets import resolve_target
from tests.test_ssh_deploy import _targets

QUICK = ShadowOptions(cost_runs=3, warmup=1, insn_runs=2)


@pytest.fixture()
def carded(tmp_path, device_models):
    """The tiny int8 and float models beside model cards with thresholds, as eval leaves them."""
    out = {}
    for name in ("int8", "float"):
        model = tmp_path / "models" / f"{name}.tflite"
        model.parent.mkdir(exist_ok=True)
        shutil.copy(device_models[name], model)
        card = {
            "kind": "edgeped.model_card",
            "model": {"sha256": sha256_file(model)},
            "threshold": {"score": 0.5, **({"int8": 0} if name == "int8" else {})},
            "preprocessing": {"metadata": {"mean": [0.0] * 6, "std": [1.0] * 6, "clip": 4.0}},
        }
        model.with_suffix(".card.json").write_text(json.dumps(card))
        out[name] = model
    return out


@pytest.fixture()
def replay(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "replay.npz"
    np.savez(
        path,
        images=rng.integers(0, 256, (6, 128, 64, 3), dtype=np.uint8),
        metadata=rng.normal(size=(6, 6)).astype(np.float32),
        crop_id=np.array([f"r{i}" for i in range(6)]),
        **{"tag/lighting": np.array(["day", "night"] * 3)},
    )
    return path


@pytest.mark.emulated
@pytest.mark.slow
def test_shadow_on_the_emulated_a76_matches_the_host_bit_for_bit(
    tmp_path, arm64_board, carded, replay, monkeypatch
):
    monkeypatch.setenv("EDGEPED_ARM64_EMU", str(arm64_board))
    emu = run_shadow(carded["float"], carded["int8"], resolve_target("arm64-emu", core="a76"),
                     tmp_path / "emu", crops=replay, options=QUICK)  # fmt: skip
    host = run_shadow(carded["float"], carded["int8"], resolve_target("local"),
                      tmp_path / "host", crops=replay, options=QUICK)  # fmt: skip
    e, h = read_log(emu.log), read_log(host.log)
    assert e.source["environment"]["machine"] == "aarch64"
    assert np.array_equal(e.candidate.scores, h.candidate.scores)  # int8 XNNPACK: exact
    assert np.array_equal(e.candidate.decisions, h.candidate.decisions)
    assert emu.report.source["emulated"] is True
    insn = emu.report.cost["instructions"]
    assert insn["shadow_per_crop"] > insn["baseline_alone_per_crop"] > 0
    assert insn["added_per_crop"] == insn["shadow_per_crop"] - insn["baseline_alone_per_crop"]
    md = (tmp_path / "emu" / "shadow.md").read_text()
    assert "emulated" in md and "added instructions per crop" in md


@pytest.mark.ssh
@pytest.mark.slow
def test_shadow_over_ssh_pushes_both_models_and_pulls_the_log(tmp_path, ecu_sshd, carded, replay):
    targets = _targets(tmp_path, ecu_sshd)
    target = resolve_target("ecu-dev", targets)
    run = run_shadow(carded["float"], carded["int8"], target, tmp_path / "out", crops=replay,
                     options=QUICK)  # fmt: skip
    board = tmp_path / "board"
    for model in carded.values():
        assert (board / f"model-{sha256_file(model)[:16]}.tflite").is_file()
    logs = list(board.glob("shadow-*.jsonl"))
    assert len(logs) == 1 and sha256_file(logs[0]) == sha256_file(run.log)
    records = read_log(run.log)
    assert len(records) == 6 and records.integrity.finished
    assert records.baseline_info["sha256"] == sha256_file(carded["float"])
    assert records.candidate_info["sha256"] == sha256_file(carded["int8"])
    saved = json.loads((tmp_path / "out" / "shadow_run.json").read_text())
    assert saved["target"]["kind"] == "ssh" and saved["log"]["board_path"] == str(logs[0])
    # Self-shadow over SSH: one model file on the board serves both sides, zero flips.
    self_run = run_shadow(carded["int8"], carded["int8"], target, tmp_path / "self", crops=replay,
                          options=QUICK)  # fmt: skip
    assert self_run.report.overall["flip_rate"]["count"] == 0


@pytest.mark.ssh
@pytest.mark.emulated
@pytest.mark.slow
def test_shadow_over_ssh_on_the_emulated_ecu(tmp_path, ecu_sshd, arm64_board, carded, replay):
    targets = _targets(tmp_path, ecu_sshd, python=str(arm64_board / "bin" / "python-aarch64"),
                       emulated=True, core="cortex-a76")  # fmt: skip
    run = run_shadow(carded["float"], carded["int8"], resolve_target("ecu-dev", targets),
                     tmp_path / "out", crops=replay, options=QUICK)  # fmt: skip
    records = read_log(run.log)
    assert records.source["environment"]["machine"] == "aarch64"
    if ecu_sshd["MODE"] == "netns":
        assert records.source["environment"]["hostname"] == "ecu-dev"
    assert run.report.source["emulated"] is True and len(records) == 6
