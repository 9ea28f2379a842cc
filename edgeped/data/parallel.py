"""Parallel shard writing: worker processes render, encode and write whole shards.

The parent plans the shards (one split per shard, records grouped by drive so a
drive never straddles splits), workers each produce one shard file (temp file,
renamed when complete) and return its manifest entry and partial metadata
statistics; the parent merges them and writes the manifest last. Output is the
same whatever the number of workers: shards are planned, not raced for.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeped.data.generators import worker_map
from edgeped.data.output import StagedDataset
from edgeped.data.schema import SPLITS, CropBatch
from edgeped.data.shards import check_split_fractions, record_to_example, shard_head_sha256
from edgeped.data.tfrecord import write_record
from edgeped.data.writer import RunningStats, is_hard_negative, write_manifest
from edgeped.errors import EdgepedError
from edgeped.fileio import atomic_output, sha256_file


@dataclass(frozen=True)
class ShardTask:
    """One shard to produce: its split, file name and what the render function needs.

    `render` is "module:function" so the task pickles cheaply; the function takes
    `payload` and returns a CropBatch whose records all belong to `split`.
    """

    split: str
    file: str
    render: str
    payload: Any


def _resolve(render: str) -> Callable[[Any], CropBatch]:
    module, _, name = render.partition(":")
    return getattr(importlib.import_module(module), name)


def write_shard(out_dir: str, task: ShardTask) -> tuple[dict, RunningStats]:
    """Renders and writes one shard; returns its manifest entry and metadata statistics."""
    batch = _resolve(task.render)(task.payload)
    stats = RunningStats()
    if task.split == "train":
        stats.update(batch.metadata)
    path = Path(out_dir) / task.file
    with atomic_output(path) as handle:
        for i in range(len(batch)):
            write_record(handle, record_to_example(batch, i))
    entry = {
        "file": task.file,
        "records": len(batch),
        "positives": int(batch.labels.sum()),
        "hard_negatives": int(is_hard_negative(batch).sum()),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "head_sha256": shard_head_sha256(path),
    }
    return entry, stats


def _run(args: tuple[str, ShardTask]) -> tuple[dict, RunningStats]:
    return write_shard(*args)


def write_parallel(
    out_dir: str | os.PathLike,
    tasks: list[ShardTask],
    *,
    workers: int = 0,
    source: dict,
    split_fractions: tuple[float, float, float],
    overwrite: bool = False,
    required_splits: tuple[str, ...] = (),
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Writes every planned shard with `workers` processes, then the manifest. Returns it.

    The shards go into a staging folder beside `out_dir` that replaces it only
    when the manifest is written (`edgeped.data.output`), so an interrupted
    write leaves the previous dataset as it was.

    Raises:
        EdgepedError: the folder already holds a dataset (without overwrite), a
            task names an unknown split, nothing was written, or a split in
            `required_splits` is empty.
    """
    bad = sorted({t.split for t in tasks} - set(SPLITS))
    if bad:
        raise EdgepedError(f"shard plan names unknown split(s) {bad}", f"use {', '.join(SPLITS)}")
    check_split_fractions(split_fractions)
    workers = workers or (os.cpu_count() or 1)
    with StagedDataset(out_dir, overwrite=overwrite) as staged:
        shards: dict[str, list[dict]] = {s: [] for s in SPLITS}
        stats = RunningStats()
        # Closed before the staging folder is removed on a failure: no worker still
        # writes into it.
        with contextlib.closing(_map(staged.path, tasks, workers)) as results:
            for done, (task, (entry, partial)) in enumerate(
                zip(tasks, results, strict=True), start=1
            ):
                shards[task.split].append(entry)
                stats.merge(partial)
                if progress:
                    progress(done, len(tasks))
        manifest = write_manifest(
            staged.path,
            shards,
            stats,
            source,
            split_fractions,
            required_splits=required_splits,
        )
        staged.commit()
    return manifest


def _map(out: Path, tasks: list[ShardTask], workers: int) -> Iterator[tuple[dict, RunningStats]]:
    args = [(str(out), t) for t in tasks]
    if workers == 1 or len(tasks) <= 1:
        yield from map(_run, args)
        return
    yield from worker_map(_run, args, min(workers, len(tasks)))
