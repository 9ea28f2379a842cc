"""The crops a run feeds the model: a .npz pushed with it, or random ones."""

from __future__ import annotations

import os

from .common import IMAGE_SHAPE, META_FEATURES, RunnerError, sha256_file


def load_crops(path, np, count: int, seed: int):
    """Returns (images uint8 [N,128,64,3], metadata float32 [N,6], description)."""
    if path is None:
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, size=(count, *IMAGE_SHAPE), dtype=np.uint8)
        metadata = rng.normal(size=(count, META_FEATURES)).astype(np.float32)
        metadata[rng.random(metadata.shape) < 0.1] = np.nan
        return images, metadata, {"source": "random", "seed": seed, "count": count}
    if not os.path.isfile(path):
        raise RunnerError(
            "crops_missing",
            f"crops file not found: {path}",
            "push the .npz with the model or run without --crops",
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            images = npz["images"]
            metadata = npz["metadata"] if "metadata" in npz.files else None
    except (OSError, ValueError, KeyError) as exc:
        raise RunnerError(
            "crops_invalid",
            f"cannot read crops {path}: {exc}",
            "the .npz needs 'images' uint8 [N,128,64,3] and 'metadata' float32 [N,6]",
        ) from exc
    if (
        images.dtype != np.uint8
        or images.ndim != 4
        or tuple(images.shape[1:]) != IMAGE_SHAPE
        or len(images) == 0
    ):
        raise RunnerError(
            "crops_invalid",
            f"crops 'images' is {images.dtype} {list(images.shape)}",
            "images must be uint8 [N,128,64,3] with N >= 1",
        )
    if metadata is None:
        metadata = np.full((len(images), META_FEATURES), np.nan, dtype=np.float32)
    if metadata.shape != (len(images), META_FEATURES):
        raise RunnerError(
            "crops_invalid",
            f"crops 'metadata' is {list(metadata.shape)}",
            f"metadata must be float32 [{len(images)},6] (NaN = missing)",
        )
    return (
        images,
        metadata.astype(np.float32),
        {"source": path, "sha256": sha256_file(path), "count": int(len(images))},
    )


def batches(images, metadata, batch: int, np):
    """Yields (crops, metadata) batches in order, cycling, forever."""
    n = len(images)
    start = 0
    while True:
        idx = np.arange(start, start + batch) % n
        yield images[idx], metadata[idx]
        start = (start + batch) % n
