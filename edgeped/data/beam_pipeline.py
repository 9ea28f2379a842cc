"""`data synth|import|verify` as Apache Beam pipelines that write the local path's bytes.

The same shard and manifest code runs, only scheduled by Beam: one element per
planned shard, each worker renders what its shard holds, writes it to a temp
file and renames it, and one final step writes the manifest last. Shards are
planned exactly as the local writers cut them, so a dataset written here is
byte-identical (shards and manifest) to the local one:

- fleet synth plans shards of whole drives (`fleet.plan_shards`), as the local
  parallel writer does, and merges statistics in shard order;
- v1 synth and the importers stream into `DatasetWriter` locally, which cuts
  each split into shards of `shard_records` in source order and updates the
  metadata statistics once per added batch. Here the records of each split are
  planned into the same shards up front (the split of every record is known
  before rendering), a unit that straddles two shards is rendered by both, and
  the statistics are folded per added batch in source order with the writer's
  own arithmetic.

Train shards with pedestrians also get their positive-only companion
(`edgeped.data.positives`), written by the same worker, and the index after the
manifest, as `write_positive_index` writes them after a local import.

The output folder must be visible to every worker (a local disk for the local
runner; a shared filesystem on a cluster).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeped.data.beam_runtime import BeamConfig, ResultFolder, keyed, make_pipeline, run
from edgeped.data.beam_sources import CsvSource, FramesSource, V1Source
from edgeped.data.output import MANIFEST, StagedDataset
from edgeped.data.positives import write_companion, write_index
from edgeped.data.schema import SPLITS, CropBatch
from edgeped.data.shards import (
    DEFAULT_SPLIT_FRACTIONS,
    Dataset,
    check_split_fractions,
    default_required_splits,
    record_to_example,
    shard_head_sha256,
)
from edgeped.data.tfrecord import write_record
from edgeped.data.verify import ShardReport, _check_shard, totals_reports
from edgeped.data.writer import RunningStats, is_hard_negative, write_manifest
from edgeped.errors import EdgepedError
from edgeped.fileio import atomic_output, read_json, sha256_file

SHARD_RECORDS = 4096  # DatasetWriter's default, which v1 synth and every importer use


# --- planning -----------------------------------------------------------------------


@dataclass(frozen=True)
class SliceTask:
    """One shard of a streamed source: (unit, record indices in that unit) in order."""

    split: str
    file: str
    parts: tuple[tuple[int, tuple[int, ...]], ...]


def plan_slices(unit_splits: list[list[str]], shard_records: int) -> list[SliceTask]:
    """Cuts each split's records (in source order) into shards as DatasetWriter does."""
    if shard_records < 1:
        raise ValueError(f"shard_records must be >= 1, got {shard_records}")
    streams: dict[str, list[tuple[int, int]]] = {s: [] for s in SPLITS}
    for unit, splits in enumerate(unit_splits):
        for i, split in enumerate(splits):
            streams[split].append((unit, i))
    tasks = []
    for split in SPLITS:
        records = streams[split]
        for k, start in enumerate(range(0, len(records), shard_records)):
            parts: list[tuple[int, list[int]]] = []
            for unit, i in records[start : start + shard_records]:
                if parts and parts[-1][0] == unit:
                    parts[-1][1].append(i)
                else:
                    parts.append((unit, [i]))
            tasks.append(
                SliceTask(
                    split, f"{split}-{k:05d}.tfrecord", tuple((u, tuple(ix)) for u, ix in parts)
                )
            )
    return tasks


def _write_batch(out_dir: str, file: str, batch: CropBatch) -> dict:
    """Writes one shard (temp file, then rename) and returns its manifest entry."""
    path = Path(out_dir) / file
    with atomic_output(path) as handle:
        for i in range(len(batch)):
            write_record(handle, record_to_example(batch, i))
    return {
        "file": file,
        "records": len(batch),
        "positives": int(batch.labels.sum()),
        "hard_negatives": int(is_hard_negative(batch).sum()),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "head_sha256": shard_head_sha256(path),
    }


def _write_slice(item: tuple[int, SliceTask], source, out_dir: str):
    """Renders and writes one planned shard; yields its entry and its train metadata rows."""
    import apache_beam as beam

    index, task = item
    rendered = source.render([u for u, _ in task.parts])
    pieces = [rendered[u].take(np.array(ix)) for u, ix in task.parts]
    entry = _write_batch(out_dir, task.file, CropBatch.concat(pieces))
    yield (index, entry, write_companion(out_dir, entry) if task.split == "train" else None)
    if task.split == "train":
        for (unit, ix), piece in zip(task.parts, pieces, strict=True):
            yield beam.pvalue.TaggedOutput(
                "meta", (source.group(unit), ((unit, ix[0]), piece.metadata))
            )


def _group_partial(item: tuple[int, list]) -> tuple[int, tuple]:
    """What `RunningStats.update` computes from one added batch's train rows."""
    group, rows = item
    meta = np.concatenate([m for _, m in sorted(rows, key=lambda r: r[0])])
    cols = []
    for j in range(meta.shape[1]):
        col = meta[:, j][~np.isnan(meta[:, j])].astype(np.float64)
        if col.size == 0:
            cols.append(None)
            continue
        mean_b = col.mean()
        cols.append((col.size, mean_b, ((col - mean_b) ** 2).sum()))
    return group, (meta.shape[0], cols)


def fold_partials(partials: list[tuple[int, tuple]]) -> RunningStats:
    """Folds per-batch partials in source order, with `RunningStats.update`'s arithmetic."""
    stats = RunningStats()
    for _, (total_b, cols) in sorted(partials, key=lambda p: p[0]):
        stats.total += total_b
        for j, col in enumerate(cols):
            if col is None:
                continue
            n_b, mean_b, m2_b = col
            n = stats.n[j] + n_b
            delta = mean_b - stats.mean[j]
            stats.mean[j] += delta * n_b / n
            stats.m2[j] += m2_b + delta**2 * stats.n[j] * n_b / n
            stats.n[j] = n
    return stats


def _finish_slices(_, entries, partials, tasks, out_dir, source, fractions, required) -> None:
    shards: dict[str, list[dict]] = {s: [] for s in SPLITS}
    companions = []
    for index, entry, companion in sorted(entries, key=lambda e: e[0]):
        shards[tasks[index].split].append(entry)
        companions.append(companion)
    write_manifest(
        Path(out_dir),
        shards,
        fold_partials(partials),
        source,
        fractions,
        required_splits=required,
    )
    write_index(out_dir, companions)


def _staged_run(p, staged: StagedDataset) -> dict:
    """Runs the pipeline that writes into `staged.path`, then puts the dataset in place.

    A failed pipeline (or an interrupt) removes the staged folder; OUT_DIR stays as it was.
    """
    with staged:
        run(p)
        manifest = read_json(staged.path / MANIFEST, "dataset manifest")
        staged.commit()
    return manifest


def write_streamed(
    out_dir: str | os.PathLike,
    source,
    beam: BeamConfig,
    *,
    overwrite: bool = False,
    shard_records: int = SHARD_RECORDS,
    split_fractions: tuple[float, float, float] | None = None,
) -> dict:
    """Writes a v1/CSV/frames source with Beam, as DatasetWriter would. Returns the manifest.

    Raises:
        EdgepedError: the folder already holds a dataset (without overwrite), the
            source gives no records, or a worker failed.
    """
    import apache_beam as b

    fractions = split_fractions or DEFAULT_SPLIT_FRACTIONS
    check_split_fractions(fractions)
    tasks = plan_slices(source.units(fractions), shard_records)
    if not tasks:
        raise EdgepedError(
            "no records were written: the dataset would be empty",
            "check the source produced crops (paths, filters, counts)",
        )
    staged = StagedDataset(out_dir, overwrite=overwrite)
    out = staged.path
    p = make_pipeline(beam)
    written = (
        p
        | "plan" >> b.Create(list(enumerate(tasks)))
        | "spread" >> b.Reshuffle()
        | "write shards"
        >> b.FlatMap(_write_slice, source=source, out_dir=str(out)).with_outputs("meta", main="e")
    )
    partials = written.meta | "by batch" >> b.GroupByKey() | "stats" >> b.Map(_group_partial)
    _ = (
        p
        | "manifest" >> b.Create([None])
        | "write manifest"
        >> b.Map(
            _finish_slices,
            entries=b.pvalue.AsList(written.e),
            partials=b.pvalue.AsList(partials),
            tasks=tasks,
            out_dir=str(out),
            source=source.source(),
            fractions=fractions,
            required=source.required(fractions),
        )
    )
    return _staged_run(p, staged)


# --- fleet synth: the local writer already plans shards of whole drives ---------------


def _write_task(item: tuple[int, Any], out_dir: str) -> tuple[int, dict, RunningStats]:
    from edgeped.data.parallel import write_shard

    index, task = item
    entry, stats = write_shard(out_dir, task)
    return index, entry, stats, write_companion(out_dir, entry) if task.split == "train" else None


def _finish_tasks(_, results, tasks, out_dir, source, fractions, required) -> None:
    shards: dict[str, list[dict]] = {s: [] for s in SPLITS}
    stats, companions = RunningStats(), []
    for index, entry, partial, companion in sorted(results, key=lambda r: r[0]):
        shards[tasks[index].split].append(entry)
        stats.merge(partial)
        companions.append(companion)
    write_manifest(Path(out_dir), shards, stats, source, fractions, required_splits=required)
    write_index(out_dir, companions)


def write_fleet_beam(
    out_dir: str | os.PathLike,
    config,
    beam: BeamConfig,
    *,
    shard_records: int = SHARD_RECORDS,
    split_fractions: tuple[float, float, float] | None = None,
    overwrite: bool = False,
) -> dict:
    """`write_fleet` with Beam workers: one element per planned shard. Returns the manifest."""
    import apache_beam as b

    from edgeped.data.fleet import GENERATOR, plan_shards

    fractions = split_fractions or DEFAULT_SPLIT_FRACTIONS
    check_split_fractions(fractions)
    tasks = plan_shards(config, shard_records, fractions)
    staged = StagedDataset(out_dir, overwrite=overwrite)
    out = staged.path
    p = make_pipeline(beam)
    results = (
        p
        | "plan" >> b.Create(list(enumerate(tasks)))
        | "spread" >> b.Reshuffle()
        | "write shards" >> b.Map(_write_task, out_dir=str(out))
    )
    _ = (
        p
        | "manifest" >> b.Create([None])
        | "write manifest"
        >> b.Map(
            _finish_tasks,
            results=b.pvalue.AsList(results),
            tasks=tasks,
            out_dir=str(out),
            source={"generator": GENERATOR, "config": config.to_dict()},
            fractions=fractions,
            required=default_required_splits(fractions),
        )
    )
    return _staged_run(p, staged)


def write_synthetic_beam(out_dir, config, beam: BeamConfig, **kw) -> dict:
    """v1 `write_synthetic` with Beam workers. Returns the manifest."""
    return write_streamed(out_dir, V1Source(config), beam, **kw)


def import_crops_beam(csv_path, out_dir, beam: BeamConfig, **kw) -> dict:
    """`import_crops` with Beam workers. Returns the manifest."""
    return write_streamed(out_dir, CsvSource(csv_path), beam, **kw)


def import_frames_beam(frames, out_dir, config, beam: BeamConfig, *, source: dict, **kw):
    """`import_frames` with Beam workers. Returns the same ImportSummary."""
    from edgeped.data.importers.frames import ImportSummary

    src = FramesSource(frames, config, source)
    manifest = write_streamed(out_dir, src, beam, **kw)
    return ImportSummary(manifest=manifest, frames=len(frames), **src.counts)


# --- verify -------------------------------------------------------------------------


def _check(item: tuple[str, tuple[str, dict]], root: str, check_records: bool, write: Callable):
    key, (split, entry) = item
    try:
        report = _check_shard(Path(root), entry, split, check_records)
    except OSError as exc:
        report = ShardReport(entry.get("file", "?"), "unreadable", str(exc), split)
    write((key, report))


def verify_beam(
    root: str | os.PathLike, beam: BeamConfig, *, check_records: bool = True
) -> list[ShardReport]:
    """`shards.verify` with one Beam element per shard; same reports, same order.

    Raises:
        EdgepedError: the manifest itself is missing or unreadable, or a worker failed.
    """
    import apache_beam as b

    ds = Dataset.open(root)
    listed = [
        (split, entry)
        for split in SPLITS
        for entry in ds.manifest.get("splits", {}).get(split, {}).get("shards", [])
    ]
    items = keyed(listed, "shard")
    folder = ResultFolder(beam)
    try:
        p = make_pipeline(beam)
        _ = (
            p
            | "shards" >> b.Create(items)
            | "spread" >> b.Reshuffle()
            | "check"
            >> b.Map(_check, root=str(ds.root), check_records=check_records, write=folder.writer())
        )
        run(p)
        reports = folder.read([k for k, _ in items])
    finally:
        folder.cleanup()
    names = {e.get("file") for _, e in listed}
    for extra in sorted(p.name for p in ds.root.glob("*.tfrecord") if p.name not in names):
        reports.append(
            ShardReport(extra, "unlisted", "not in the manifest (left from an earlier write?)")
        )
    return reports + totals_reports(ds.manifest)
