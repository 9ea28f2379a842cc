"""Sharded TFRecord datasets: write, manifest, read back, verify.

A dataset is a folder of `{split}-{index:05d}.tfrecord` shards and a
`manifest.json` holding per-shard counts and sha256, split counts, train-split
metadata statistics (used for standardisation and imputation) and the source
config. The manifest is written last, atomically: a folder without one is not a
dataset. Splits are by drive (`split_for_drive`), never by crop.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeped.data.manifest import manifest_shape_problem
from edgeped.data.output import MANIFEST, StagedDataset
from edgeped.data.schema import (
    CROP_SHAPE,
    METADATA_FIELDS,
    NUM_METADATA,
    SCHEMA_VERSION,
    SPLITS,
    TAG_FIELDS,
    CropBatch,
)
from edgeped.data.tfrecord import (
    decode_example,
    encode_example,
    iter_records,
    write_record,
)
from edgeped.errors import EdgepedError
from edgeped.fileio import atomic_output, read_json, sha256_file, write_json_atomic
from edgeped.provenance import stamp

DEFAULT_SPLIT_FRACTIONS = (0.7, 0.15, 0.15)


def check_split_fractions(fractions: tuple[float, float, float]) -> None:
    """Raises ValueError unless `fractions` are three shares in [0, 1] summing to 1."""
    values = tuple(fractions)
    if (
        len(values) != len(SPLITS)
        or not all(isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in values)
        or abs(sum(values) - 1.0) > 1e-6
    ):
        raise ValueError(
            f"split_fractions must be {len(SPLITS)} shares (train, val, test) in [0, 1] "
            f"summing to 1, got {fractions!r}"
        )


def default_required_splits(fractions: tuple[float, float, float]) -> tuple[str, ...]:
    """The splits a write must fill: every one given a share of the drives."""
    return tuple(s for s, f in zip(SPLITS, fractions, strict=True) if f > 0)


def split_for_drive(
    drive_id: str,
    fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
    salt: str = "edgeped-split-v1",
) -> str:
    """Assigns a whole drive to train/val/test by a stable hash of its id."""
    digest = hashlib.sha256(f"{salt}:{drive_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edges = np.cumsum(fractions)
    for name, edge in zip(SPLITS, edges, strict=True):
        if u < edge:
            return name
    return SPLITS[-1]


def record_to_example(batch: CropBatch, i: int) -> bytes:
    features: dict[str, Any] = {
        "image": batch.images[i].tobytes(),
        "image_shape": list(CROP_SHAPE),
        "metadata": [float(v) for v in batch.metadata[i]],
        "label": [int(batch.labels[i])],
        "drive_id": batch.drive_id[i].encode(),
        "crop_id": batch.crop_id[i].encode(),
    }
    for name in TAG_FIELDS:
        features[name] = batch.tags(name)[i].encode()
    return encode_example(features)


def examples_to_batch(payloads: list[bytes], source: str) -> CropBatch:
    """Decodes Example payloads into a validated CropBatch."""
    if not payloads:
        return _empty_batch()
    cols: dict[str, list] = {
        k: [] for k in ("images", "metadata", "labels", *TAG_FIELDS, "drive_id", "crop_id")
    }
    for payload in payloads:
        try:
            ex = decode_example(payload)
            shape = tuple(ex["image_shape"])
            if shape != CROP_SHAPE:
                raise EdgepedError(
                    f"{source}: a record has image shape {shape}, expected {CROP_SHAPE}",
                    "re-import the data at 128x64 RGB",
                )
            cols["images"].append(np.frombuffer(ex["image"][0], np.uint8).reshape(CROP_SHAPE))
            cols["metadata"].append(ex["metadata"])
            cols["labels"].append(ex["label"][0])
            for name in (*TAG_FIELDS, "drive_id", "crop_id"):
                cols[name].append(ex[name][0].decode())
        except (KeyError, IndexError, ValueError) as exc:
            raise EdgepedError(
                f"{source}: a record does not follow the edgeped schema ({exc})",
                "the shard was not written by edgeped or is damaged: regenerate it",
            ) from exc
    return CropBatch.validated(
        images=np.stack(cols["images"]),
        **{k: np.asarray(v) for k, v in cols.items() if k != "images"},
    )


def _empty_batch() -> CropBatch:
    return CropBatch.validated(
        images=np.zeros((0, *CROP_SHAPE), np.uint8),
        metadata=np.zeros((0, NUM_METADATA), np.float32),
        labels=np.zeros(0, np.int64),
        **{k: np.zeros(0, str) for k in (*TAG_FIELDS, "drive_id", "crop_id")},
    )


@dataclass
class _RunningStats:
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

    def merge(self, other: _RunningStats) -> None:
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
        self._stats = _RunningStats()
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
    stats: _RunningStats,
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


@dataclass(frozen=True)
class Dataset:
    """A dataset on disk, opened through its manifest."""

    root: Path
    manifest: dict

    @classmethod
    def open(cls, root: str | os.PathLike) -> Dataset:
        """Opens a dataset folder.

        Raises:
            EdgepedError: no manifest, an unreadable one, or a schema we cannot read.
        """
        root = Path(root)
        if not root.is_dir():
            raise EdgepedError(
                f"dataset folder not found: {root}",
                "create one with `edgeped data synth` or `edgeped data import`",
            )
        if not (root / MANIFEST).is_file():
            raise EdgepedError(
                f"{root} has no {MANIFEST}: not an edgeped dataset, or its writing was interrupted",
                "regenerate the dataset",
            )
        manifest = read_json(root / MANIFEST, "dataset manifest")
        problem = manifest_shape_problem(manifest)
        if problem:
            raise EdgepedError(
                f"{root / MANIFEST} is not an edgeped dataset manifest: {problem}",
                "the manifest is damaged or from another tool: regenerate the dataset "
                "(`edgeped data synth` or `edgeped data import`)",
            )
        version = manifest.get("record_schema_version")
        if version != SCHEMA_VERSION:
            raise EdgepedError(
                f"{root} uses record schema {version}; this edgeped reads {SCHEMA_VERSION}",
                "regenerate the dataset with this version",
            )
        if not manifest.get("records"):
            raise EdgepedError(f"dataset {root} is empty", "regenerate it with a non-empty source")
        return cls(root, manifest)

    @property
    def manifest_sha256(self) -> str:
        return sha256_file(self.root / MANIFEST)

    def shard_paths(self, split: str) -> list[Path]:
        self._check_split(split)
        return [self.root / s["file"] for s in self.manifest["splits"][split]["shards"]]

    def count(self, split: str) -> int:
        self._check_split(split)
        return int(self.manifest["splits"][split]["records"])

    def positives(self, split: str) -> int:
        return int(self.manifest["splits"][split]["positives"])

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise EdgepedError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}")

    def iter_batches(self, split: str, batch_records: int = 2048) -> Iterator[CropBatch]:
        """Streams a split shard by shard (memory bounded by one batch)."""
        for path in self.shard_paths(split):
            if not path.is_file():
                raise EdgepedError(
                    f"shard missing: {path}", "run `edgeped data verify` and regenerate"
                )
            payloads: list[bytes] = []
            with open(path, "rb") as handle:
                for payload in iter_records(handle, path.name):
                    payloads.append(payload)
                    if len(payloads) >= batch_records:
                        yield examples_to_batch(payloads, path.name)
                        payloads = []
            if payloads:
                yield examples_to_batch(payloads, path.name)

    def read(self, split: str, limit: int | None = None) -> CropBatch:
        """Reads a whole split (or its first `limit` records) into memory.

        Raises:
            EdgepedError: the split is empty, a shard is missing or corrupt.
        """
        if self.count(split) == 0:
            raise EdgepedError(
                f"split {split!r} of {self.root} is empty",
                "generate more drives so every split gets some",
            )
        parts, n = [], 0
        for batch in self.iter_batches(split):
            parts.append(batch)
            n += len(batch)
            if limit is not None and n >= limit:
                break
        out = CropBatch.concat(parts)
        return out.take(np.arange(min(len(out), limit))) if limit is not None else out

    def metadata_stats(self) -> dict:
        return self.manifest["metadata_stats"]


def __getattr__(name: str):
    # verification moved to edgeped.data.verify; old imports keep working.
    if name in ("verify", "ShardReport"):
        from edgeped.data import verify as _verify

        return getattr(_verify, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
