"""Multi-worker training with tf.distribute.MultiWorkerMirroredStrategy through TF_CONFIG.

Every worker runs the same stages on its own share of the train shard files
(every N-th file: Keras's AutoShardPolicy.FILE cannot find the files under the
balanced-sampling mix, so the loop shards them itself) with gradients
all-reduced, so all workers end with the same weights. What multi-worker
training needs beyond the single-process loop, each found by running it:

- the QAT metadata input quantiser is pinned like the image one (its
  AllValuesQuantizer assigns min/max locally, so workers' ranges diverge);
- the distiller's custom train_step scales its loss by the replica count;
- every worker saves its checkpoints (Keras saving joins collective ops): the
  chief into the run directory, the others into a private folder, removed at
  the end unless `worker_dir` keeps it;
- conversion to TFLite fails inside the strategy (CollectiveReduceV2 is not a
  TFLite op): run `edgeped convert RUN_DIR` afterwards, in a fresh process.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeped.errors import EdgepedError
from edgeped.train.config import TrainConfig


@dataclass(frozen=True)
class WorkerRole:
    """This process's place in the cluster TF_CONFIG describes."""

    task_type: str
    index: int
    workers: int

    @property
    def is_chief(self) -> bool:
        """The chief is `chief` 0 if the cluster names one, else `worker` 0."""
        return self.task_type == "chief" or (self.task_type == "worker" and self.index == 0)


def worker_role(tf_config: str | None) -> WorkerRole:
    """Parses and checks TF_CONFIG.

    Raises:
        EdgepedError: TF_CONFIG is unset, not JSON, or names no cluster or task,
            or a task that is not in the cluster.
    """
    fix = (
        'set TF_CONFIG on every worker, e.g. {"cluster": {"worker": ["host0:port", '
        '"host1:port"]}, "task": {"type": "worker", "index": 0}} (docs/scale.md)'
    )
    if not tf_config:
        raise EdgepedError("--distributed needs TF_CONFIG, which is not set", fix)
    try:
        spec = json.loads(tf_config)
        cluster, task = spec["cluster"], spec["task"]
        task_type, index = str(task["type"]), int(task["index"])
        members = cluster[task_type]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise EdgepedError(f"TF_CONFIG is not a valid cluster spec ({exc!r})", fix) from exc
    if task_type not in ("chief", "worker"):
        raise EdgepedError(f"TF_CONFIG task type {task_type!r} cannot train", fix)
    if not 0 <= index < len(members):
        raise EdgepedError(
            f"TF_CONFIG task index {index} is not among the {len(members)} {task_type}(s)", fix
        )
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    return WorkerRole(task_type, index, workers)


def train_distributed(
    run_dir: str | Path,
    config: TrainConfig,
    *,
    progress=lambda _: None,
    stages: tuple[str, ...] | None = None,
    worker_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> list:
    """Runs `train` as one worker of a MultiWorkerMirroredStrategy cluster (TF_CONFIG).

    Args:
        worker_dir: where a non-chief worker writes its copies (default: a temp
            folder, removed at the end). The chief always writes `run_dir`.
        resume, overwrite: as `train`, for the chief's `run_dir`. A non-chief
            worker's folder is its own copy, never a run to protect: with
            `resume` it starts from the run's checkpoints, else from none.

    Raises:
        EdgepedError: TF_CONFIG is missing or wrong; the dataset has fewer train
            shards than workers (file sharding would leave a worker without data);
            hard-negative mining is configured (it scores the train split in one
            process and is not distributed); anything `train` raises.
    """
    from edgeped.data.shards import Dataset

    role = worker_role(os.environ.get("TF_CONFIG"))
    dataset = Dataset.open(config.data_dir)
    shards = len(dataset.shard_paths("train"))
    if shards < role.workers:
        raise EdgepedError(
            f"the train split has {shards} shard(s) for {role.workers} workers",
            "write the dataset with more, smaller shards (at least several per worker)",
        )
    if config.mining.rounds:
        raise EdgepedError(
            "hard-negative mining is not distributed",
            "set [mining] rounds = 0 for --distributed, or mine in a single-process run",
        )
    from edgeped.training_stages import check_stage_names

    stages = config.stages if stages is None else stages
    check_stage_names(stages)
    run = Path(run_dir)
    if role.is_chief:
        return _chief(run, config, progress, stages, role, resume, overwrite)
    from edgeped._keras import tf
    from edgeped.train.loop import train_into

    # The strategy must exist before any other TensorFlow op runs in this process.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    scratch = None if worker_dir else tempfile.mkdtemp(prefix="edgeped-worker-")
    target = Path(worker_dir or scratch)
    target.mkdir(parents=True, exist_ok=True)
    if resume:  # earlier stages' results, and their log: QAT picks its parent by it
        earlier = [*run.glob("*.h5"), run / "train_log.json"] if run.is_dir() else []
        for path in earlier:
            if path.is_file():
                shutil.copy2(path, target / path.name)
    try:
        return train_into(target, config, _named(progress, role), stages, strategy)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _named(progress, role: WorkerRole):
    name = f"{role.task_type} {role.index}/{role.workers}"
    return lambda m: progress(f"[{name}] {m}")


def _chief(run: Path, config, progress, stages, role, resume: bool, overwrite: bool) -> list:
    """The chief writes `run` under `train`'s existing-run rules, checked before TF starts."""
    from edgeped.train.run_dir import run_output

    with run_output(
        run, config.to_dict(), resume=resume, overwrite=overwrite, stages=stages
    ) as target:
        from edgeped._keras import tf
        from edgeped.train.loop import train_into

        # The strategy must exist before any other TensorFlow op runs in this process.
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return train_into(target, config, _named(progress, role), stages, strategy)
