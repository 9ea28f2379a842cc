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

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

from edgeped.data.preprocess import IMAGE_INPUT_RANGES, Preprocessing
from edgeped.data.shards import Dataset
from edgeped.errors import EdgepedError
from edgeped.layout import CHECKPOINTS
from edgeped.registry import Registry
from edgeped.train.checkpoints import fix_input_ranges, load_checkpoint, save_h5
from edgeped.train.config import PLATEAU_FACTOR, STAGES, StageConfig, TrainConfig
from edgeped.train.distill import distillation_decision
from edgeped.train.stopping import EpochPolicy
from edgeped.train.train_log import StageResult, earlier_val_auc_pr, write_train_records

Progress = Callable[[str], None]


def positive_weight(dataset: Dataset, power: float) -> float:
    pos = dataset.positives("train")
    neg = dataset.count("train") - pos
    if pos == 0 or neg == 0:
        raise EdgepedError(
            f"the train split has {pos} positives and {neg} negatives",
            "both classes are needed: generate or import more data",
        )
    return float((neg / pos) ** power)


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
        check_batch_size(config, self.dataset)
        self.prep = Preprocessing.from_manifest_stats(
            self.dataset.metadata_stats(), image_rule=config.image_rule
        )
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
        self.image_range = IMAGE_INPUT_RANGES[self.prep.image_rule]
        self.strategy = strategy
        # Best val AUC-PR per stage: this session's results plus an earlier train_log of
        # the same dataset (stages may run in separate `edgeped train` calls).
        self.val_auc_pr: dict[str, float] = earlier_val_auc_pr(run, self.dataset.manifest_sha256)

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
        from edgeped.train.averaging import averaging_callback
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
        policy = EpochPolicy.for_stage(stage.patience, stage.schedule, best)
        progress = self.progress

        class Report(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                value = float(logs.get("val_auc_pr", -1.0))
                verdict = policy.step(epoch + 1, value)
                if verdict.keep:
                    save_h5(saved, out, scope)
                note = f" (stop: no gain for {stage.patience} epochs)" if verdict.stop else ""
                if verdict.cut:
                    rate = self.model.optimizer.learning_rate
                    rate.assign(float(rate.numpy()) * PLATEAU_FACTOR)
                    note = (
                        f" (no gain for {policy.cut_after}: learning rate -> "
                        f"{float(rate.numpy()):.2g})"
                    )
                progress(
                    f"{name}: epoch {epoch + 1}/{stage.epochs} loss {logs.get('loss', 0):.4f} "
                    f"val_loss {logs.get('val_loss', 0):.4f} val_auc_pr {value:.4f}" + note
                )
                if verdict.stop:
                    self.model.stop_training = True

        averaging = [averaging_callback(saved, stage.ema)] if stage.ema else []
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
                *averaging,  # after Report: it saves the averaged weights, then they swap back
            ],
            verbose=0,
        )
        if not out.exists():
            save_h5(saved, out, scope)
        return StageResult(
            name,
            out.name,
            policy.epochs,
            time.perf_counter() - start,
            {k: [float(v) for v in vals] for k, vals in history.history.items()},
            policy.best["value"] if policy.best["value"] >= 0 else None,
            best_epoch=policy.best_epoch,
            max_epochs=stage.epochs,
            lr_cuts=list(policy.lr_cuts),
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
    fix_input_ranges(qat_model, s.metadata_range, s.image_range)
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
    fix_input_ranges(best, s.metadata_range, s.image_range)
    save_h5(best, out, scope)
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
    save_h5(sparsity.strip_pruning(pruned), s.run / CHECKPOINTS["student_pruned"])
    return replace(result, checkpoint=CHECKPOINTS["student_pruned"], parent=parent)


def make_reproducible(tf) -> None:
    """Same seed, same data -> the same weights, bit for bit, on every run.

    Deterministic kernels are not enough: Grappler's arithmetic optimizer rewrote the
    input pipeline's augmentation graph differently from run to run (the exposure
    jitter's `(x - mean) * c + mean + b` came out 1 ulp apart on ~3% of pixels), and
    training amplified that into different models. It is switched off for the process;
    call this before any pipeline is built (functions already optimised keep their rewrite).
    """
    tf.config.experimental.enable_op_determinism()
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})


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
    # Checked before the run folder is made: a refused option leaves nothing behind.
    check_batch_size(config, Dataset.open(config.data_dir))
    with run_output(
        run_dir, config.to_dict(), resume=resume, overwrite=overwrite, stages=stages
    ) as run:
        return train_into(run, config, progress, stages, strategy)


def check_batch_size(config: TrainConfig, dataset: Dataset) -> None:
    """Refuses a batch larger than the train split: it would never make a full batch and
    only asks the input pipeline for memory it cannot use.

    Raises:
        EdgepedError: naming the batch size and the split's size.
    """
    n = dataset.count("train")
    if config.batch_size > n:
        raise EdgepedError(
            f"batch_size {config.batch_size} is larger than the train split of "
            f"{config.data_dir} ({n} crops)",
            "use a smaller --batch-size (the default is 64), or a larger dataset",
        )


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
        make_reproducible(tf)
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
    write_train_records(run, config, session.dataset, session.pos_weight, results)
    return results
