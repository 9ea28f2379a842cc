"""Every training stage on a tiny model: distillation and its decision, mining, QAT lineage,
pruning, early stopping, determinism."""

import json

import numpy as np
import pytest

from edgeped.data.augment import AugmentConfig
from edgeped.models.registry import ModelSpec
from edgeped.train.checkpoints import load_checkpoint
from edgeped.train.config import DistillConfig, MiningConfig, StageConfig, TrainConfig
from edgeped.train.loop import train

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
        # -1: distil whatever the teacher's val AUC-PR (the rule itself is tested below).
        distill=DistillConfig(temperature=2.0, alpha=0.5, min_teacher_gain=-1.0),
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


def test_qat_starts_from_the_float_student_best_on_val(all_stages):
    run, results = all_stages
    log = json.loads((run / "train_log.json").read_text())
    val = {n: results[n].best_val_auc_pr for n in ("student", "student_distilled")}
    best = max(val, key=lambda n: (val[n], n == "student"))
    assert log["parents"] == {"student_qat.h5": f"{best}.h5", "student_pruned.h5": f"{best}.h5"}
    qat = next(st for st in log["stages"] if st["name"] == "student_qat")
    assert qat["decision"]["candidates_val_auc_pr"] == pytest.approx(val)
    assert log["distillation"]["distill"] is True


def test_distillation_is_skipped_when_the_teacher_does_not_beat_the_student(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    (run).mkdir()
    (run / "student_distilled.h5").write_bytes(b"stale")  # from an earlier run: must go
    config = _config(tiny_dataset, distill=DistillConfig(min_teacher_gain=0.99))
    results = train(run, config, stages=("teacher", "student", "student_distilled"), overwrite=True)
    skipped = results[-1]
    assert skipped.name == "student_distilled" and skipped.epochs == 0
    assert not (run / "student_distilled.h5").exists()
    log = json.loads((run / "train_log.json").read_text())
    assert log["distillation"]["distill"] is False
    assert "does not beat" in log["distillation"]["reason"]
    assert log["distillation"]["teacher_val_auc_pr"] == pytest.approx(results[0].best_val_auc_pr)


def test_distillation_decision_rule():
    from edgeped.train.distill import distillation_decision

    assert distillation_decision({"teacher": 0.9, "student": 0.8}, 0.05)["distill"]
    assert not distillation_decision({"teacher": 0.82, "student": 0.8}, 0.05)["distill"]
    assert distillation_decision({"teacher": 0.5}, 0.0)["distill"]  # nothing to compare


def test_patience_stops_a_stage_that_stops_improving(tiny_dataset, tmp_path):
    # A learning rate of ~0 leaves val AUC-PR where epoch 1 put it: patience 2 stops at 3.
    config = _config(tiny_dataset, student_stage=StageConfig(6, 1e-9, 4, patience=2))
    (result,) = train(tmp_path / "run", config, stages=("student",))
    assert result.epochs == 3 and result.max_epochs == 6 and result.best_epoch == 1
    assert len(result.history["val_auc_pr"]) == 3


def test_plateau_schedule_cuts_the_learning_rate_when_val_stalls(tiny_dataset, tmp_path):
    # Val AUC-PR stays where epoch 1 put it: with patience 4 the rate is cut x0.3 after
    # 2 epochs without gain (epoch 3); at epoch 5 (4 without gain) the stage stops.
    stage = StageConfig(9, 1e-9, 4, patience=4, schedule="plateau")
    config = _config(tiny_dataset, student_stage=stage)
    (result,) = train(tmp_path / "run", config, stages=("student",))
    assert result.lr_cuts == [3] and result.epochs == 5 and result.best_epoch == 1
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert log["stages"][0]["lr_cuts"] == [3]
    with pytest.raises(ValueError, match="schedule must be one of"):
        StageConfig(2, 1e-3, schedule="step")


def test_stages_default_to_the_config(tiny_dataset, tmp_path):
    config = _config(tiny_dataset, stages=("student",))
    assert [r.name for r in train(tmp_path / "run", config)] == ["student"]


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
    """Each imbalance/loss choice is the one that trains: their first-epoch losses differ as
    the formulas say (focal down-weights easy crops; a positive weight raises the loss)."""
    first = {}
    for name, changes in {
        "bce": dict(imbalance="none"),
        "focal": dict(loss="focal", imbalance="none"),
        "weight": dict(imbalance="weight"),
    }.items():
        result = train(tmp_path / name, _config(tiny_dataset, **changes), stages=("student",))
        losses = result[0].history["loss"]
        assert np.isfinite(losses).all(), name
        first[name] = losses[0]
    assert first["focal"] < 0.5 * first["bce"], first
    assert first["weight"] > first["bce"], first


def test_input_range_pinning_survives_renamed_variables():
    """In a long process Keras names variables quantize_layer_min_1; pinning must still work."""
    from edgeped._keras import tfmot
    from edgeped.models import build_model
    from edgeped.train.checkpoints import INPUT_RANGE, fix_input_ranges

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


def test_weight_averaging_runs_in_float_distilled_and_qat_stages(tiny_dataset, tmp_path):
    """ema in every stage kind (a model, a distiller around the student, a QAT model) trains
    and is recorded; the distilled checkpoint differs from the same run without it."""
    ckpts = {}
    for name, ema in (("plain", 0.0), ("ema", 0.9)):
        config = _config(
            tiny_dataset,
            augment=AugmentConfig(),
            seed=5,
            student_stage=StageConfig(2, 1e-2, 4, ema=ema),
            qat_stage=StageConfig(1, 1e-3, 3, ema=ema),
        )
        stages = ("teacher", "student_distilled", "student_qat")
        results = train(tmp_path / name, config, stages=stages)
        assert [r.name for r in results] == list(stages)
        log = json.loads((tmp_path / name / "config.json").read_text())
        assert log["config"]["student_stage"]["ema"] == ema
        ckpts[name] = {
            s: load_checkpoint(tmp_path / name / f"{s}.h5").get_weights()
            for s in ("student_distilled", "student_qat")
        }
    for stage in ("student_distilled", "student_qat"):
        pairs = zip(ckpts["plain"][stage], ckpts["ema"][stage], strict=True)
        assert any(not np.allclose(a, b, rtol=1e-3, atol=1e-4) for a, b in pairs), stage


def test_resume_retunes_qat_from_the_same_float_student(tiny_dataset, tmp_path):
    """`train --resume --stage student_qat` with another [qat_stage]: QAT again, float kept."""
    run = tmp_path / "run"
    train(run, _config(tiny_dataset), stages=("student", "student_qat"))
    student = (run / "student.h5").read_bytes()
    qat = (run / "student_qat.h5").read_bytes()
    retuned = _config(tiny_dataset, qat_stage=StageConfig(1, 1e-5, 3))
    train(run, retuned, stages=("student_qat",), resume=True)
    assert (run / "student.h5").read_bytes() == student
    assert (run / "student_qat.h5").read_bytes() != qat
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["config"]["qat_stage"]["learning_rate"] == 1e-5
    assert recorded["stages"] == ["student", "student_qat"]
    log = json.loads((run / "train_log.json").read_text())
    assert [s["name"] for s in log["stages"]] == ["student", "student_qat"]
    assert log["parents"] == {"student_qat.h5": "student.h5"}


def test_consistency_loss_trains_float_and_qat_stages_on_two_views(tiny_dataset, tmp_path):
    """augment.consistency > 0: both stages train through the wrapper (its JS term logged
    and above 0), checkpoints are the plain model, and they differ from the run without."""
    ckpts = {}
    for name, weight in (("plain", 0.0), ("consistent", 12.0)):
        config = _config(
            tiny_dataset, augment=AugmentConfig(noise=0.5, tone=0.5, consistency=weight), seed=3
        )
        results = train(tmp_path / name, config, stages=("student", "student_qat"))
        for r in results:
            assert ("js_loss" in r.history) == (weight > 0), r.name
            if weight:
                assert min(r.history["js_loss"]) > 0, r.name
                assert "val_auc_pr" in r.history
        ckpts[name] = load_checkpoint(tmp_path / name / "student_qat.h5")
        assert ckpts[name].name != "consistent_tiny"  # the model, never the wrapper
    pairs = zip(ckpts["plain"].get_weights(), ckpts["consistent"].get_weights(), strict=True)
    assert any(not np.allclose(a, b, rtol=1e-3, atol=1e-4) for a, b in pairs)


def test_checkpoint_on_clean_plus_augmented_scores_val_under_shift(tiny_dataset, tmp_path):
    """The same first epoch (checkpoint_on does not touch training) is scored on other val
    crops: the clean half alone, or with the augmented copy, so val AUC-PR differs."""
    aug = AugmentConfig(noise=1.0, tone=1.0, dark=1.0)
    seen = {}
    for mode in ("clean", "clean+augmented"):
        config = _config(tiny_dataset, augment=aug, seed=5, checkpoint_on=mode)
        (result,) = train(tmp_path / mode.replace("+", "_"), config, stages=("student",))
        seen[mode] = (result.history["loss"][0], result.history["val_auc_pr"][0])
    assert seen["clean"][0] == pytest.approx(seen["clean+augmented"][0], rel=1e-6)
    assert seen["clean"][1] != pytest.approx(seen["clean+augmented"][1], abs=1e-6)
