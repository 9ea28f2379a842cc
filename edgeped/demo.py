"""The demo: synthetic data -> teacher -> QAT student -> int8 -> evaluation, on small defaults."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeped.data.synthetic import SynthConfig
from edgeped.layout import GATE_JSON, GATE_MARKDOWN
from edgeped.models.registry import ModelSpec
from edgeped.train.config import StageConfig
from edgeped.train.profiles import profile_config

DEMO_SPLITS = (0.5, 0.25, 0.25)  # more held-out drives than usual: ~150 test pedestrians
# The demo trains with the short `demo` training profile (edgeped/train/profiles.py).
_PROFILE = profile_config("demo", "unused")


@dataclass(frozen=True)
class DemoConfig:
    """Sized to finish in about 10 minutes on 2 CPU cores (the `demo` training profile)."""

    out_dir: str = "runs/demo"
    synth: SynthConfig = field(default_factory=lambda: SynthConfig(drives=480, crops_per_drive=50))
    teacher: ModelSpec = _PROFILE.teacher
    student: ModelSpec = _PROFILE.student
    teacher_stage: StageConfig = _PROFILE.teacher_stage
    student_stage: StageConfig = _PROFILE.student_stage
    qat_stage: StageConfig = _PROFILE.qat_stage

    def with_options(self, drives: int | None = None, epochs_scale: float = 1.0) -> DemoConfig:
        """The demo resized: another drive count, every stage's epochs scaled (>= 1 each).

        Raises:
            ValueError: a drive count or scale out of range.
        """
        if not epochs_scale > 0:
            raise ValueError(f"epochs_scale must be > 0, got {epochs_scale}")
        changes: dict[str, Any] = {
            s: replace(
                getattr(self, s), epochs=max(1, round(getattr(self, s).epochs * epochs_scale))
            )
            for s in ("teacher_stage", "student_stage", "qat_stage")
        }
        if drives is not None:
            changes["synth"] = replace(self.synth, drives=drives)
        return replace(self, **changes)


@dataclass
class DemoResult:
    run_dir: Path
    data_dir: Path
    report: Path
    metrics: Path
    seconds: dict[str, float]
    gate: Any = None  # edgeped.gate.Verdict of the demo's int8 model against budgets.toml
    gate_notes: list[str] = field(default_factory=list)


DEMO_GATE_CORE = "a53"


def emulated_board_ready() -> bool:
    """The emulated arm64 board is already built (building it downloads packages: not in a demo)."""
    import shutil

    from edgeped.targets.emulated import default_board_dir

    return shutil.which("qemu-aarch64") is not None and (default_board_dir() / "READY").is_file()


def gate_demo_run(
    run_dir: Path, budgets_file: Path | None = None, detail: Callable[[str], None] = lambda _: None
):
    """Benchmarks the demo's int8 model on the emulated board if it is built, then gates it.

    Returns:
        The verdict and notes saying what could not be measured here and why.
    """
    from edgeped.errors import EdgepedError
    from edgeped.gate import Budgets, gate_run, load_budgets
    from edgeped.gate.render import write_reports

    budgets = load_budgets(budgets_file) if budgets_file else Budgets()
    model = run_dir / f"{budgets.model}.tflite"
    notes = []
    if emulated_board_ready():
        from edgeped.targets import BenchOptions, bench_model, resolve_target

        detail(f"instructions and parity of {model.name} on the emulated {DEMO_GATE_CORE}")
        options = BenchOptions(min_runs=5, min_seconds=0.0, warmup=2, insn_runs=1, timeout_s=300.0)
        try:
            result = bench_model(
                model,
                resolve_target("arm64-emu", core=DEMO_GATE_CORE),
                options,
                parity=True,
                progress=detail,
            )
            result.save(run_dir / "bench" / f"arm64-emu-{DEMO_GATE_CORE}.json")
        except EdgepedError as exc:  # the gate then reports those budgets as missing
            notes.append(f"the emulated benchmark failed: {exc.problem}")
    else:
        notes.append(
            "the emulated arm64 board is not built, so instruction and parity budgets "
            f"are missing too: run `edgeped bench {shlex.quote(str(model))} --target arm64-emu` "
            "(measures what the budgets ask for; builds the board once; the result goes to "
            f"{shlex.quote(str(run_dir / 'bench'))}/)"
        )
    notes.append(
        "latency and peak RSS budgets need a real board: "
        f"`edgeped deploy {shlex.quote(str(model))} --host BOARD`, then "
        f"`{shlex.join(['edgeped', 'gate', str(run_dir)])}`"
    )
    verdict = gate_run(run_dir, budgets)
    write_reports(verdict, json_path=run_dir / GATE_JSON, summary_path=run_dir / GATE_MARKDOWN)
    return verdict, notes


def quick_robustness(run_dir: Path, detail: Callable[[str], None]) -> None:
    """What `edgeped eval` adds by default: the quick corruption suite and its summary."""
    from edgeped.evaluate.outputs import attach_robustness
    from edgeped.evaluate.robustness import evaluate_robustness, quick_suite

    robust = evaluate_robustness(run_dir, quick_suite(), progress=detail)
    attach_robustness(run_dir, robust.report, robust.save(run_dir))


def run_demo(
    config: DemoConfig,
    *,
    step: Callable[[str], None] = lambda _: None,
    detail: Callable[[str], None] = lambda _: None,
    synth_progress=None,
    budgets_file: Path | None = None,
) -> DemoResult:
    """Runs the whole pipeline into config.out_dir (data/ and run/ inside it), then the gate."""
    from edgeped.convert.run import convert_run
    from edgeped.data.synthetic import write_synthetic
    from edgeped.evaluate.run import EvalConfig, evaluate_run
    from edgeped.rollout.drift_run import write_run_reference
    from edgeped.train.loop import train

    out = Path(config.out_dir)
    data_dir, run_dir = out / "data", out / "run"
    seconds: dict[str, float] = {}

    def timed(name: str, fn):
        start = time.perf_counter()
        value = fn()
        seconds[name] = round(time.perf_counter() - start, 1)
        return value

    step(f"1/5 synthetic data: {config.synth.drives} drives x {config.synth.crops_per_drive} crops")
    timed(
        "data",
        lambda: write_synthetic(
            str(data_dir),
            config.synth,
            overwrite=True,
            split_fractions=DEMO_SPLITS,
            progress=synth_progress,
        ),
    )
    train_config = replace(
        profile_config("demo", str(data_dir)),
        teacher=config.teacher,
        student=config.student,
        teacher_stage=config.teacher_stage,
        student_stage=config.student_stage,
        qat_stage=config.qat_stage,
    )
    step(f"2/5 training ({', '.join(train_config.stages)}), the demo profile")
    timed("train", lambda: train(run_dir, train_config, progress=detail, overwrite=True))
    step("3/5 conversion: float32, PTQ int8 and QAT int8 .tflite + model cards")
    timed("convert", lambda: convert_run(run_dir, progress=detail))
    step("4/5 evaluation of the .tflite models (LiteRT), with the quick robustness suite")
    result = timed("evaluate", lambda: evaluate_run(run_dir, EvalConfig(), progress=detail))
    paths = result.save(run_dir)
    write_run_reference(run_dir, result)
    timed("robustness", lambda: quick_robustness(run_dir, detail))
    step(
        "5/5 gate: budgets.toml on the QAT int8 model (emulated board if built; no real board here)"
    )
    verdict, notes = timed("gate", lambda: gate_demo_run(run_dir, budgets_file, detail))
    return DemoResult(run_dir, data_dir, paths["report"], paths["metrics"], seconds, verdict, notes)
