import json
import tomllib

import pytest

from edgeped.data.preprocess import Preprocessing
from edgeped.data.synthetic import SynthConfig
from edgeped.evaluate.run import EvalConfig
from edgeped.models.registry import ModelSpec
from edgeped.train.config import StageConfig, TrainConfig


def _toml(data: dict) -> str:
    """Minimal TOML writer for flat/nested dicts of scalars (enough for our configs)."""
    def scalar(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        return repr(v)

    lines, tables = [], []
    for k, v in data.items():
        if v is None:
            continue
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {scalar(v)}")
    for name, table in tables:
        lines.append(f"[{name}]")
        lines += [f"{k} = {scalar(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines)


CONFIGS = [
    TrainConfig("data/x", teacher=ModelSpec("teacher", 0.25), student=ModelSpec("tiny", 1.0, False),
                qat_stage=StageConfig(1, 1e-4, 5), seed=7),
    SynthConfig(drives=10, positive_rate=0.05, seed=3),
    ModelSpec("student", width=0.5, use_metadata=False),
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


@pytest.mark.parametrize("build,field", [
    (lambda: ModelSpec("resnet"), "architecture"),
    (lambda: ModelSpec("student", width=0), "width"),
    (lambda: StageConfig(-1, 0.1), "epochs"),
    (lambda: StageConfig(1, 2.0), "learning_rate"),
    (lambda: TrainConfig("d", batch_size=0), "batch_size"),
    (lambda: TrainConfig("d", student=ModelSpec("teacher")), "student.architecture"),
    (lambda: TrainConfig.from_dict({"data_dir": "d", "epochs": 3}), "unknown"),
    (lambda: EvalConfig(max_fpr=0), "max_fpr"),
    (lambda: Preprocessing(mean=(0,) * 6, std=(0,) * 6), "std"),
])
def test_invalid_values_name_the_field(build, field):
    with pytest.raises(ValueError, match=field):
        build()
