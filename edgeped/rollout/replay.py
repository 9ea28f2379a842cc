"""Replay sets for shadow runs and drift checks: a dataset split as .npz, and known shifts.

`write_replay` turns a dataset split into the .npz the device runner replays (crops,
metadata, ids, labels, slice tags). `shift_exposure` makes an exposure-drift set (a
camera whose auto-exposure now runs longer: brighter crops and longer exposure_ms), the
one shift the fleet generator has no dial for; `batch_window` gives any batch to the
drift check.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgeped.data.schema import METADATA_FIELDS, TAG_FIELDS, CropBatch
from edgeped.fileio import atomic_output
from edgeped.rollout.drift import SLICE_TAGS, WindowData, feature_matrix, image_stats

EXPOSURE = METADATA_FIELDS.index("exposure_ms")


def sample_index(n: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """``limit`` of ``n`` crops drawn without replacement (seeded), kept in dataset order.

    The split is stored drive by drive, so its first N crops are a few drives: a
    shadow or drift window made of them sees a few conditions, not the fleet.
    """
    if limit is None or limit >= n:
        return np.arange(n)
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def write_replay(
    out: Path,
    data_dir: str | os.PathLike,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
) -> int:
    """A dataset split as a replay set: crops, metadata, ids, labels and slice tags (.npz).

    Args:
        limit: keep this many crops, sampled across the whole split (seeded by ``seed``),
            not its first ones.

    Returns:
        The number of crops written.
    """
    from edgeped.data.shards import Dataset

    batch = Dataset.open(data_dir).read(split)
    batch = batch.take(sample_index(len(batch), limit, seed))
    arrays = {
        "images": batch.images,
        "metadata": batch.metadata.astype(np.float32),
        "crop_id": batch.crop_id.astype(str),
        "label": batch.labels.astype(np.int8),
        **{f"tag/{t}": batch.tags(t).astype(str) for t in TAG_FIELDS},
    }
    with atomic_output(out) as handle:
        np.savez(handle, **arrays)
    return len(batch)


def shift_exposure(batch: CropBatch, factor: float) -> CropBatch:
    """The batch as a camera with ``factor`` times the exposure would have taken it.

    Raises:
        ValueError: factor is not a finite number > 0.
    """
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"factor must be a finite number > 0, got {factor!r}")
    images = np.clip(np.rint(batch.images.astype(np.float32) * factor), 0, 255).astype(np.uint8)
    metadata = batch.metadata.copy()
    metadata[:, EXPOSURE] *= factor  # NaN (missing) stays missing
    return replace(batch, images=images, metadata=metadata)


def batch_window(batch: CropBatch, source: dict | None = None) -> WindowData:
    """A batch of crops as a drift window (features and slice tags)."""
    return WindowData(
        features=feature_matrix(batch.metadata, image_stats(batch.images)),
        tags={t: batch.tags(t) for t in SLICE_TAGS},
        source=source or {"kind": "batch", "crops": len(batch)},
    )
