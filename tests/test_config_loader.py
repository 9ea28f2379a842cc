"""The one config loader: every config class round-trips, and every bad value is named."""

import json
import tomllib

import pytest
import tomli_w

from edgeped.config import ConfigError, from_mapping
from edgeped.data.augment import AugmentConfig
from edgeped.data.fleet import FleetConfig
from edgeped.data.importers.frames import FrameImportConfig
from edgeped.data.importers.geometry import WindowRules
from edgeped.data.synthetic import SynthConfig
from edgeped.demo import DemoConfig
from edgeped.evaluate.run import EvalConfig
from edgeped.gate.budgets import Budgets, CostBudgets, DeviceBudgets
from edgeped.models.registry import ModelSpec
from edgeped.targets.bench import BenchOptions
from edgeped.targets.ssh import SshTargetConfig
from edgeped.train.config import DistillConfig, MiningConfig, StageConfig, TrainConfig


def _strip_none(value):
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_strip_none(v) for v in value]
    return value


def _as_data(config):
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(config), default=str))


# One non-default instance of every config class the loader builds.
CONFIGS = [
    TrainConfig(
        "data/x",
        teacher=ModelSpec("teacher", 0.25),
        student=ModelSpec("tiny", 1.0, False),
        qat_stage=StageConfig(1, 1e-4, 5),
        seed=7,
        exclude=("lighting=night",),
        mining=MiningConfig(rounds=2),
        distill=DistillConfig(temperature=3.0),
        augment=AugmentConfig(night=0.3),
    ),
    StageConfig(4, 1e-3, 12),
    DistillConfig(temperature=2.0, alpha=0.3),
    MiningConfig(rounds=1, top_k=64),
    AugmentConfig(night=0.1),
    ModelSpec("student", width=0.5, use_metadata=False),
    SynthConfig(drives=10, positive_rate=0.05, seed=3),
    FleetConfig(drives=7, difficulty=0.8, fog_rate=0.2, seed=3),
    FrameImportConfig(rules=WindowRules(margin=0.2), jitter_copies=1, source_name="pf"),
    WindowRules(min_height=40.0, near_miss_iou=(0.05, 0.25)),
    EvalConfig(max_fpr=0.02, threads=1),
    BenchOptions(threads=2, pin=(0, 1), delegate="libx.so"),
    SshTargetConfig(name="ecu-dev", python="/usr/bin/python3", ssh_alias="ecu-dev", port=2222),
    Budgets(
        model="student_float32",
        cost=CostBudgets(max_instructions_per_invoke={"cortex-a76": 2_000_000}),
        device=DeviceBudgets(allowed_fallback_ops=("TOPK_V2",)),
    ),
    DemoConfig(out_dir="runs/d2", synth=SynthConfig(drives=20)),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_every_config_round_trips(config, fmt):
    data = _strip_none(_as_data(config))
    text = json.dumps(data) if fmt == "json" else tomli_w.dumps(data)
    loaded = json.loads(text) if fmt == "json" else tomllib.loads(text)
    assert from_mapping(type(config), loaded, where="f") == config


def test_a_partial_nested_table_keeps_the_other_defaults():
    config = TrainConfig.from_dict({"data_dir": "d", "qat_stage": {"epochs": 2}})
    assert config.qat_stage.epochs == 2
    assert config.qat_stage.learning_rate == TrainConfig("d").qat_stage.learning_rate
    budgets = Budgets.from_dict({"quality": {"min_recall": 0.95}})
    assert budgets.quality.min_recall == 0.95
    assert budgets.quality.max_fpr == Budgets().quality.max_fpr


@pytest.mark.parametrize(
    "data,phrase",
    [
        ({"data_dir": "d", "epochs": 3}, "train.toml: unknown key(s) ['epochs']"),
        (
            {"data_dir": "d", "student_stage": {"epochs": "three"}},
            "train.toml: student_stage.epochs: must be",
        ),
        ({"data_dir": "d", "student_stage": {"epochs": 2.5}}, "whole number, got float 2.5"),
        ({"data_dir": "d", "distill": {"temprature": 3.0}}, "did you mean: temprature -> temp"),
        ({"data_dir": "d", "teacher_stage": 5}, "teacher_stage: must be a table"),
        ({"data_dir": "d", "seed": "zero"}, "train.toml: seed: must be a whole number"),
        ({"data_dir": "d", "deterministic": 1}, "must be true or false"),
        ({"data_dir": "d", "exclude": "lighting=night"}, "exclude: must be a list"),
        ({"data_dir": "d", "student_stage": {"learning_rate": float("nan")}}, "finite"),
        ({"data_dir": "d", "qat_stage": {"epochs": -1}}, "qat_stage: epochs must be >= 0"),
        ({}, "train.toml: data_dir: missing required key"),
        ([], "train.toml: must be a table of keys, got a list"),
    ],
)
def test_bad_train_configs_name_file_key_and_problem(data, phrase):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(data, where="train.toml")
    assert phrase in str(info.value)


def test_a_fallback_op_string_is_not_read_as_characters():
    with pytest.raises(ConfigError, match=r"allowed_fallback_ops = \[.TOPK_V2.\]"):
        Budgets.from_dict({"device": {"allowed_fallback_ops": "TOPK_V2"}})


@pytest.mark.parametrize(
    "entry,phrase",
    [
        ({"name": "x", "ssh_alias": "x"}, "targets.x: python: missing required key"),
        ({"name": "x", "python": "/p", "ssh_alias": "x", "port": "22"}, "port: must be a whole"),
        ({"name": "x", "python": "/p", "ssh_alias": "x", "colour": 1}, "unknown key(s) ['colour']"),
    ],
)
def test_bad_target_entries_name_the_key(entry, phrase):
    with pytest.raises(ConfigError) as info:
        SshTargetConfig.from_dict(entry)
    assert phrase in str(info.value)


def test_config_errors_are_also_value_errors():
    """Library callers that validate with `except ValueError` keep working."""
    with pytest.raises(ValueError):
        EvalConfig.from_dict({"max_fpr": "low"})


def test_steps_per_epoch_caps_every_stage_pruning_included():
    config = TrainConfig("d").with_stage_overrides(
        epochs={"qat_stage": 3}, steps_per_epoch=4, epochs_scale=None
    )
    for name in ("teacher_stage", "student_stage", "qat_stage", "prune_stage"):
        assert getattr(config, name).steps_per_epoch == 4, name
    assert config.qat_stage.epochs == 3
    with pytest.raises(ValueError, match="unknown stage field"):
        TrainConfig("d").with_stage_overrides(epochs={"pruning": 1})


def test_epochs_scale_scales_every_stage():
    base = TrainConfig("d")
    half = base.with_stage_overrides(epochs_scale=0.5)
    assert half.prune_stage.epochs == max(1, round(base.prune_stage.epochs * 0.5))
    assert half.student_stage.epochs == max(1, round(base.student_stage.epochs * 0.5))
