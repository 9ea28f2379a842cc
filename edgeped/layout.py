"""The run directory's layout: every file name a stage writes or reads, in one place.

numpy- and TensorFlow-free, so the gate, the CLI and the device tooling can all use it.
A run directory (``runs/<name>/``) holds::

    config.json, train_log.json        train
    <stage>.h5                         train, one checkpoint per stage
    <model>.tflite, <model>.card.json  convert, one per entry of CONVERSIONS
    metrics.json, report.md, plots/,   eval (with --tag T: metrics-T.json, report-T.md,
    test_scores.npz                      plots-T/, test_scores-T.npz)
    bench*.json, bench/*.json          bench / deploy
    gate.json, gate.md                 gate (--json/--summary) and demo
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgeped.training_stages import TRAINING_STAGES

CONFIG_FILE = "config.json"
TRAIN_LOG_FILE = "train_log.json"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
TEST_SCORES_FILE = "test_scores.npz"
PLOTS_DIR = "plots"
GATE_JSON = "gate.json"
GATE_MARKDOWN = "gate.md"
BENCH_GLOBS = ("bench*.json", "bench/*.json")
MODEL_SUFFIX = ".tflite"
CARD_SUFFIX = ".card.json"

# Training stages in the order they run (declared in edgeped.training_stages); each
# writes <stage>.h5.
STAGES = tuple(TRAINING_STAGES)
CHECKPOINTS = {stage.name: stage.checkpoint for stage in TRAINING_STAGES.values()}

# The model a release ships unless a budgets file names another.
SHIPPED_MODEL = "student_qat_int8"


@dataclass(frozen=True)
class Conversion:
    """One model `edgeped convert` makes: its name, the checkpoints it may start from
    (first found wins) and the conversion mode."""

    name: str
    checkpoints: tuple[str, ...]
    mode: str


# Each stage's outputs, in pipeline order.
CONVERSIONS = tuple(
    Conversion(out.model, tuple(CHECKPOINTS[s] for s in out.start_from or (stage.name,)), out.mode)
    for stage in TRAINING_STAGES.values()
    for out in stage.outputs
)
MODEL_NAMES = tuple(c.name for c in CONVERSIONS)


def card_path(model_path: str | os.PathLike) -> Path:
    """The card beside a model: `student_qat_int8.tflite` -> `student_qat_int8.card.json`."""
    p = Path(model_path)
    return p.with_name(p.stem + CARD_SUFFIX)


def model_path(run_dir: str | os.PathLike, name: str) -> Path:
    """`RUN/<name>.tflite`."""
    return Path(run_dir) / f"{name}{MODEL_SUFFIX}"


def tagged(file_name: str, tag: str = "") -> str:
    """A side experiment's file beside the main one: `metrics.json` -> `metrics-T.json`."""
    if not tag:
        return file_name
    stem, dot, ext = file_name.partition(".")
    return f"{stem}-{tag}{dot}{ext}"
