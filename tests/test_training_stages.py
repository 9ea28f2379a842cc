"""The training stage declarations, and everything that reads them, name the same files."""

from __future__ import annotations

from dataclasses import fields

import pytest

from edgeped import layout
from edgeped.errors import EdgepedError
from edgeped.train.config import DEFAULT_STAGES, STAGE_FIELDS, StageConfig, TrainConfig
from edgeped.training_stages import (
    CONVERSION_MODES,
    TRAINING_STAGES,
    StageOutput,
    TrainingStage,
    built_on,
    check_stage_names,
    declare,
)

NAMES = ("teacher", "student", "student_distilled", "student_qat", "student_pruned")


def test_the_run_layout_keeps_its_file_names():
    assert layout.STAGES == NAMES
    assert layout.CHECKPOINTS == {n: f"{n}.h5" for n in NAMES}
    assert [(c.name, c.checkpoints, c.mode) for c in layout.CONVERSIONS] == [
        ("teacher_float32", ("teacher.h5",), "float32"),
        ("student_float32", ("student.h5",), "float32"),
        ("student_distilled_float32", ("student_distilled.h5",), "float32"),
        ("student_ptq_int8", ("student_distilled.h5", "student.h5"), "ptq-int8"),
        ("student_qat_int8", ("student_qat.h5",), "qat-int8"),
        ("student_pruned_float32", ("student_pruned.h5",), "float32"),
        ("student_pruned_ptq_int8", ("student_pruned.h5",), "ptq-int8"),
    ]
    assert layout.SHIPPED_MODEL in layout.MODEL_NAMES


def test_the_train_config_has_one_table_per_stage_key():
    assert STAGE_FIELDS == ("teacher_stage", "student_stage", "qat_stage", "prune_stage")
    assert DEFAULT_STAGES == ("student", "student_qat") == TrainConfig("d").stages
    names = [f.name for f in fields(TrainConfig)]
    assert names[names.index("student") + 1 : names.index("student") + 5] == list(STAGE_FIELDS)
    config = TrainConfig("d")
    for stage in TRAINING_STAGES.values():
        assert isinstance(getattr(config, stage.config_key), StageConfig)
        if stage.schedule is not None:
            assert getattr(config, stage.config_key) == stage.schedule
    assert config.qat_stage == StageConfig(8, 3e-4, patience=3, schedule="plateau")


def test_resume_rules_come_from_the_lineage():
    from edgeped.train.run_dir import BUILT_ON, STAGE_KEYS

    assert STAGE_KEYS == {
        "teacher": ("teacher", "teacher_stage"),
        "student_distilled": ("distill",),
        "student_qat": ("qat_stage",),
        "student_pruned": ("prune_stage", "prune_final_sparsity"),
    }
    assert BUILT_ON == {
        "teacher": ("student_distilled", "student_qat", "student_pruned"),
        "student_distilled": ("student_qat", "student_pruned"),
        "student_qat": (),
        "student_pruned": (),
    }
    assert built_on("student") == ("student_qat", "student_pruned")


def test_every_stage_has_a_runner_and_every_output_a_converter():
    from edgeped.convert.converter import CONVERTERS
    from edgeped.train.stage_runners import STAGE_RUNNERS

    assert tuple(STAGE_RUNNERS) == tuple(TRAINING_STAGES)
    assert set(CONVERSION_MODES) == set(CONVERTERS)
    config_keys = {f.name for f in fields(TrainConfig)}
    for stage in TRAINING_STAGES.values():
        assert set(stage.own_keys) <= config_keys, stage.name


@pytest.mark.parametrize(
    "stage",
    [
        TrainingStage("teacher", config_key="teacher_stage"),  # already declared
        TrainingStage("x", config_key="x_stage"),  # a new key needs its default schedule
        TrainingStage("x", config_key="student_stage", schedule=StageConfig(1, 0.1)),
        TrainingStage("x", config_key="student_stage", parents=("later",)),
        TrainingStage("x", config_key="student_stage", outputs=(StageOutput("x", "int4"),)),
        TrainingStage(
            "x", config_key="student_stage", outputs=(StageOutput("teacher_float32", "float32"),)
        ),
    ],
)
def test_a_contradicting_declaration_is_refused(stage):
    with pytest.raises(ValueError):
        declare(stage)
    assert tuple(TRAINING_STAGES) == NAMES


def test_unknown_stage_names_the_declared_ones():
    check_stage_names(("student", "student_qat"))
    with pytest.raises(EdgepedError, match="unknown stage") as err:
        check_stage_names(("student", "studnet"))
    assert err.value.fix == f"use some of {', '.join(NAMES)}"


def test_a_new_stage_is_one_declaration():
    """Declared before the readers load, a stage reaches the layout, the config, the
    resume rules and the CLI help with no other change (in a fresh interpreter)."""
    import subprocess
    import sys

    code = """
from edgeped.training_stages import StageConfig, StageOutput, TrainingStage, declare
declare(TrainingStage(
    "student_tiny", config_key="tiny_stage", schedule=StageConfig(1, 0.01), help="a test",
    parents=("student",), own_keys=("tiny_stage",),
    outputs=(StageOutput("student_tiny_ptq_int8", "ptq-int8"),),
))
from click.testing import CliRunner
from edgeped import layout
from edgeped.cli import main
from edgeped.train.config import STAGE_FIELDS, TrainConfig
from edgeped.train.run_dir import BUILT_ON, STAGE_KEYS
assert layout.CHECKPOINTS["student_tiny"] == "student_tiny.h5"
assert layout.MODEL_NAMES[-1] == "student_tiny_ptq_int8"
assert STAGE_FIELDS[-1] == "tiny_stage"
config = TrainConfig.from_dict({"data_dir": "d", "tiny_stage": {"epochs": 3}})
assert config.tiny_stage == StageConfig(3, 0.01)
assert STAGE_KEYS["student_tiny"] == ("tiny_stage",) and "student_tiny" in BUILT_ON
assert "student_tiny" in TrainConfig("d", stages=("student_tiny",)).stages
def shown(*args):
    return " ".join(CliRunner().invoke(main, [*args, "--help"]).output.split())
assert "student_pruned, student_tiny (a test). Repeatable" in shown("train")
assert "student_pruned_ptq_int8, student_tiny_ptq_int8)" in shown("convert")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
