"""Benchmark every model of a run directory on one target: one table, one file per model.

Like `yolo benchmark`: `edgeped bench RUN_DIR --target arm64-emu` measures each .tflite of
the run with the same options and writes `RUN_DIR/bench/<model>.<target>.json` (the gate
reads `bench/*.json`) plus a latency picture beside each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeped.errors import EdgepedError
from edgeped.targets.base import Target
from edgeped.targets.bench import BenchOptions, BenchResult, bench_model


def result_name(model: Path, target: Target) -> str:
    """`student_qat_int8.arm64-emu-cortex-a53`: the file stem of one model's result."""
    core = getattr(target, "core", None) if target.emulated else None
    suffix = f"-{core}" if core and target.kind == "arm64-emu" else ""
    return f"{model.stem}.{target.name}{suffix}"


def run_models(run_dir: Path) -> list[Path]:
    """Every .tflite in a run directory, by name.

    Raises:
        EdgepedError: the folder does not exist or holds no .tflite.
    """
    if not run_dir.is_dir():
        raise EdgepedError(
            f"run directory not found: {run_dir}", "pass a run directory or a .tflite"
        )
    models = sorted(run_dir.glob("*.tflite"))
    if not models:
        raise EdgepedError(f"no .tflite models in {run_dir}", "run `edgeped convert RUN_DIR` first")
    return models


@dataclass(frozen=True)
class SuiteEntry:
    model: Path
    result: BenchResult | None
    error: str | None = None


def bench_models(
    models: list[Path],
    target: Target,
    options: BenchOptions,
    *,
    parity: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[SuiteEntry]:
    """Benchmarks each model in turn; a model that fails is reported, the others still run."""
    entries = []
    for i, model in enumerate(models, 1):
        if progress:
            progress(f"[{i}/{len(models)}] {model.name} on {target.name}")
        try:
            entries.append(
                SuiteEntry(
                    model, bench_model(model, target, options, parity=parity, progress=progress)
                )
            )
        except EdgepedError as exc:
            entries.append(SuiteEntry(model, None, exc.problem))
    return entries
