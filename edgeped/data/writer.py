"""Writing a dataset: shards per split, metadata statistics, the manifest last.

`DatasetWriter` streams CropBatches into `{split}-{index:05d}.tfrecord` shards in a
staging folder and commits it with `manifest.json` (`write_manifest`, which the Beam
pipeline shares); `edgeped.data.shards.Dataset` reads the result back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeped.data.output import MANIFEST, StagedDataset
from edgeped.data.schema import (
    CROP_SHAPE,
    METADATA_FIELDS,
    NUM_METADATA,
    SCHEMA_VERSION,
    SPLITS,
    CropBatch,
)
from edgeped.data.shards import (
    DEFAULT_SPLIT_FRACTIONS,
    check_split_fractions,
    record_to_example,
    shard_head_sha256,
    split_for_drive,
)
from edgeped.data.tfrecord import write_record
from edgeped.errors import EdgepedError
from edgeped.fileio import atomic_output, sha256_file, write_json_atomic
from edgeped.provenance import stamp


@dataclass
class RunningStats:
    """Per-field count/mean/M2 (Welford) ignoring NaN, plus missing counts."""

    n: np.ndarray = field(default_factory=lambda: np.zeros(NUM_METADATA))
    mean: np.ndarray = field(default_factory=lambda: np.zeros(NUM_METADATA))
    m2: np.ndarray = field(default_factory=lambda: np.zeros(NUM_METADATA))
    total: int = 0

    def update(self, meta: np.ndarray) -> None:
        self.total += meta.shape[0]
        for j in range(NUM_METADATA):
            col = meta[:, j][~np.isnan(meta[:, j])].astype(np.float64)
            if col.size == 0:
                continue
            n_b, mean_b = col.size, col.mean()
            m2_b = ((col - mean_b) ** 2).sum()
            n = self.n[j] + n_b
            delta = mean_b - self.mean[j]
            self.mean[j] += delta * n_b / n
            self.m2[j] += m2_b + delta**2 * self.n[j] * n_b / n
            self.n[j] = n

    def merge(self, other: RunningStats) -> None:
        """Combines another partial (e.g. from a worker process) into this one (Chan et al.)."""
        n = self.n + other.n
        safe = np.where(n > 0, n, 1)
        delta = other.mean - self.mean
        self.m2 = self.m2 + other.m2 + delta**2 * self.n * other.n / safe
        self.mean = np.where(n > 0, (self.n * self.mean + other.n * other.mean) / safe, 0.0)
        self.n = n
        self.total += other.total

    def to_dict(self) -> dict:
        std = np.sqrt(np.where(self.n > 1, self.m2 / np.maximum(self.n - 1, 1), 1.0))
        std = np.where(std < 1e-6, 1.0, std)
        missing = 1.0 - self.n / max(self.total, 1)
        return {
            "fields": list(METADATA_FIELDS),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in std],
            "missing_rate": [float(v) for v in missing],
            "records": self.total,
        }


class DatasetWriter:
    """Streams CropBatches into per-split shards; `close()` writes the manifest.

    Records are routed to splits by drive. Shards and the manifest are written
    into a staging folder beside `out_dir` (`edgeped.data.output`), which
    replaces `out_dir` only when `close()` has written the manifest: an
    interrupted or failed write leaves the previous dataset as it was. Use it
    as a context manager (or call `abort()`) so a failure removes the staging folder.

    `required_splits` names splits that must not come out empty (the synth and
    import commands require every split given a share). Every crop id must be
    unique, and (unless `one_split_per_drive` is False, for sources whose
    explicit splits are checked by the importer) a drive, the group an importer
    gives such as a source image, must not be in two splits: both are refused
    as they arrive.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        shard_records: int = 4096,
        source: dict | None = None,
        overwrite: bool = False,
        split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
        required_splits: tuple[str, ...] = (),
        one_split_per_drive: bool = True,
    ) -> None:
        if shard_records < 1:
            raise ValueError(f"shard_records must be >= 1, got {shard_records}")
        check_split_fractions(split_fractions)
        self.out_dir = Path(out_dir)
        self.shard_records = shard_records
        self.source = source or {}
        self.split_fractions = split_fractions
        self.required_splits = tuple(required_splits)
        self.one_split_per_drive = one_split_per_drive
        self._pending: dict[str, list[bytes]] = {s: [] for s in SPLITS}
        self._pending_pos: dict[str, int] = dict.fromkeys(SPLITS, 0)
        self._pending_hard: dict[str, int] = dict.fromkeys(SPLITS, 0)
        self._shards: dict[str, list[dict]] = {s: [] for s in SPLITS}
        self._stats = RunningStats()
        self._split_cache: dict[str, str] = {}
        self._drive_split: dict[str, str] = {}
        self._crop_ids: set[str] = set()
        self._output = StagedDataset(self.out_dir, overwrite=overwrite)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def abort(self) -> None:
        """Drops everything written so far; `out_dir` stays as it was."""
        self._output.abort()

    def add(self, batch: CropBatch, splits: np.ndarray | None = None) -> None:
        """Queues a batch; records go to the split of their drive, or to `splits` if given.

        Raises:
            EdgepedError: `splits` has the wrong length or names an unknown split.
        """
        if splits is None:
            splits = np.array([self._split(d) for d in batch.drive_id])
        else:
            splits = np.asarray(splits).astype(str)
            bad = sorted(set(np.unique(splits)) - set(SPLITS))
            if splits.shape != (len(batch),) or bad:
                raise EdgepedError(
                    f"explicit splits must be {len(batch)} values from "
                    f"{', '.join(SPLITS)}; got shape {splits.shape}, unknown {bad[:5]}",
                    "fix the split column of the source",
                )
        self._check_ids(batch, splits)
        train = splits == "train"
        if train.any():
            self._stats.update(batch.metadata[train])
        hard = is_hard_negative(batch)
        for i in range(len(batch)):
            split = splits[i]
            self._pending[split].append(record_to_example(batch, i))
            self._pending_pos[split] += int(batch.labels[i])
            self._pending_hard[split] += int(hard[i])
            if len(self._pending[split]) >= self.shard_records:
                self._flush(split)

    def _check_ids(self, batch: CropBatch, splits: np.ndarray) -> None:
        """Refuses a repeated crop id and a drive (or source image) in two splits."""
        seen: set[str] = set()
        for cid in map(str, batch.crop_id):
            if cid in self._crop_ids or cid in seen:
                self.abort()
                raise EdgepedError(
                    f"crop id {cid!r} occurs twice: every record needs its own id "
                    "(the gate matches crops by id)",
                    "remove the duplicate rows or images from the source",
                )
            seen.add(cid)
        if not self.one_split_per_drive:
            self._crop_ids |= seen
            return
        for drive, split in zip(map(str, batch.drive_id), map(str, splits), strict=True):
            known = self._drive_split.setdefault(drive, split)
            if known != split:
                self.abort()
                raise EdgepedError(
                    f"drive/source {drive!r} has records in both {known} and {split}: "
                    "the same drive or image in two splits leaks training data into evaluation",
                    "give each drive_id (or source image) a single split",
                )
        self._crop_ids |= seen

    def _split(self, drive_id: str) -> str:
        if drive_id not in self._split_cache:
            self._split_cache[drive_id] = split_for_drive(drive_id, self.split_fractions)
        return self._split_cache[drive_id]

    def _flush(self, split: str) -> None:
        records = self._pending[split]
        if not records:
            return
        name = f"{split}-{len(self._shards[split]):05d}.tfrecord"
        path = self._output.path / name
        with atomic_output(path) as handle:
            for payload in records:
                write_record(handle, payload)
        self._shards[split].append(
            {
                "file": name,
                "records": len(records),
                "positives": self._pending_pos[split],
                "hard_negatives": self._pending_hard[split],
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
                "head_sha256": shard_head_sha256(path),
            }
        )
        self._pending[split] = []
        self._pending_pos[split] = 0
        self._pending_hard[split] = 0

    def close(self) -> dict:
        """Flushes the last shards, writes the manifest and puts the dataset in place.

        Returns:
            The manifest.

        Raises:
            EdgepedError: nothing was written, or a required split is empty;
                `out_dir` then stays as it was.
        """
        with self._output:
            for split in SPLITS:
                self._flush(split)
            manifest = write_manifest(
                self._output.path,
                self._shards,
                self._stats,
                self.source,
                self.split_fractions,
                required_splits=self.required_splits,
            )
            self._output.commit()
        return manifest


def is_hard_negative(batch: CropBatch) -> np.ndarray:
    """True for negatives tagged with a near-miss kind (not plain background)."""
    return (batch.labels == 0) & ~np.isin(batch.hard_negative, ("none", "background", "unknown"))


def write_manifest(
    out_dir: Path,
    shards_by_split: dict[str, list[dict]],
    stats: RunningStats,
    source: dict,
    split_fractions: tuple[float, float, float],
    *,
    required_splits: tuple[str, ...] = (),
) -> dict:
    """Writes manifest.json (atomically, last) for shards already on disk. Returns it.

    Raises:
        EdgepedError: nothing was written (an empty dataset is never a dataset),
            or a split in `required_splits` got no records.
    """
    total = sum(s["records"] for shards in shards_by_split.values() for s in shards)
    if total == 0:
        raise EdgepedError(
            "no records were written: the dataset would be empty",
            "check the source produced crops (paths, filters, counts)",
        )
    counts = {s: sum(e["records"] for e in shards_by_split.get(s, [])) for s in SPLITS}
    empty = [s for s in required_splits if counts[s] == 0]
    if empty:
        raise EdgepedError(
            f"the {' and '.join(empty)} split(s) came out empty "
            f"({', '.join(f'{s} {n}' for s, n in counts.items())} records): "
            "training needs train and val, evaluation needs val and test",
            "give more drives or source images (splits take whole drives/images, by a hash "
            "of their id), or set the split column so every split gets some",
        )
    splits = {}
    for split in SPLITS:
        shards = shards_by_split.get(split, [])
        splits[split] = {
            "records": sum(s["records"] for s in shards),
            "positives": sum(s["positives"] for s in shards),
            "hard_negatives": sum(s.get("hard_negatives", 0) for s in shards),
            "shards": shards,
        }
    manifest = {
        **stamp("edgeped.dataset"),
        "record_schema_version": SCHEMA_VERSION,
        "crop_shape": list(CROP_SHAPE),
        "metadata_fields": list(METADATA_FIELDS),
        "split_rule": {
            "by": "drive_id",
            "fractions": list(split_fractions),
            "salt": "edgeped-split-v1",
        },
        "records": total,
        "splits": splits,
        "metadata_stats": stats.to_dict(),
        "source": source,
    }
    write_json_atomic(Path(out_dir) / MANIFEST, manifest)
    return manifest
