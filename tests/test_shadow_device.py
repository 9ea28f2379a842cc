"""The runner's shadow mode on the host: the log, its crash safety and the cost figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from edgeped.rollout.shadow_log import parse_line, read_log
from tests.conftest import RUNNER, run_device_runner

pytestmark = pytest.mark.slow


def _spec(tmp_path, t_base=0.5, t_cand=0.5, q_cand=None):
    spec = {
        "baseline": {"name": "base", "threshold": t_base},
        "candidate": {"name": "cand", "threshold": t_cand, "threshold_int8": q_cand},
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture()
def replay(tmp_path):
    """Eight crops with ids, labels and a lighting tag."""
    rng = np.random.default_rng(5)
    path = tmp_path / "replay.npz"
    meta = rng.normal(size=(8, 6)).astype(np.float32)
    meta[1] = np.nan
    np.savez(
        path,
        images=rng.integers(0, 256, (8, 128, 64, 3), dtype=np.uint8),
        metadata=meta,
        crop_id=np.array([f"c{i}" for i in range(8)]),
        label=np.array([1, 0] * 4, np.int8),
        **{"tag/lighting": np.array(["day", "night"] * 4)},
    )
    return path


def test_self_shadow_logs_every_crop_with_zero_flips(tmp_path, device_models, replay):
    log = tmp_path / "shadow.jsonl"
    m = device_models["int8"]
    code, result, err = run_device_runner(
        m, "--shadow", m, "--shadow-spec", _spec(tmp_path), "--shadow-log", log,
        "--crops", replay, "--cost-runs", "5", "--warmup", "1",
    )  # fmt: skip
    assert code == 0, err
    assert result["mode"] == "shadow" and result["log"]["records"] == 8
    records = read_log(log)
    assert len(records) == 8 and records.integrity.finished and records.integrity.ok
    assert list(records.crop_ids) == [f"c{i}" for i in range(8)]
    assert (records.baseline.decisions == records.candidate.decisions).all()
    assert np.array_equal(records.baseline.scores, records.candidate.scores)
    assert list(records.labels) == [1, 0] * 4
    assert list(records.tags["lighting"]) == ["day", "night"] * 4
    assert np.isnan(records.metadata[1]).all() and not np.isnan(records.metadata[0]).any()
    cost = records.cost
    assert cost["shadow_ms_per_crop"]["n"] == 8 and cost["baseline_alone_ms_per_crop"]["n"] == 5
    assert cost["added_peak_rss_mb"] is not None and cost["added_peak_rss_mb"] >= 0
    # Decisions follow each model's own threshold.
    spec2 = _spec(tmp_path, t_base=0.0, t_cand=1.01)
    log2 = tmp_path / "split.jsonl"
    code, _, err = run_device_runner(
        m, "--shadow", m, "--shadow-spec", spec2, "--shadow-log", log2, "--crops", replay,
        "--cost-runs", "2",
    )  # fmt: skip
    assert code == 0, err
    r2 = read_log(log2)
    assert r2.baseline.decisions.all() and not r2.candidate.decisions.any()


def test_int8_threshold_compares_the_raw_output(tmp_path, device_models, replay):
    m = device_models["int8"]
    log = tmp_path / "q.jsonl"
    # A score threshold that would call everything pedestrian, but the raw int8 threshold
    # of 127 must win on the device (it is what the card tells the device to compare).
    spec = _spec(tmp_path, t_base=0.0, t_cand=0.0, q_cand=127)
    code, _, err = run_device_runner(
        m, "--shadow", m, "--shadow-spec", spec, "--shadow-log", log, "--crops", replay,
        "--cost-runs", "2",
    )  # fmt: skip
    assert code == 0, err
    lines = [parse_line(x) for x in log.read_bytes().splitlines()]
    crops = [r for r in lines if r["t"] == "crop"]
    assert all(c["c"]["y"] == int(c["c"]["q"] >= 127) for c in crops)
    assert all(c["b"]["y"] == 1 for c in crops)


def test_an_existing_log_is_never_overwritten(tmp_path, device_models, replay):
    log = tmp_path / "old.jsonl"
    log.write_bytes(b"keep me\n")
    m = device_models["float"]
    code, result, _ = run_device_runner(
        m, "--shadow", m, "--shadow-spec", _spec(tmp_path), "--shadow-log", log, "--crops", replay,
    )  # fmt: skip
    assert code == 65 and result["error"]["code"] == "log_exists"
    assert log.read_bytes() == b"keep me\n"


def test_killing_the_runner_mid_log_leaves_a_readable_log(tmp_path, device_models, replay):
    log = tmp_path / "killed.jsonl"
    m = device_models["int8"]
    proc = subprocess.Popen(
        [sys.executable, str(RUNNER), str(m), "--shadow", str(m), "--shadow-spec",
         str(_spec(tmp_path)), "--shadow-log", str(log), "--crops", str(replay),
         "--shadow-repeat", "100000", "--cost-runs", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log.is_file() and log.read_bytes().count(b"\n") > 50:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    records = read_log(log)
    assert len(records) >= 50 and records.integrity.ok
    assert not records.integrity.finished and records.cost is None
    # Every record kept is whole: consecutive sequence numbers from 0.
    lines = [parse_line(x) for x in log.read_bytes().split(b"\n")[1:-1]]
    seqs = [r["seq"] for r in lines if r is not None]
    assert seqs == list(range(len(seqs))) and len(seqs) == len(records)


def test_torn_tail_and_damaged_lines_are_reported_not_parsed(tmp_path, device_models, replay):
    log = tmp_path / "s.jsonl"
    m = device_models["float"]
    code, _, err = run_device_runner(
        m, "--shadow", m, "--shadow-spec", _spec(tmp_path), "--shadow-log", log, "--crops", replay,
        "--cost-runs", "2",
    )  # fmt: skip
    assert code == 0, err
    lines = log.read_bytes().split(b"\n")[:-1]
    # A crash in the middle of writing the summary: half a line, no newline.
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(b"\n".join(lines[:-1]) + b"\n" + lines[-1][: len(lines[-1]) // 2])
    r = read_log(torn)
    assert r.integrity.torn_tail and r.integrity.ok and not r.integrity.finished
    assert len(r) == 8
    # A flipped byte inside crop record 3 (line 4): that record is dropped and reported.
    bad = bytearray(b"\n".join(lines) + b"\n")
    start = sum(len(x) + 1 for x in lines[:3])
    bad[start + 30] ^= 0x01
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(bytes(bad))
    r = read_log(damaged)
    assert r.integrity.corrupt_lines == (4,) and not r.integrity.ok and len(r) == 7
    assert "c2" not in set(r.crop_ids)
