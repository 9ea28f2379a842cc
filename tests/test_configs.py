import json
import tomllib

import pytest
import tomli_w

from edgeped.data.augment import AugmentConfig
from edgeped.data.preprocess import Preprocessing
from edgeped.data.synthetic import SynthConfig
from edgeped.evaluate.run import EvalConfig
from edgeped.models.registry import ModelSpec
from edgeped.train.config import DistillConfig, MiningConfig, StageConfig, TrainConfig


def _toml(data: dict) -> str:
    """TOML has no null: drop None values (the dataclass defaults stand in for them)."""

    def strip(d):
        return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    return tomli_w.dumps(strip(data))


CONFIGS = [
    TrainConfig(
        "data/x",
        teacher=ModelSpec("teacher", 0.25),
        student=ModelSpec("tiny", 1.0, False),
        qat_stage=StageConfig(1, 1e-4, 5),
        student_stage=StageConfig(12, 1e-3, patience=4),
        stages=("teacher", "student", "student_distilled", "student_qat"),
        seed=7,
        exclude=("lighting=night",),
        mining=MiningConfig(rounds=2),
        distill=DistillConfig(temperature=3.0),
        augment=AugmentConfig(night=0.3),
    ),
    SynthConfig(drives=10, positive_rate=0.05, seed=3),
    ModelSpec("student", width=0.5, use_metadata=False),
    ModelSpec("mobilenet", width=0.75, depth=2),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_config_round_trip(config, fmt):
    data = config.to_dict()
    text = json.dumps(data) if fmt == "json" else _toml(data)
    loaded = json.loads(text) if fmt == "json" else tomllib.loads(text)
    assert type(config).from_dict(loaded) == config


def test_preprocessing_round_trip():
    prep = Preprocessing(mean=(1, 2, 3, 4, 5, 6), std=(1, 1, 2, 2, 3, 3), clip=3.0)
    assert Preprocessing.from_dict(json.loads(json.dumps(prep.to_dict()))) == prep


@pytest.mark.parametrize(
    "build,field",
    [
        (lambda: ModelSpec("resnet"), "architecture"),
        (lambda: ModelSpec("student", width=0), "width"),
        (lambda: StageConfig(-1, 0.1), "epochs"),
        (lambda: StageConfig(1, 2.0), "learning_rate"),
        (lambda: StageConfig(5, 1e-3, patience=-1), "patience"),
        (lambda: ModelSpec("student", depth=0), "depth"),
        (lambda: TrainConfig("d", stages=("student", "finetune")), "stages"),
        (lambda: TrainConfig("d", stages=()), "stages"),
        (lambda: DistillConfig(min_teacher_gain=1.5), "min_teacher_gain"),
        (lambda: TrainConfig("d", batch_size=0), "batch_size"),
        (lambda: TrainConfig("d", student=ModelSpec("teacher")), "student.architecture"),
        (lambda: TrainConfig.from_dict({"data_dir": "d", "epochs": 3}), "unknown"),
        (lambda: TrainConfig("d", exclude=("lighting=noon",)), "exclude"),
        (lambda: TrainConfig("d", loss="hinge"), "loss"),
        (lambda: MiningConfig(hard_fraction=1.0), "hard_fraction"),
        (lambda: AugmentConfig(night=2.0), "night"),
        (lambda: EvalConfig(max_fpr=0), "max_fpr"),
        (lambda: Preprocessing(mean=(0,) * 6, std=(0,) * 6), "std"),
    ],
)
def test_invalid_values_name_the_field(build, field):
    with pytest.raises(ValueError, match=field):
        build()


def test_example_config_is_the_default_config():
    """configs/train.example.toml documents the defaults; it must not drift from them."""
    from pathlib import Path

    text = (Path(__file__).parent.parent / "configs" / "train.example.toml").read_text()
    loaded = TrainConfig.from_dict({"data_dir": "d", **tomllib.loads(text)})
    assert loaded == TrainConfig("d")


def test_demo_config_file_is_the_demo_profile():
    """configs/demo.toml spells out the `demo` profile; `make demo` trains with the profile."""
    from pathlib import Path

    from edgeped.demo import DemoConfig
    from edgeped.train.profiles import profile_config

    text = (Path(__file__).parent.parent / "configs" / "demo.toml").read_text()
    from_file = TrainConfig.from_dict({"data_dir": "d", **tomllib.loads(text)})
    assert from_file == profile_config("demo", "d")
    assert DemoConfig().student_stage == from_file.student_stage
    assert profile_config("default", "d") == TrainConfig("d")


def test_profile_overrides_and_unknown_profile():
    from edgeped.train.profiles import profile_config

    config = profile_config("demo", "d", {"student_stage": {"epochs": 3}})
    assert config.student_stage.epochs == 3 and config.student_stage.patience == 3
    with pytest.raises(ValueError, match="profile"):
        profile_config("fast", "d")
