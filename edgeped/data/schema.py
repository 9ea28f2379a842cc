"""The dataset record schema (v1): one proposal crop, its metadata, label and tags.

A record is a uint8 RGB crop of 128x64 (HxWxC), six float32 metadata values
(NaN where the sensor dropped out), a label (1 pedestrian, 0 background), slice
tags, the hard-negative kind, and the ids that tie it to its drive. Records are
handled in batches of numpy arrays (`CropBatch`) for speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeped.errors import EdgepedError

SCHEMA_VERSION = 1
CROP_HEIGHT = 128
CROP_WIDTH = 64
CROP_CHANNELS = 3
CROP_SHAPE = (CROP_HEIGHT, CROP_WIDTH, CROP_CHANNELS)
METADATA_FIELDS = (
    "speed_mps",
    "yaw_rate_rps",
    "exposure_ms",
    "tod_sin",
    "tod_cos",
    "analog_gain_db",
)
NUM_METADATA = len(METADATA_FIELDS)
# What each field can physically be (generous: a value outside is a unit or sign mistake,
# or a corrupt log): speed up to 100 m/s, yaw rate 5 rad/s, exposure 1 s, gain 100 dB;
# the time of day is a point on the unit circle.
METADATA_BOUNDS = {
    "speed_mps": (0.0, 100.0),
    "yaw_rate_rps": (-5.0, 5.0),
    "exposure_ms": (0.0, 1000.0),
    "tod_sin": (-1.0, 1.0),
    "tod_cos": (-1.0, 1.0),
    "analog_gain_db": (0.0, 100.0),
}
# sin^2 + cos^2 of the time of day may miss 1 by this much (rounding in the source).
TOD_UNIT_TOLERANCE = 0.05
SPLITS = ("train", "val", "test")

# Slice vocabularies. Importers may use "unknown" where a source does not say.
LIGHTING = ("day", "dusk", "night", "unknown")
WEATHER = ("clear", "rain", "fog", "unknown")
SCENE = ("urban", "suburban", "construction", "unknown")
HARD_NEGATIVE_KINDS = (
    "none",
    "background",
    "pole",
    "sign_post",
    "tree_trunk",
    "bollard",
    "cyclist",
    "stroller",
    "cone",
    "barrier",
    "poster",
    "mannequin",
    "partial_person",
    "unknown",  # an imported negative whose source does not say what it shows
)
# Negatives that are not near misses: plain background, positives' "none", unlabelled imports.
PLAIN_NEGATIVE_KINDS = ("none", "background", "unknown")
NEAR_MISS_KINDS = tuple(k for k in HARD_NEGATIVE_KINDS if k not in PLAIN_NEGATIVE_KINDS)
TAG_VOCABULARIES = {
    "lighting": LIGHTING,
    "weather": WEATHER,
    "scene": SCENE,
    "hard_negative": HARD_NEGATIVE_KINDS,
}
TAG_FIELDS = tuple(TAG_VOCABULARIES)


@dataclass
class CropBatch:
    """N records as parallel arrays. Construct via `CropBatch.validated(...)` at edges."""

    images: np.ndarray  # (N, 128, 64, 3) uint8
    metadata: np.ndarray  # (N, 6) float32, NaN = missing
    labels: np.ndarray  # (N,) int64, 0 or 1
    lighting: np.ndarray  # (N,) str
    weather: np.ndarray
    scene: np.ndarray
    hard_negative: np.ndarray
    drive_id: np.ndarray  # (N,) str
    crop_id: np.ndarray  # (N,) str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def tags(self, name: str) -> np.ndarray:
        return getattr(self, name)

    @classmethod
    def validated(cls, **arrays: np.ndarray) -> CropBatch:
        """Builds a batch and checks shapes, dtypes and vocabularies.

        Raises:
            EdgepedError: naming the field, what it got, and what is allowed.
        """
        images = np.asarray(arrays["images"])
        if images.ndim != 4 or images.shape[1:] != CROP_SHAPE:
            raise EdgepedError(
                f"crops have shape {images.shape[1:] if images.ndim == 4 else images.shape}, "
                f"expected (N, {CROP_HEIGHT}, {CROP_WIDTH}, {CROP_CHANNELS}) HxWxC",
                "resize crops to 128x64 RGB (height x width) before import",
            )
        if images.dtype != np.uint8:
            raise EdgepedError(
                f"crops have dtype {images.dtype}, expected uint8", "store pixels as 0..255 uint8"
            )
        n = images.shape[0]
        metadata = np.asarray(arrays["metadata"], dtype=np.float32)
        if metadata.shape != (n, NUM_METADATA):
            raise EdgepedError(
                f"metadata has shape {metadata.shape}, expected ({n}, {NUM_METADATA})",
                f"give the fields {', '.join(METADATA_FIELDS)}; NaN where missing",
            )
        if np.isinf(metadata).any():
            rows, cols = np.nonzero(np.isinf(metadata))
            raise EdgepedError(
                f"metadata contains +/-inf ({rows.size} value(s), first: "
                f"{METADATA_FIELDS[cols[0]]} of record {rows[0]}"
                + (f", crop {arrays['crop_id'][rows[0]]}" if "crop_id" in arrays else "")
                + ")",
                "use NaN (an empty value) for a missing value",
            )
        labels = np.asarray(arrays["labels"]).astype(np.int64)
        if labels.shape != (n,) or not np.isin(labels, (0, 1)).all():
            raise EdgepedError(
                "labels must be a length-N vector of 0 (background) and 1 (pedestrian)",
                "map your classes to 0/1 before import",
            )
        fields = {}
        for name, vocab in TAG_VOCABULARIES.items():
            values = np.asarray(arrays[name]).astype(str)
            if values.shape != (n,):
                raise EdgepedError(f"tag {name} has shape {values.shape}, expected ({n},)")
            bad = sorted(set(np.unique(values)) - set(vocab))
            if bad:
                raise EdgepedError(
                    f"unknown {name} value(s) {bad[:5]}", f"use one of {', '.join(vocab)}"
                )
            fields[name] = values
        ids = {k: np.asarray(arrays[k]).astype(str) for k in ("drive_id", "crop_id")}
        return cls(images=images, metadata=metadata, labels=labels, **fields, **ids)

    def take(self, index: np.ndarray) -> CropBatch:
        return CropBatch(**{f: getattr(self, f)[index] for f in _FIELDS})

    @classmethod
    def concat(cls, batches: list[CropBatch]) -> CropBatch:
        if not batches:
            raise EdgepedError("no records to combine", "the dataset split is empty")
        return cls(**{f: np.concatenate([getattr(b, f) for b in batches]) for f in _FIELDS})


_FIELDS = ("images", "metadata", "labels", *TAG_FIELDS, "drive_id", "crop_id")
