"""The frame deadline: N proposals per camera frame, one batched invoke or N single ones.

`bench_frames` runs the device runner's frame mode on a target: per frame the N crops
are preprocessed, scored and dequantised either as one invoke of batch N (the input
tensor resized to N) or as N invokes of batch 1. On a timed target it reports the frame
time p50/p95 and the share of frames over the budget 1000/fps ms (optionally under the
runner's background load); on the emulated board, instructions per frame.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeped.errors import EdgepedError
from edgeped.fileio import sha256_file, write_json_atomic
from edgeped.provenance import stamp
from edgeped.targets.base import Progress, RunnerJob, Target
from edgeped.targets.bench import BenchOptions, card_path, make_random_crops, preprocess_from_card

FRAMES_KIND = "edgeped.bench_frames"
MODES = ("batched", "sequential")


@dataclass(frozen=True)
class FrameOptions:
    """Proposals (crops) per frame and the camera rate that sets the frame budget."""

    proposals_per_frame: int = 16
    fps: float = 30.0

    def __post_init__(self) -> None:
        if self.proposals_per_frame < 1:
            raise ValueError(f"proposals_per_frame must be >= 1, got {self.proposals_per_frame}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")

    @property
    def budget_ms(self) -> float:
        return 1000.0 / self.fps

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "budget_ms": self.budget_ms}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "frame options") -> FrameOptions:
        from edgeped.config import from_mapping

        return from_mapping(cls, {k: v for k, v in data.items() if k != "budget_ms"}, where=where)


@dataclass(frozen=True)
class FrameResult:
    model_path: str
    model_sha256: str
    target: dict[str, Any]
    options: BenchOptions
    frame: FrameOptions
    runner: dict[str, Any]
    inputs: dict[str, Any]

    @property
    def counted(self) -> bool:
        return self.runner.get("metric") == "instructions"

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per mode: invokes per frame and either frame time figures or instructions."""
        out = {}
        for mode in MODES:
            m = self.runner["modes"][mode]
            entry: dict[str, Any] = {"invokes_per_frame": m["invokes_per_frame"]}
            if self.counted:
                entry["instructions_per_frame"] = m["instructions_per_frame"]
                entry["instructions_per_crop"] = (
                    m["instructions_per_frame"] / self.frame.proposals_per_frame
                )
            else:
                entry["frame_ms_p50"] = m["frame_ms"]["p50"]
                entry["frame_ms_p95"] = m["frame_ms"]["p95"]
                entry["over_budget_share"] = m["over_budget_share"]
                entry["frames"] = m["frame_ms"]["n"]
            out[mode] = entry
        return out

    def lines(self) -> list[str]:
        """Plain summary lines for the terminal."""
        head = "EMULATED " if self.target.get("emulated") else ""
        n, fps = self.frame.proposals_per_frame, self.frame.fps
        out = [
            f"{head}{Path(self.model_path).name} on {self.target['name']}: {n} proposals per "
            f"frame at {fps:g} fps (budget {self.frame.budget_ms:.1f} ms)"
        ]
        for mode, s in self.summary().items():
            if self.counted:
                out.append(
                    f"  {mode:10s} {s['instructions_per_frame']:>14,} instructions per frame "
                    f"({s['instructions_per_crop']:,.0f} per crop, {s['invokes_per_frame']} invokes)"
                )
            else:
                out.append(
                    f"  {mode:10s} frame p50 {s['frame_ms_p50']:.3f} ms  p95 "
                    f"{s['frame_ms_p95']:.3f} ms  over budget {100 * s['over_budget_share']:.1f}% "
                    f"of {s['frames']} frames"
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            **stamp(FRAMES_KIND),
            "model": {"path": self.model_path, "sha256": self.model_sha256},
            "target": self.target,
            "options": self.options.to_dict(),
            "frame": self.frame.to_dict(),
            "summary": self.summary(),
            "inputs": self.inputs,
            "runner": self.runner,
        }

    def save(self, path: str | Path) -> Path:
        write_json_atomic(path, self.to_dict())
        return Path(path)


def bench_frames(
    model: str | Path,
    target: Target,
    options: BenchOptions,
    frame: FrameOptions,
    *,
    crops: str | Path | None = None,
    preprocess: str | Path | None = None,
    progress: Progress | None = None,
) -> FrameResult:
    """Runs the frame benchmark of `model` on `target`; nothing is saved.

    Raises:
        EdgepedError: bad model path, a model that cannot take batch N, or a target failure.
    """
    model = Path(model)
    if not model.is_file():
        raise EdgepedError(f"model not found: {model}", "check the path to the .tflite file")
    if target.emulated and options.load_threads:
        raise EdgepedError(
            "the emulated board counts instructions per frame; a background load would be "
            "counted too",
            "drop --load-threads on arm64-emu (use it on local or a board for frame times)",
        )
    with tempfile.TemporaryDirectory(prefix="edgeped-frames-") as tmp:
        tmpdir = Path(tmp)
        pre_path = Path(preprocess) if preprocess else None
        pre_source = str(pre_path) if pre_path else None
        if pre_path is None and (card := preprocess_from_card(model)) is not None:
            pre_path = tmpdir / "preprocess.json"
            pre_path.write_text(json.dumps(card), encoding="utf-8")
            pre_source = str(card_path(model))
        crops_path = (
            Path(crops)
            if crops
            else make_random_crops(
                tmpdir / "crops.npz",
                max(options.random_count, frame.proposals_per_frame),
                options.seed,
            )
        )
        args = [
            *options.runner_args(),
            "--proposals-per-frame",
            str(frame.proposals_per_frame),
            "--fps",
            str(frame.fps),
        ]
        job = RunnerJob(
            model=model,
            args=tuple(args),
            crops=crops_path,
            preprocess=pre_path,
            timeout_s=options.timeout_s,
        )
        if progress:
            progress(f"{frame.proposals_per_frame} proposals per frame on {target.name}")
        runner = target.run(job, progress)
        inputs = {
            "crops_sha256": sha256_file(crops_path),
            "preprocess": pre_source,
            "preprocess_sha256": sha256_file(pre_path) if pre_path else None,
        }
    if runner.get("kind") != "edgeped.device_frames":
        raise EdgepedError(
            f"the runner on {target.name} does not know --proposals-per-frame",
            "push the current device/runner.py (it is staged with every job)",
        )
    return FrameResult(
        model_path=str(model),
        model_sha256=sha256_file(model),
        target=target.describe(),
        options=options,
        frame=frame,
        runner=runner,
        inputs=inputs,
    )
