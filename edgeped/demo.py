"""The demo: synthetic data -> teacher -> QAT student -> int8 -> evaluation, on small defaults."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgeped.data.synthetic import SynthConfig
from edgeped.models.registry import ModelSpec
from edgeped.train.config import StageConfig

DEMO_SPLITS = (0.5, 0.25, 0.25)  # more held-out drives than usual: ~150 test pedestrians


@dataclass(frozen=True)
class DemoConfig:
    """Sized to finish in about 10 minutes on 2 CPU cores."""

    out_dir: str = "runs/demo"
    synth: SynthConfig = field(default_factory=lambda: SynthConfig(drives=480, crops_per_drive=50))
    teacher: ModelSpec = field(default_factory=lambda: ModelSpec("teacher", width=0.5))
    student: ModelSpec = field(default_factory=lambda: ModelSpec("student", width=1.0))
    teacher_stage: StageConfig = field(default_factory=lambda: StageConfig(2, 2e-3))
    student_stage: StageConfig = field(default_factory=lambda: StageConfig(4, 3e-3))
    # Half an epoch of QAT: fake-quant plus the teacher's forward pass make QAT steps
    # the slowest of the demo, and the distilled student is already converged.
    qat_stage: StageConfig = field(default_factory=lambda: StageConfig(1, 3e-4, steps_per_epoch=90))


@dataclass
class DemoResult:
    run_dir: Path
    data_dir: Path
    report: Path
    metrics: Path
    seconds: dict[str, float]


def run_demo(config: DemoConfig, *, step: Callable[[str], None] = lambda _: None,
             detail: Callable[[str], None] = lambda _: None,
             synth_progress=None) -> DemoResult:
    """Runs the whole pipeline into config.out_dir (data/ and run/ inside it)."""
    from edgeped.convert.run import convert_run
    from edgeped.data.synthetic import write_synthetic
    from edgeped.evaluate.run import EvalConfig, evaluate_run, write_outputs
    from edgeped.train.config import TrainConfig
    from edgeped.train.loop import train

    out = Path(config.out_dir)
    data_dir, run_dir = out / "data", out / "run"
    seconds: dict[str, float] = {}

    def timed(name: str, fn):
        start = time.perf_counter()
        value = fn()
        seconds[name] = round(time.perf_counter() - start, 1)
        return value

    step(f"1/4 synthetic data: {config.synth.drives} drives x {config.synth.crops_per_drive} crops")
    timed("data", lambda: write_synthetic(str(data_dir), config.synth, overwrite=True,
                                          split_fractions=DEMO_SPLITS, progress=synth_progress))
    step("2/4 training: float teacher, distilled float student, QAT student")
    train_config = TrainConfig(str(data_dir), teacher=config.teacher, student=config.student,
                               teacher_stage=config.teacher_stage,
                               student_stage=config.student_stage, qat_stage=config.qat_stage)
    timed("train", lambda: train(run_dir, train_config, progress=detail))
    step("3/4 conversion: float32, PTQ int8 and QAT int8 .tflite + model cards")
    timed("convert", lambda: convert_run(run_dir, progress=detail))
    step("4/4 evaluation of the .tflite models (LiteRT)")
    report = timed("evaluate", lambda: evaluate_run(run_dir, EvalConfig(), progress=detail))
    paths = write_outputs(run_dir, report)
    return DemoResult(run_dir, data_dir, paths["report"], paths["metrics"], seconds)
