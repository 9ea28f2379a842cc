"""Training runs as named stages, each writing one checkpoint into the run directory.

- teacher: the float teacher on labels.
- student: the float student on labels only (the "no distillation" baseline).
- student_distilled: the float student on labels + the teacher's soft targets.
- student_qat: quantization-aware training (tfmot) of the best float student
  (distilled if present), distilled again when a teacher is there.
- student_pruned: magnitude pruning of the same float student (tfmot).
Students optionally run rounds of hard-negative mining after their main epochs.
The run directory receives `config.json`, one `<stage>.h5` per stage (best
validation AUC-PR epoch) and `train_log.json` (history, mined kinds, lineage).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeped.data.preprocess import Preprocessing
from edgeped.data.shards import Dataset
from edgeped.errors import EdgepedError
from edgeped.fileio import write_json_atomic
from edgeped.layout import CHECKPOINTS, CONFIG_FILE
from edgeped.provenance import stamp
from edgeped.registry import Registry
from edgeped.train.config import PLATEAU_FACTOR, STAGES, StageConfig, TrainConfig

INPUT_RANGE = (-1.0, 127.0 / 128.0)  # (u8 - 128) / 128 for u8 in [0, 255]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class StageResult:
    name: str
    checkpoint: str
    epochs: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    best_val_auc_pr: float | None = None
    parent: str | None = None
    mined: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    max_epochs: int | None = None
    # Why a stage ran the way it did (e.g. distillation skipped), for train_log.json.
    decision: dict | None = None
    # Epochs after which the plateau schedule cut the learning rate.
    lr_cuts: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The stage's entry in train_log.json."""
        return asdict(self)


def positive_weight(dataset: Dataset, power: float) -> float:
    pos = dataset.positives("train")
    neg = dataset.count("train") - pos
    if pos == 0 or neg == 0:
        raise EdgepedError(
            f"the train split has {pos} positives and {neg} negatives",
            "both classes are needed: generate or import more data",
        )
    return float((neg / pos) ** power)


def _save_h5(model, path: Path, scope=None) -> None:
    """Saves a Keras model atomically (temp file in the same folder, then rename)."""
    fd, tmp = tempfile.mkstemp(suffix=".h5", dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    try:
        # HDF5 is the format tfmot's quantize_scope documents for QAT models; Keras's
        # "legacy format" notice about it is expected here.
        with warnings.catch_warnings(), scope() if scope is not None else nullcontext():
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
        raise EdgepedError(
            f"cannot load checkpoint {p}: {exc}", "the file is corrupt or not a Keras .h5: retrain"
        ) from exc


def fix_input_ranges(qat_model, metadata_range: tuple[float, float] | None = None) -> int:
    """Pins the image input quantiser to [-1, 127/128] so the int8 input is q = u8 - 128.

    tfmot tracks the input range from data; pinning it makes the converted
    model's input scale exactly 1/128 with zero point 0. With `metadata_range`
    the metadata input (z clipped to +/-clip, mask 0/1) is pinned too: its
    AllValuesQuantizer assigns min/max locally on each replica, so under
    multi-worker training the workers' ranges diverge unless they are fixed.
    Returns how many quantisers were pinned.
    """
    pinned = 0
    for layer in qat_model.layers:
        if type(layer).__name__ != "QuantizeLayer":
            continue
        rank = len(layer.input_shape)
        if rank == 4:
            low, high = INPUT_RANGE
        elif rank == 2 and metadata_range is not None:
            low, high = metadata_range
        else:
            continue
        # Match the suffix: the variables carry the layer's own (uniquified) name, e.g.
        # quantize_layer_1/quantize_layer_1_min, in a process that built several models.
        values = {
            key: w
            for w in layer.weights
            for key in ("_min", "_max")
            if w.name.split("/")[-1].split(":")[0].endswith(key)
        }
        if not values:  # no quantiser here (the input feeds a layer that quantises it)
            continue
        values["_min"].assign(low)
        values["_max"].assign(high)
        pinned += 1
    return pinned


class _Session:
    """What every stage needs: data, preprocessing, config, where to write, how to report."""

    def __init__(self, run: Path, config: TrainConfig, progress: Progress, strategy=None) -> None:
        from edgeped.train.losses import make_loss

        self.run, self.config, self.progress = run, config, progress
        self.dataset = Dataset.open(config.data_dir)
        for split in ("train", "val"):
            if self.dataset.count(split) == 0:
                raise EdgepedError(
                    f"the {split} split of {config.data_dir} is empty",
                    "generate more drives so every split gets some",
                )
        self.prep = Preprocessing.from_manifest_stats(self.dataset.metadata_stats())
        natural = positive_weight(self.dataset, config.pos_weight_power)
        self.pos_weight = natural if config.imbalance == "weight" else 1.0
        self.sampled = config.imbalance == "sample"
        params = (
            {"gamma": config.focal_gamma, "alpha": config.focal_alpha}
            if config.loss == "focal"
            else {"pos_weight": self.pos_weight}
        )
        self.hard_loss = make_loss(config.loss, **params)
        self.epoch_steps = -(-self.dataset.count("train") // config.batch_size)
        # The metadata input is concat(z clipped to +/-clip, mask in {0, 1}).
        self.metadata_range = (-self.prep.clip, self.prep.clip)
        self.strategy = strategy
        # Best val AUC-PR per stage: this session's results plus an earlier train_log of
        # the same dataset (stages may run in separate `edgeped train` calls).
        self.val_auc_pr: dict[str, float] = {}
        log = run / "train_log.json"
        if log.is_file():
            from edgeped.fileio import read_json

            earlier = read_json(log, "train log")
            if earlier.get("dataset_manifest_sha256") == self.dataset.manifest_sha256:
                for st in earlier.get("stages", []):
                    if st.get("best_val_auc_pr") is not None:
                        self.val_auc_pr[st["name"]] = float(st["best_val_auc_pr"])

    def record(self, result: StageResult) -> None:
        if result.best_val_auc_pr is not None:
            self.val_auc_pr[result.name] = result.best_val_auc_pr
        else:
            self.val_auc_pr.pop(result.name, None)

    def data(self, use_metadata: bool, stage: StageConfig, hard_negatives=None):
        from edgeped.data.pipeline import PipelineOptions, make_dataset

        c = self.config
        repeat = stage.steps_per_epoch is not None or hard_negatives is not None
        opts = PipelineOptions(
            batch_size=c.batch_size,
            shuffle_buffer=c.shuffle_buffer,
            seed=c.seed,
            use_metadata=use_metadata,
            repeat=repeat,
            positive_fraction=c.positive_fraction if self.sampled else None,
            augment=c.augment,
            hard_negatives=hard_negatives,
            hard_fraction=c.mining.hard_fraction,
            exclude=c.exclude_pairs(),
        )
        val = PipelineOptions(batch_size=256, use_metadata=use_metadata)
        val_ds = make_dataset(self.dataset, "val", self.prep, val, shuffle=False)
        if self.strategy is None:
            return make_dataset(self.dataset, "train", self.prep, opts, shuffle=True), val_ds
        # Multi-worker: each worker's input pipeline reads its own share of the train
        # files (file sharding by hand: AutoShardPolicy.FILE cannot find the files
        # under the balanced-sampling mix), at the per-replica batch size; val is
        # small, so workers split it record by record (AutoShardPolicy.DATA).
        from edgeped._keras import tf

        def per_worker(ctx):
            shard = (ctx.input_pipeline_id, ctx.num_input_pipelines)
            size = ctx.get_per_replica_batch_size(c.batch_size)
            return make_dataset(
                self.dataset,
                "train",
                self.prep,
                replace(opts, batch_size=size, shard=shard),
                shuffle=True,
            )

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return (
            self.strategy.distribute_datasets_from_function(per_worker),
            val_ds.with_options(options),
        )

    def fit_steps(self, stage: StageConfig, infinite: bool) -> int | None:
        if stage.steps_per_epoch is not None:
            return stage.steps_per_epoch
        return self.epoch_steps if (self.sampled or infinite) else None

    def fit(
        self,
        trainee,
        saved,
        name: str,
        stage: StageConfig,
        out: Path,
        *,
        scope=None,
        hard_negatives=None,
        best: dict | None = None,
        callbacks=(),
    ) -> StageResult:
        """Trains `trainee` (a model or a distiller) and checkpoints `saved` on best val AUC-PR."""
        from edgeped._keras import keras
        from edgeped.train.logs import log_callbacks
        from edgeped.train.progress import default_display, progress_callback

        use_meta = len(saved.inputs) > 1
        train_ds, val_ds = self.data(use_meta, stage, hard_negatives)
        steps = self.fit_steps(stage, hard_negatives is not None)
        if stage.schedule == "plateau":
            schedule = stage.learning_rate  # cut on a plateau by Report below
        else:
            schedule = keras.optimizers.schedules.CosineDecay(
                stage.learning_rate, max(1, stage.epochs * (steps or self.epoch_steps)), alpha=0.05
            )
        cut_after = max(1, stage.patience // 2) if stage.schedule == "plateau" else 0
        if trainee is saved:
            # Val batches carry sample weights of 1 (the pipeline's shape); the AUC is unweighted.
            trainee.compile(
                optimizer=keras.optimizers.Adam(schedule),
                loss=self.hard_loss,
                metrics=[keras.metrics.AUC(curve="PR", name="auc_pr")],
                weighted_metrics=[],
            )
        else:
            trainee.compile(optimizer=keras.optimizers.Adam(schedule), weighted_metrics=[])
        best = best if best is not None else {"value": -1.0}
        progress = self.progress
        track = {"best_epoch": None, "since_best": 0, "epochs": 0, "lr_cuts": []}

        class Report(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                value = float(logs.get("val_auc_pr", -1.0))
                track["epochs"] = epoch + 1
                if value > best["value"]:
                    best["value"] = value
                    track["best_epoch"], track["since_best"] = epoch + 1, 0
                    _save_h5(saved, out, scope)
                else:
                    track["since_best"] += 1
                stop = stage.patience > 0 and track["since_best"] >= stage.patience
                note = f" (stop: no gain for {stage.patience} epochs)" if stop else ""
                last_cut = track["lr_cuts"][-1] if track["lr_cuts"] else 0
                if (
                    cut_after
                    and not stop
                    and track["since_best"] >= cut_after
                    and epoch + 1 - last_cut >= cut_after
                ):
                    rate = self.model.optimizer.learning_rate
                    rate.assign(float(rate.numpy()) * PLATEAU_FACTOR)
                    track["lr_cuts"].append(epoch + 1)
                    note = f" (no gain for {cut_after}: learning rate -> {float(rate.numpy()):.2g})"
                progress(
                    f"{name}: epoch {epoch + 1}/{stage.epochs} loss {logs.get('loss', 0):.4f} "
                    f"val_loss {logs.get('val_loss', 0):.4f} val_auc_pr {value:.4f}" + note
                )
                if stop:
                    self.model.stop_training = True

        start = time.perf_counter()
        history = trainee.fit(
            train_ds,
            validation_data=val_ds,
            epochs=stage.epochs,
            steps_per_epoch=steps,
            callbacks=[
                progress_callback(name, stage.epochs, default_display(self.progress)),
                *callbacks,
                *log_callbacks(self.run, name, self.config.logging),
                Report(),
            ],
            verbose=0,
        )
        if not out.exists():
            _save_h5(saved, out, scope)
        return StageResult(
            name,
            out.name,
            track["epochs"],
            time.perf_counter() - start,
            {k: [float(v) for v in vals] for k, vals in history.history.items()},
            best["value"] if best["value"] >= 0 else None,
            best_epoch=track["best_epoch"],
            max_epochs=stage.epochs,
            lr_cuts=list(track["lr_cuts"]),
        )

    def teacher(self):
        path = self.run / CHECKPOINTS["teacher"]
        if not path.is_file():
            raise EdgepedError(
                f"distillation needs a teacher, but {path} does not exist",
                "run the teacher stage first (--stages teacher,...)",
            )
        teacher = load_checkpoint(path)
        teacher.trainable = False
        return teacher

    def float_parent(self) -> str:
        """The float student with the best val AUC-PR (labels-only wins a tie: no teacher)."""
        present = [
            n for n in ("student", "student_distilled") if (self.run / CHECKPOINTS[n]).is_file()
        ]
        if not present:
            raise EdgepedError(
                "no float student to start from in " + str(self.run),
                "run the student or student_distilled stage first",
            )
        best = max(present, key=lambda n: (self.val_auc_pr.get(n, -1.0), n == "student"))
        return CHECKPOINTS[best]

    def mine_rounds(self, student, trainee, name: str, out: Path, best: dict, scope=None) -> list:
        from edgeped.train.mining import mine

        rounds = []
        cfg = self.config.mining
        stage = StageConfig(cfg.epochs_per_round, self.stage_config(name).learning_rate * 0.3)
        for r in range(cfg.rounds):
            mined = mine(
                student,
                self.dataset,
                self.prep,
                top_k=cfg.top_k,
                use_metadata=len(student.inputs) > 1,
            )
            kinds = mined.kinds()
            self.progress(
                f"{name}: mining round {r + 1}/{cfg.rounds}: top {len(mined.scores)} "
                f"negatives of {mined.pool_size} (score >= {mined.scores.min():.3f}): {kinds}"
            )
            result = self.fit(
                trainee,
                student,
                f"{name} mined r{r + 1}",
                stage,
                out,
                scope=scope,
                hard_negatives=(mined.batch.images, mined.batch.metadata),
                best=best,
            )
            rounds.append(
                {
                    "round": r + 1,
                    "pool": mined.pool_size,
                    "kinds": kinds,
                    "min_score": float(mined.scores.min()),
                    "val_auc_pr": result.history.get("val_auc_pr", []),
                }
            )
        return rounds

    def stage_config(self, name: str) -> StageConfig:
        return {
            "teacher": self.config.teacher_stage,
            "student_qat": self.config.qat_stage,
            "student_pruned": self.config.prune_stage,
        }.get(name, self.config.student_stage)


STAGE_RUNNERS: Registry[Callable[[_Session], StageResult]] = Registry("training stage")
_stage = STAGE_RUNNERS.register


@_stage("teacher")
def _teacher(s: _Session) -> StageResult:
    from edgeped.models import build_model

    model = build_model(s.config.teacher)
    return s.fit(model, model, "teacher", s.config.teacher_stage, s.run / CHECKPOINTS["teacher"])


def _train_student(s: _Session, name: str, distilled: bool) -> StageResult:
    from edgeped.models import build_model
    from edgeped.train.distill import make_distiller

    student = build_model(s.config.student)
    trainee = student
    if distilled:
        d = s.config.distill
        trainee = make_distiller(
            student, s.teacher(), s.hard_loss, temperature=d.temperature, alpha=d.alpha
        )
    out, best = s.run / CHECKPOINTS[name], {"value": -1.0}
    result = s.fit(trainee, student, name, s.config.student_stage, out, best=best)
    if s.config.mining.rounds:
        student.set_weights(load_checkpoint(out).get_weights())  # continue from the best epoch
        mined = s.mine_rounds(student, trainee, name, out, best)
        result = replace(result, mined=mined, best_val_auc_pr=best["value"])
    return result


@_stage("student")
def _student(s: _Session) -> StageResult:
    return _train_student(s, "student", distilled=False)


def distillation_decision(val_auc_pr: dict[str, float], margin: float) -> dict:
    """Distil only when the teacher beats the labels-only student on val AUC-PR by `margin`.

    Without a labels-only student to compare against, distillation runs (as asked).
    """
    teacher, student = val_auc_pr.get("teacher"), val_auc_pr.get("student")
    if teacher is None or student is None:
        return {
            "distill": True,
            "reason": "no labels-only student on val to compare the teacher against",
            "teacher_val_auc_pr": teacher,
            "student_val_auc_pr": student,
        }
    distill = teacher > student + margin
    return {
        "distill": distill,
        "reason": (
            f"teacher val AUC-PR {teacher:.4f} "
            + ("beats" if distill else "does not beat")
            + f" the labels-only student's {student:.4f} by more than {margin}"
        ),
        "teacher_val_auc_pr": teacher,
        "student_val_auc_pr": student,
    }


@_stage("student_distilled")
def _student_distilled(s: _Session) -> StageResult:
    decision = distillation_decision(s.val_auc_pr, s.config.distill.min_teacher_gain)
    if not decision["distill"]:
        s.progress(f"student_distilled: skipped: {decision['reason']}")
        # A checkpoint left by an earlier run would otherwise be taken for this one's.
        (s.run / CHECKPOINTS["student_distilled"]).unlink(missing_ok=True)
        return StageResult("student_distilled", "", 0, 0.0, max_epochs=0, decision=decision)
    result = _train_student(s, "student_distilled", distilled=True)
    return replace(result, decision=decision)


@_stage("student_qat")
def _student_qat(s: _Session) -> StageResult:
    from edgeped._keras import tfmot
    from edgeped.train.distill import make_distiller

    mot = tfmot()
    scope = mot.quantization.keras.quantize_scope
    parent = s.float_parent()
    qat_model = mot.quantization.keras.quantize_model(load_checkpoint(s.run / parent))
    fix_input_ranges(qat_model, s.metadata_range)
    trainee = qat_model
    if parent == CHECKPOINTS["student_distilled"]:
        d = s.config.distill
        trainee = make_distiller(
            qat_model, s.teacher(), s.hard_loss, temperature=d.temperature, alpha=d.alpha
        )
    out = s.run / CHECKPOINTS["student_qat"]
    result = s.fit(trainee, qat_model, "student_qat", s.config.qat_stage, out, scope=scope)
    # Re-pin the input range on the best checkpoint and store that as the QAT model.
    best = load_checkpoint(out)
    fix_input_ranges(best, s.metadata_range)
    _save_h5(best, out, scope)
    parent_stage = parent.removesuffix(".h5")
    decision = {
        "parent": parent,
        "reason": "the float student with the best val AUC-PR",
        "candidates_val_auc_pr": {
            n: s.val_auc_pr[n] for n in ("student", "student_distilled") if n in s.val_auc_pr
        },
        "parent_val_auc_pr": s.val_auc_pr.get(parent_stage),
    }
    return replace(result, parent=parent, decision=decision)


@_stage("student_pruned")
def _student_pruned(s: _Session) -> StageResult:
    from edgeped._keras import tfmot

    sparsity = tfmot().sparsity.keras
    parent = s.float_parent()
    stage = s.config.prune_stage
    steps = (stage.steps_per_epoch or s.epoch_steps) * max(stage.epochs, 1)
    end = max(1, int(steps * 0.8))
    # tfmot updates masks every `frequency` steps (100 by default); short schedules need it finer.
    schedule = sparsity.PolynomialDecay(
        0.0, s.config.prune_final_sparsity, begin_step=0, end_step=end, frequency=max(1, end // 10)
    )
    pruned = sparsity.prune_low_magnitude(
        load_checkpoint(s.run / parent), pruning_schedule=schedule
    )
    tmp_out = s.run / ".student_pruned_wrapped.h5"
    result = s.fit(
        pruned,
        pruned,
        "student_pruned",
        replace(stage, steps_per_epoch=stage.steps_per_epoch or s.epoch_steps),
        tmp_out,
        scope=sparsity.prune_scope,
        callbacks=[sparsity.UpdatePruningStep()],
    )
    tmp_out.unlink(missing_ok=True)
    # The final epoch reaches the target sparsity; keep it rather than an earlier, denser best.
    _save_h5(sparsity.strip_pruning(pruned), s.run / CHECKPOINTS["student_pruned"])
    return replace(result, checkpoint=CHECKPOINTS["student_pruned"], parent=parent)


def train(
    run_dir: str | Path,
    config: TrainConfig,
    *,
    progress: Progress = lambda _: None,
    stages: tuple[str, ...] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    strategy=None,
) -> list[StageResult]:
    """Runs the requested stages (in pipeline order; default config.stages) into run_dir.

    A run_dir that already holds a run is refused unless `resume` (add stages,
    same config) or `overwrite` (train beside it, swap in when done); see
    `edgeped.train.run_dir`. config.json is written when the stages finished.
    `strategy` (a tf.distribute strategy, see `edgeped.train.distributed`) builds
    and trains every model in its scope, with datasets sharded across workers.

    Raises:
        EdgepedError: the dataset is missing, empty or one-class; a stage needs a
            checkpoint (teacher, float student) that no earlier stage made; the
            run_dir holds a run and neither flag allows writing into it.
    """
    from edgeped.train.run_dir import run_output

    stages = config.stages if stages is None else stages
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise EdgepedError(f"unknown stage(s) {unknown}", f"use some of {', '.join(STAGES)}")
    with run_output(run_dir, config.to_dict(), resume=resume, overwrite=overwrite) as run:
        return train_into(run, config, progress, stages, strategy)


def train_into(
    run: Path,
    config: TrainConfig,
    progress: Progress,
    stages: tuple[str, ...],
    strategy=None,
) -> list[StageResult]:
    """`train` into a folder as it is, without the existing-run rules (a worker's copy)."""
    from edgeped._keras import keras, tf

    run.mkdir(parents=True, exist_ok=True)
    session = _Session(run, config, progress, strategy)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    ds = session.dataset
    progress(
        f"train split: {ds.count('train')} crops, {ds.positives('train')} positive; "
        + (
            f"class-balanced sampling, {config.positive_fraction:.0%} positives per batch"
            if session.sampled
            else f"positive loss weight {session.pos_weight:.2f}"
        )
        + f"; loss {config.loss}"
    )
    results = []
    with strategy.scope() if strategy is not None else nullcontext():
        for name in STAGES:
            if name in stages:
                results.append(STAGE_RUNNERS[name](session))
                session.record(results[-1])
    log_path = run / "train_log.json"
    previous = {}
    if log_path.is_file():
        from edgeped.fileio import read_json

        previous = {s["name"]: s for s in read_json(log_path, "train log").get("stages", [])}
    previous.update({r.name: r.to_dict() for r in results})
    write_json_atomic(
        run / CONFIG_FILE,
        {
            **stamp("edgeped.train_config"),
            "config": config.to_dict(),
            "stages": [name for name in STAGES if name in previous],
            "dataset_manifest_sha256": session.dataset.manifest_sha256,
        },
    )
    write_json_atomic(
        log_path,
        {
            **stamp("edgeped.train_log"),
            "dataset_manifest_sha256": ds.manifest_sha256,
            "imbalance": config.imbalance,
            "positive_weight": session.pos_weight,
            "loss": config.loss,
            "stages": list(previous.values()),
            "parents": {v["checkpoint"]: v["parent"] for v in previous.values() if v.get("parent")},
            "distillation": next(
                (v["decision"] for v in previous.values() if v["name"] == "student_distilled"),
                None,
            ),
        },
    )
    return results
