"""The frame deadline: N proposals per frame, batched against one at a time."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgeped.cli import main
from edgeped.targets.bench import BenchOptions
from edgeped.targets.frames import FrameOptions, bench_frames
from edgeped.targets.local import LocalTarget


def test_frame_options_round_trip_and_budget():
    frame = FrameOptions(proposals_per_frame=16, fps=25.0)
    assert frame.budget_ms == pytest.approx(40.0)
    assert FrameOptions.from_dict(json.loads(json.dumps(frame.to_dict()))) == frame
    with pytest.raises(ValueError, match="proposals_per_frame"):
        FrameOptions(proposals_per_frame=0)
    with pytest.raises(ValueError, match="fps"):
        FrameOptions(fps=0)


def test_local_frames_batched_and_sequential_agree(device_models, device_crops):
    options = BenchOptions(min_runs=5, min_seconds=0.0, warmup=1, load_threads=1)
    result = bench_frames(
        device_models["int8"], LocalTarget(), options, FrameOptions(4, 30.0), crops=device_crops
    )
    s = result.summary()
    assert s["batched"]["invokes_per_frame"] == 1 and s["sequential"]["invokes_per_frame"] == 4
    for mode in ("batched", "sequential"):
        assert s[mode]["frames"] >= 5
        assert 0 < s[mode]["frame_ms_p50"] <= s[mode]["frame_ms_p95"]
        assert 0.0 <= s[mode]["over_budget_share"] <= 1.0
    modes = result.runner["modes"]
    # The same four crops give the same int8 scores whether batched or not.
    assert modes["batched"]["scores_first_frame"] == modes["sequential"]["scores_first_frame"]
    assert len(modes["batched"]["scores_first_frame"]) == 4
    assert result.runner["config"]["background_load"]["threads"] == 1


def test_cli_frames_writes_json(device_models, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "bench",
            str(device_models["int8"]),
            "--proposals-per-frame",
            "3",
            "--fps",
            "1000",
            "--runs",
            "5",
            "--min-seconds",
            "0",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "int8.local.frames-3.json").read_text())
    assert data["kind"] == "edgeped.bench_frames" and data["frame"]["budget_ms"] == 1.0
    assert "over budget" in result.output


def test_cli_frames_bad_input(device_models, tmp_path):
    result = CliRunner().invoke(
        main, ["bench", str(device_models["int8"]), "--proposals-per-frame", "2", "--fps", "0"]
    )
    assert result.exit_code == 64 and "fps" in result.output
    result = CliRunner().invoke(
        main,
        [
            "bench",
            str(device_models["int8"]),
            "--proposals-per-frame",
            "2",
            "--target",
            "arm64-emu",
            "--load-threads",
            "1",
        ],
    )
    assert result.exit_code == 65 and "background load" in result.output


@pytest.mark.emulated
@pytest.mark.slow
def test_emulated_instructions_per_frame(device_models, device_crops, arm64_board):
    from edgeped.targets.emulated import EmulatedArm64Target

    options = BenchOptions(min_runs=1, min_seconds=0.0, warmup=1, insn_runs=3)
    result = bench_frames(
        device_models["int8"],
        EmulatedArm64Target(core="a76", board_dir=arm64_board),
        options,
        FrameOptions(4, 30.0),
        crops=device_crops,
    )
    s = result.summary()
    assert result.counted
    batched, sequential = s["batched"], s["sequential"]
    assert batched["instructions_per_frame"] > 0
    # Four invokes cost more than one of batch 4: the per-call overhead is paid four times.
    assert sequential["instructions_per_frame"] > batched["instructions_per_frame"]
    modes = result.runner["modes"]
    assert modes["batched"]["scores_first_frame"] == modes["sequential"]["scores_first_frame"]
