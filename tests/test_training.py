"""Every training stage on a tiny model: distillation, mining, QAT lineage, pruning, determinism."""

import json

import numpy as np
import pytest

from edgeped.data.augment import AugmentConfig
from edgeped.models.registry import ModelSpec
from edgeped.train.config import DistillConfig, MiningConfig, StageConfig, TrainConfig
from edgeped.train.loop import load_checkpoint, train

pytestmark = pytest.mark.slow


def _config(data_dir, **changes):
    base = dict(
        data_dir=str(data_dir),
        teacher=ModelSpec("tiny"),
        student=ModelSpec("tiny"),
        teacher_stage=StageConfig(1, 1e-2, 4),
        student_stage=StageConfig(1, 1e-2, 4),
        qat_stage=StageConfig(1, 1e-3, 3),
        prune_stage=StageConfig(2, 1e-3, 4),
        batch_size=16,
        distill=DistillConfig(temperature=2.0, alpha=0.5),
    )
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def all_stages(tiny_dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("all_stages")
    config = _config(
        tiny_dataset,
        mining=MiningConfig(rounds=1, top_k=16, epochs_per_round=1),
        prune_final_sparsity=0.5,
    )
    results = train(
        run,
        config,
        stages=("teacher", "student", "student_distilled", "student_qat", "student_pruned"),
    )
    return run, {r.name: r for r in results}


def test_every_stage_writes_its_checkpoint(all_stages):
    run, results = all_stages
    assert set(results) == {
        "teacher",
        "student",
        "student_distilled",
        "student_qat",
        "student_pruned",
    }
    for name in results:
        assert (run / f"{name}.h5").is_file()


def test_mining_reports_the_kinds_it_mined(all_stages):
    run, results = all_stages
    mined = results["student_distilled"].mined
    assert len(mined) == 1 and sum(mined[0]["kinds"].values()) == 16
    assert "none" not in mined[0]["kinds"]  # only negatives are mined
    log = json.loads((run / "train_log.json").read_text())
    assert any(s["mined"] for s in log["stages"])


def test_qat_and_pruning_start_from_the_distilled_student(all_stages):
    run, _ = all_stages
    parents = json.loads((run / "train_log.json").read_text())["parents"]
    assert parents == {
        "student_qat.h5": "student_distilled.h5",
        "student_pruned.h5": "student_distilled.h5",
    }


def test_pruned_student_reaches_target_sparsity(all_stages):
    run, _ = all_stages
    model = load_checkpoint(run / "student_pruned.h5")
    kernel = model.get_layer("conv").get_weights()[0]
    assert (kernel == 0).mean() >= 0.45


def test_distillation_needs_a_teacher(tiny_dataset, tmp_path):
    from edgeped.errors import EdgepedError

    with pytest.raises(EdgepedError, match="needs a teacher"):
        train(tmp_path / "run", _config(tiny_dataset), stages=("student_distilled",))


# The stated noise of a repeated run: same data order, same augmentation draws and
# same initial weights, so only float summation order in oneDNN's threaded kernels can
# differ; on some CPUs that moves a weight by an ulp or two (seen: 1.5e-8 absolute).
REPEAT_RTOL, REPEAT_ATOL = 1e-5, 1e-6


def test_same_config_twice_gives_the_same_weights(tiny_dataset, tmp_path):
    config = _config(tiny_dataset, augment=AugmentConfig(), seed=5)
    weights = []
    for i in range(2):
        train(tmp_path / f"r{i}", config, stages=("student",))
        weights.append(load_checkpoint(tmp_path / f"r{i}" / "student.h5").get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=REPEAT_RTOL, atol=REPEAT_ATOL)


def test_another_seed_gives_other_weights(tiny_dataset, tmp_path):
    """The tolerance above is far below what a real change of the run moves."""
    weights = []
    for seed in (5, 6):
        train(
            tmp_path / f"s{seed}",
            _config(tiny_dataset, augment=AugmentConfig(), seed=seed),
            stages=("student",),
        )
        weights.append(load_checkpoint(tmp_path / f"s{seed}" / "student.h5").get_weights())
    assert any(
        not np.allclose(a, b, rtol=REPEAT_RTOL, atol=REPEAT_ATOL)
        for a, b in zip(*weights, strict=True)
    )


def test_focal_loss_and_weighting_train(tiny_dataset, tmp_path):
    for i, changes in enumerate(
        [
            dict(loss="focal"),
            dict(imbalance="weight"),
            dict(imbalance="none", augment=AugmentConfig.off()),
        ]
    ):
        result = train(tmp_path / f"r{i}", _config(tiny_dataset, **changes), stages=("student",))
        assert np.isfinite(result[0].history["loss"]).all()


def test_input_range_pinning_survives_renamed_variables():
    """In a long process Keras names variables quantize_layer_min_1; pinning must still work."""
    from edgeped._keras import tfmot
    from edgeped.models import build_model
    from edgeped.train.loop import INPUT_RANGE, fix_input_ranges

    mot = tfmot()
    for _ in range(2):  # the second model gets uniquified variable names
        model = mot.quantization.keras.quantize_model(build_model(ModelSpec("tiny")))
        assert fix_input_ranges(model) == 1
        layer = next(
            lay
            for lay in model.layers
            if type(lay).__name__ == "QuantizeLayer" and len(lay.input_shape) == 4
        )
        got = sorted(float(w.numpy()) for w in layer.weights if "min" in w.name or "max" in w.name)
        assert got == sorted(INPUT_RANGE)
