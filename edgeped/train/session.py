"""What every training stage needs: the data, the preprocessing, the loss, how to fit and
checkpoint a model, and the checkpoints of the stages before it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from edgeped.data.preprocess import IMAGE_INPUT_RANGES, Preprocessing
from edgeped.data.shards import Dataset
from edgeped.errors import EdgepedError
from edgeped.layout import CHECKPOINTS
from edgeped.train.checkpoints import load_checkpoint, save_h5
from edgeped.train.config import PLATEAU_FACTOR, StageConfig, TrainConfig
from edgeped.train.stopping import EpochPolicy
from edgeped.train.train_log import StageResult, earlier_val_auc_pr
from edgeped.training_stages import TRAINING_STAGES

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


def validation_data(dataset: Dataset, prep: Preprocessing, use_metadata: bool, config: TrainConfig):
    """The val batches that choose checkpoints: the split as recorded, then with
    config.checkpoint_on = "clean+augmented" the same crops through the recipe's augmentations
    (seeded by the run's seed and each crop's index, so every epoch sees the same draw)."""
    from edgeped.data.pipeline import PipelineOptions, make_dataset

    val = PipelineOptions(batch_size=256, use_metadata=use_metadata)
    clean = make_dataset(dataset, "val", prep, val, shuffle=False)
    if config.checkpoint_on == "clean":
        return clean
    shifted = replace(val, augment=config.augment, seed=config.seed)
    return clean.concatenate(make_dataset(dataset, "val", prep, shifted, shuffle=False))


class Session:
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

    def data(self, use_metadata: bool, stage: StageConfig, hard_negatives=None, second_view=False):
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
            second_view=second_view,
            hard_negatives=hard_negatives,
            hard_fraction=c.mining.hard_fraction,
            exclude=c.exclude_pairs(),
        )
        val_ds = validation_data(self.dataset, self.prep, use_metadata, c)
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
        """Trains `trainee` (a model or a distiller) and checkpoints `saved` on best val AUC-PR.

        With `augment.consistency` > 0 a model (not a distiller) trains through the
        consistency wrapper (edgeped.train.consistency) on two views per crop.
        """
        from edgeped._keras import keras
        from edgeped.train.averaging import averaging_callback
        from edgeped.train.consistency import make_consistent
        from edgeped.train.logs import log_callbacks
        from edgeped.train.progress import default_display, progress_callback

        use_meta = len(saved.inputs) > 1
        weight = self.config.augment.consistency
        consistent = weight > 0 and trainee is saved
        if consistent:
            trainee = make_consistent(
                saved, self.hard_loss, weight=weight, anchor=self.config.augment.consistency_anchor
            )
        train_ds, val_ds = self.data(use_meta, stage, hard_negatives, second_view=consistent)
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

    def best_parent(self, name: str) -> str:
        """The checkpoint of stage `name`'s parent with the best val AUC-PR (the first
        parent its declaration lists wins a tie: for the float students, labels-only,
        which needs no teacher)."""
        parents = TRAINING_STAGES[name].parents
        present = [n for n in parents if (self.run / CHECKPOINTS[n]).is_file()]
        if not present:
            raise EdgepedError(
                "no float student to start from in " + str(self.run),
                f"run the {' or '.join(parents)} stage first",
            )
        best = max(present, key=lambda n: (self.val_auc_pr.get(n, -1.0), -parents.index(n)))
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
        """The epochs and learning rate of stage `name` (its declaration's config key)."""
        return getattr(self.config, TRAINING_STAGES[name].config_key)


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
