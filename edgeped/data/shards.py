"""Sharded TFRecord datasets: the split rule, the record codec, reading back.

A dataset is a folder of `{split}-{index:05d}.tfrecord` shards and a
`manifest.json` holding per-shard counts and sha256, split counts, train-split
metadata statistics (used for standardisation and imputation) and the source
config. The manifest is written last, atomically: a folder without one is not a
dataset. Splits are by drive (`split_for_drive`), never by crop. Writing is
`edgeped.data.writer`, checking the shards against the manifest `edgeped.data.verify`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeped.data.manifest import manifest_shape_problem
from edgeped.data.output import MANIFEST
from edgeped.data.schema import (
    CROP_SHAPE,
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
)
from edgeped.errors import EdgepedError
from edgeped.fileio import read_json, sha256_file

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


# Readers check a shard's size and the sha256 of this many leading bytes against the
# manifest each time they open it (cheap: one small read); `data verify` hashes it all.
HEAD_BYTES = 1 << 16

# Full-file checks of shards from manifests without `head_sha256`, by (path, size,
# mtime, inode): one hash per shard per process, not one per epoch.
_FULLY_CHECKED: set[tuple] = set()


def shard_head_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a shard's first HEAD_BYTES bytes (the whole file when shorter)."""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read(HEAD_BYTES)).hexdigest()


def _shard_refused(path: Path, problem: str) -> EdgepedError:
    return EdgepedError(
        f"shard {path} does not match the dataset's manifest: {problem} (replaced, "
        "copied in from another dataset, or damaged after the dataset was written)",
        f"run `edgeped data verify {path.parent}` to list every bad shard, then restore "
        "the shard or regenerate the dataset",
    )


def check_shard_matches(path: Path, entry: dict) -> None:
    """Raises EdgepedError unless `path` has the manifest entry's size and leading bytes."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise EdgepedError(
            f"shard missing: {path}", f"run `edgeped data verify {path.parent}` and regenerate"
        ) from None
    if not path.is_file():
        raise _shard_refused(path, "it is not a regular file")
    if stat.st_size != entry["bytes"]:
        raise _shard_refused(path, f"{stat.st_size} bytes, the manifest says {entry['bytes']}")
    head = entry.get("head_sha256")
    if head is not None:
        if shard_head_sha256(path) != head:
            raise _shard_refused(path, f"its first {HEAD_BYTES} bytes have another sha256")
        return
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino, entry["sha256"])
    if key in _FULLY_CHECKED:
        return
    if sha256_file(path) != entry["sha256"]:
        raise _shard_refused(path, "its sha256 differs")
    _FULLY_CHECKED.add(key)


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
        """The split's shards, each checked against the manifest (`shard_path`)."""
        self._check_split(split)
        return [self.shard_path(s) for s in self.manifest["splits"][split]["shards"]]

    def shard_path(self, entry: dict) -> Path:
        """One manifest shard entry's file, checked before anyone reads it.

        The name must stay inside the dataset folder, and the file must match the
        manifest: its size and the sha256 of its first block (`head_sha256`; a
        manifest written before that key existed gets the full sha256). A shard
        copied in from another dataset or damaged after writing is refused here;
        `edgeped data verify` does the full check of every record.

        Raises:
            EdgepedError: the shard is missing, lies outside the folder, or differs.
        """
        from edgeped.paths import resolve_inside

        path = resolve_inside(self.root, entry["file"], what="shard", source=self.root / MANIFEST)
        check_shard_matches(path, entry)
        return path

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
        self._check_split(split)
        for entry in self.manifest["splits"][split]["shards"]:
            path = self.shard_path(entry)  # checked as it is opened, not all up front
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
