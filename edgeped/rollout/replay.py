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


def write_replay(
    out: Path, data_dir: str | os.PathLike, split: str = "test", limit: int | None = None
) -> int:
    """A dataset split as a replay set: crops, metadata, ids, labels and slice tags (.npz).

    Returns:
        The number of crops written.
    """
    from edgeped.data.shards import Dataset

    batch = Dataset.open(data_dir).read(split, limit)
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
