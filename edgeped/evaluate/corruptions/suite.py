"""Running the suite: a crop under one corruption and severity, the names a run asks
for, the families a recipe trained on, and the parameter tables the docs show."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from edgeped.errors import EdgepedError
from edgeped.evaluate.corruptions.camera import H, W, to_linear, to_u8
from edgeped.evaluate.corruptions.registry import CORRUPTIONS, SEVERITIES


def family_split(augment: dict[str, Any], names: tuple[str, ...] | None = None) -> dict:
    """Which families a recipe trained on and which it held out.

    A family counts as trained on when any augmentation in its `augment_keys` is on
    (a probability or pixel count above 0) in the run's [augment] table; the held-out
    families measure robustness to shifts the model never saw imitated.
    """
    names = tuple(CORRUPTIONS) if names is None else names
    trained = [
        n for n in names if any(float(augment.get(k) or 0) > 0 for k in CORRUPTIONS[n].augment_keys)
    ]
    return {"trained": trained, "held_out": [n for n in names if n not in trained]}


def crop_rng(crop_id: str, name: str, severity: int, seed: int = 0) -> np.random.Generator:
    """The random stream of one crop under one corruption and severity."""
    digest = hashlib.sha256(f"{seed}|{name}|{severity}|{crop_id}".encode()).digest()
    return np.random.default_rng(np.frombuffer(digest[:16], dtype=np.uint32).tolist())


def parse_corruptions(spec: str) -> tuple[str, ...]:
    """`all` or a comma list of corruption names -> the names, in order, without repeats.

    Raises:
        EdgepedError: an empty list or an unknown name.
    """
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    if names == ("all",):
        return tuple(CORRUPTIONS)
    if not names:
        raise EdgepedError(
            "no corruption named", f"pass all or a comma list of: {', '.join(CORRUPTIONS)}"
        )
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown:
        raise EdgepedError(
            f"unknown corruption(s) {', '.join(unknown)}",
            f"use all or a comma list of: {', '.join(CORRUPTIONS)}",
        )
    return tuple(dict.fromkeys(names))


def corrupt(
    image: np.ndarray, metadata: np.ndarray, crop_id: str, name: str, severity: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """One crop (HxWx3 uint8) and its metadata (6,) under one corruption and severity.

    Returns:
        The corrupted uint8 crop and a new metadata vector (the input is not changed).

    Raises:
        EdgepedError: an unknown corruption, a severity outside 1-5, a crop of the wrong shape.
    """
    if name not in CORRUPTIONS:
        raise EdgepedError(f"unknown corruption {name!r}", f"use one of: {', '.join(CORRUPTIONS)}")
    spec = CORRUPTIONS[name]
    params = spec.params(severity)
    if image.shape != (H, W, 3) or image.dtype != np.uint8:
        raise EdgepedError(
            f"a crop must be uint8 of shape ({H}, {W}, 3), got {image.dtype} {image.shape}",
            "pass crops as the dataset stores them",
        )
    meta = np.array(metadata, np.float32, copy=True)
    lin = spec.apply(to_linear(image), meta, crop_rng(crop_id, name, severity, seed), params)
    return to_u8(lin), meta


def corrupt_batch(
    images: np.ndarray,
    metadata: np.ndarray,
    crop_ids: np.ndarray,
    name: str,
    severity: int,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """`corrupt` over a batch (N, H, W, 3) uint8 + (N, 6); same bytes as one crop at a time."""
    out = np.empty_like(images)
    meta = np.empty_like(np.asarray(metadata, np.float32))
    for i in range(images.shape[0]):
        out[i], meta[i] = corrupt(images[i], metadata[i], str(crop_ids[i]), name, severity, seed)
    return out, meta


def parameter_table_markdown() -> str:
    """Every corruption's parameters per severity as Markdown (the tables in docs)."""
    parts = []
    for spec in CORRUPTIONS.values():
        keys = list(spec.severities[0])
        lines = [
            f"### `{spec.name}`",
            "",
            spec.models[0].upper() + spec.models[1:] + ".",
            "",
            f"Metadata: {spec.metadata or 'unchanged'}. "
            f"Closest training augmentation: {spec.related_augmentation or 'none'}.",
            "",
            "| severity | " + " | ".join(keys) + " |",
            "|---:|" + "---:|" * len(keys),
        ]
        for s, row in zip(SEVERITIES, spec.severities, strict=True):
            lines.append(f"| {s} | " + " | ".join(f"{row[k]:g}" for k in keys) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
