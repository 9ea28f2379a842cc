"""Training runs as named stages, each writing one checkpoint into the run directory.

The stages are declared in `edgeped.training_stages` (pipeline order, config keys,
checkpoints, lineage) and trained by `edgeped.train.stage_runners`. The run directory
receives `config.json`, one `<stage>.h5` per stage (best validation AUC-PR epoch) and
`train_log.json` (history, mined kinds, lineage).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from edgeped.data.shards import Dataset
from edgeped.train.config import STAGES, TrainConfig
from edgeped.train.session import Progress, Session, check_batch_size
from edgeped.train.stage_runners import STAGE_RUNNERS
from edgeped.train.train_log import StageResult, write_train_records
from edgeped.training_stages import check_stage_names


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
    check_stage_names(stages)
    # Checked before the run folder is made: a refused option leaves nothing behind.
    check_batch_size(config, Dataset.open(config.data_dir))
    with run_output(
        run_dir, config.to_dict(), resume=resume, overwrite=overwrite, stages=stages
    ) as run:
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
    session = Session(run, config, progress, strategy)
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
