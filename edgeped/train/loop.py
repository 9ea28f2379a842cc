"""Training runs: float teacher, float student, then QAT of the student (tfmot).

A run directory receives `config.json` (the resolved config), one `.h5`
checkpoint per model (best validation AUC-PR epoch), and `train_log.json`
(per-epoch history, dataset manifest hash, tool versions).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from edgeped.data.preprocess import Preprocessing
from edgeped.data.shards import Dataset
from edgeped.errors import EdgepedError
from edgeped.fileio import write_json_atomic
from edgeped.provenance import stamp
from edgeped.train.config import StageConfig, TrainConfig

CHECKPOINTS = {"teacher": "teacher.h5", "student": "student.h5", "student_qat": "student_qat.h5"}
INPUT_RANGE = (-1.0, 127.0 / 128.0)  # (u8 - 128) / 128 for u8 in [0, 255]

Progress = Callable[[str], None]


@dataclass
class StageResult:
    name: str
    checkpoint: str
    epochs: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    best_val_auc_pr: float | None = None


def positive_weight(dataset: Dataset, power: float) -> float:
    pos = dataset.positives("train")
    neg = dataset.count("train") - pos
    if pos == 0 or neg == 0:
        raise EdgepedError(f"the train split has {pos} positives and {neg} negatives",
                           "both classes are needed: generate or import more data")
    return float((neg / pos) ** power)


def _save_h5(model, path: Path, scope=None) -> None:
    """Saves a Keras model atomically (temp file in the same folder, then rename)."""
    fd, tmp = tempfile.mkstemp(suffix=".h5", dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    try:
        # HDF5 is the format tfmot's quantize_scope documents for QAT models; Keras's
        # "legacy format" notice about it is expected here.
        with warnings.catch_warnings(), (scope() if scope is not None else nullcontext()):
            warnings.filterwarnings("ignore", message=".*HDF5 file.*", category=UserWarning)
            model.save(tmp, include_optimizer=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path):
    """Loads a float or QAT checkpoint (QAT needs tfmot's quantize scope)."""
    from edgeped._keras import keras, tfmot

    p = Path(path)
    if not p.is_file():
        raise EdgepedError(f"checkpoint not found: {p}", "run `edgeped train` first")
    try:
        with tfmot().quantization.keras.quantize_scope():
            return keras.models.load_model(p, compile=False)
    except (OSError, ValueError) as exc:
        raise EdgepedError(f"cannot load checkpoint {p}: {exc}",
                           "the file is corrupt or not a Keras .h5: retrain") from exc


def _fit(model, name: str, stage: StageConfig, train_ds, val_ds, steps_per_epoch: int | None,
         epoch_steps: int, out: Path, progress: Progress, scope=None) -> StageResult:
    from edgeped._keras import keras

    decay_steps = max(1, stage.epochs * epoch_steps)
    schedule = keras.optimizers.schedules.CosineDecay(stage.learning_rate, decay_steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.BinaryCrossentropy(),
                  weighted_metrics=[],
                  metrics=[keras.metrics.AUC(curve="PR", name="auc_pr")])
    best = {"value": -1.0}

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            value = float(logs.get("val_auc_pr", -1.0))
            if value > best["value"]:
                best["value"] = value
                _save_h5(self.model, out, scope)
            progress(f"{name}: epoch {epoch + 1}/{stage.epochs} loss {logs.get('loss', 0):.4f} "
                     f"val_loss {logs.get('val_loss', 0):.4f} val_auc_pr {value:.4f}")

    start = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=stage.epochs,
                        steps_per_epoch=steps_per_epoch, callbacks=[Report()], verbose=0)
    if stage.epochs == 0:
        _save_h5(model, out, scope)
    return StageResult(name, out.name, stage.epochs, time.perf_counter() - start,
                       {k: [float(v) for v in vals] for k, vals in history.history.items()},
                       best["value"] if best["value"] >= 0 else None)


def fix_input_ranges(qat_model) -> int:
    """Pins the image input quantiser to [-1, 127/128] so the int8 input is q = u8 - 128.

    tfmot tracks the input range from data; pinning it makes the converted
    model's input scale exactly 1/128 with zero point 0. Returns how many
    quantisers were pinned (one per image input).
    """
    pinned = 0
    for layer in qat_model.layers:
        if type(layer).__name__ != "QuantizeLayer" or len(layer.input_shape) != 4:
            continue
        values = {w.name.split("/")[-1].split(":")[0]: w for w in layer.weights}
        values["quantize_layer_min"].assign(INPUT_RANGE[0])
        values["quantize_layer_max"].assign(INPUT_RANGE[1])
        pinned += 1
    return pinned


def train(run_dir: str | Path, config: TrainConfig, *, progress: Progress = lambda _: None,
          stages: tuple[str, ...] = ("teacher", "student", "student_qat")) -> list[StageResult]:
    """Trains the requested stages into run_dir and returns what each produced.

    Raises:
        EdgepedError: the dataset is missing, empty or one-class; a needed
            checkpoint for a later stage is missing.
    """
    from edgeped._keras import keras, tfmot
    from edgeped.data.pipeline import PipelineOptions, make_dataset
    from edgeped.models import build_model

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    dataset = Dataset.open(config.data_dir)
    for split in ("train", "val"):
        if dataset.count(split) == 0:
            raise EdgepedError(f"the {split} split of {config.data_dir} is empty",
                               "generate more drives so every split gets some")
    write_json_atomic(run / "config.json", {**stamp("edgeped.train_config"),
                                            "config": config.to_dict(),
                                            "dataset_manifest_sha256": dataset.manifest_sha256})
    prep = Preprocessing.from_manifest_stats(dataset.metadata_stats())
    natural_weight = positive_weight(dataset, config.pos_weight_power)
    pos_weight = natural_weight if config.imbalance == "weight" else 1.0
    sampled = config.imbalance == "sample"
    progress(f"train split: {dataset.count('train')} crops, {dataset.positives('train')} positive; "
             + (f"class-balanced sampling, {config.positive_fraction:.0%} positives per batch"
                if sampled else f"positive loss weight {pos_weight:.2f}"))
    keras.utils.set_random_seed(config.seed)

    def datasets(spec, stage):
        opts = PipelineOptions(batch_size=config.batch_size, shuffle_buffer=config.shuffle_buffer,
                               seed=config.seed, pos_weight=pos_weight,
                               use_metadata=spec.use_metadata,
                               repeat=stage.steps_per_epoch is not None,
                               positive_fraction=config.positive_fraction if sampled else None,
                               augment=config.augment)
        val_opts = PipelineOptions(batch_size=256, use_metadata=spec.use_metadata)
        return (make_dataset(dataset, "train", prep, opts, shuffle=True),
                make_dataset(dataset, "val", prep, val_opts, shuffle=False))

    def steps(stage: StageConfig) -> int:
        return stage.steps_per_epoch or -(-dataset.count("train") // config.batch_size)

    def fit_steps(stage: StageConfig) -> int | None:
        return steps(stage) if sampled else stage.steps_per_epoch

    results = []
    if "teacher" in stages:
        train_ds, val_ds = datasets(config.teacher, config.teacher_stage)
        results.append(_fit(build_model(config.teacher), "teacher", config.teacher_stage, train_ds,
                            val_ds, fit_steps(config.teacher_stage), steps(config.teacher_stage),
                            run / CHECKPOINTS["teacher"], progress))
    if "student" in stages:
        train_ds, val_ds = datasets(config.student, config.student_stage)
        results.append(_fit(build_model(config.student), "student", config.student_stage, train_ds,
                            val_ds, fit_steps(config.student_stage), steps(config.student_stage),
                            run / CHECKPOINTS["student"], progress))
    if "student_qat" in stages:
        mot = tfmot()
        float_student = load_checkpoint(run / CHECKPOINTS["student"])
        qat_model = mot.quantization.keras.quantize_model(float_student)
        fix_input_ranges(qat_model)
        train_ds, val_ds = datasets(config.student, config.qat_stage)
        result = _fit(qat_model, "student_qat", config.qat_stage, train_ds, val_ds,
                      fit_steps(config.qat_stage), steps(config.qat_stage), run / CHECKPOINTS["student_qat"], progress,
                      scope=mot.quantization.keras.quantize_scope)
        # Re-pin after training (the tracked range can only have widened to the same bounds),
        # then store the pinned model as the QAT checkpoint.
        best = load_checkpoint(run / CHECKPOINTS["student_qat"])
        fix_input_ranges(best)
        _save_h5(best, run / CHECKPOINTS["student_qat"], mot.quantization.keras.quantize_scope)
        results.append(result)
    write_json_atomic(run / "train_log.json", {
        **stamp("edgeped.train_log"), "dataset_manifest_sha256": dataset.manifest_sha256,
        "imbalance": config.imbalance, "positive_weight": pos_weight,
        "stages": [r.__dict__ for r in results]})
    return results
