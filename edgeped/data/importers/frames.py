"""Full frames with person boxes -> proposal crops in the edgeped dataset format.

COCO and KITTI readers turn their files into `Frame`s; `import_frames` cuts
positives, jittered copies, near misses and background windows from each frame
(rules in `geometry`) and writes them with `DatasetWriter`. Every crop of a frame
carries the frame as its drive id, so splits are by source image, never by crop.
Sources do not say lighting, weather or scene ("unknown") and carry no metadata (NaN).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeped.data.importers.geometry import (
    WindowRules,
    background_windows,
    extract_crop,
    jitter_windows,
    near_miss_windows,
    window_from_box,
)
from edgeped.data.schema import CROP_SHAPE, NUM_METADATA, CropBatch
from edgeped.errors import EdgepedError


@dataclass(frozen=True)
class Frame:
    """One source image and what is annotated in it."""

    image: Path
    people: tuple = ()  # person boxes (x0, y0, x1, y1): positives when tall enough
    ignore: tuple = ()  # crowds, sitting people, don't-care areas: never a negative's content
    cyclists: tuple = ()  # cyclist boxes: near-miss negatives of kind "cyclist"
    size: tuple[int, int] | None = None  # (width, height); read from the image header if None


@dataclass(frozen=True)
class FrameImportConfig:
    """How many crops to cut per frame and by which window rules."""

    rules: WindowRules = field(default_factory=WindowRules)
    jitter_copies: int = 2
    near_miss_per_person: int = 2
    background_per_frame: int = 6
    seed: int = 0
    source_name: str = "frames"

    def __post_init__(self) -> None:
        for name in ("jitter_copies", "near_miss_per_person", "background_per_frame"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.source_name or "/" in self.source_name:
            raise ValueError(
                f"source_name must be a non-empty name without '/', got {self.source_name!r}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "frame import config") -> FrameImportConfig:
        """Builds the config from a mapping (the one config loader: edgeped.config)."""
        from edgeped.config import from_mapping

        return from_mapping(cls, data, where=where)


@dataclass
class ImportSummary:
    manifest: dict
    frames: int
    positives: int
    jittered: int
    near_misses: int
    cyclists: int
    background: int
    skipped_small: int


def _frame_rng(config: FrameImportConfig, name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{config.seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _load_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError as exc:
        raise EdgepedError(
            f"image not found: {path}", "check --images points at the frames"
        ) from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise EdgepedError(
            f"cannot read image {path} ({exc})", "replace or remove the damaged file"
        ) from exc


def crops_for_frame(frame: Frame, config: FrameImportConfig) -> tuple[list, dict[str, int]]:
    """The windows of one frame as (window, label, kind) and counts per kind.

    Pure geometry (no pixels are read; only the image header when `frame.size` is
    None), so the rules can be tested on hand-made boxes.
    """
    rules = config.rules
    rng = _frame_rng(config, frame.image.name)
    people = np.array(frame.people, np.float64).reshape(-1, 4)
    avoid = np.concatenate([people, np.array(frame.ignore, np.float64).reshape(-1, 4)])
    out: list[tuple[tuple, int, str]] = []
    counts = dict(positives=0, jittered=0, near_misses=0, cyclists=0, background=0, skipped_small=0)
    tall = [tuple(b) for b in people if b[3] - b[1] >= rules.min_height]
    counts["skipped_small"] = len(people) - len(tall)
    size = frame.size or _frame_size(frame)
    for box in tall:
        out.append((window_from_box(box, rules.margin), 1, "none"))
        counts["positives"] += 1
        for w in jitter_windows(box, rules, rng, config.jitter_copies):
            out.append((w, 1, "none"))
            counts["jittered"] += 1
        for w in near_miss_windows(box, avoid, rules, rng, config.near_miss_per_person, size):
            out.append((w, 0, "partial_person"))
            counts["near_misses"] += 1
    for box in frame.cyclists:
        if box[3] - box[1] >= rules.min_height:
            out.append((window_from_box(tuple(box), rules.margin), 0, "cyclist"))
            counts["cyclists"] += 1
    heights = [b[3] - b[1] for b in tall] or [rules.min_height * 3]
    lo = rules.min_height * (1 + 2 * rules.margin)
    hi = max(max(heights) * (1 + 2 * rules.margin), lo * 2)
    for w in background_windows(avoid, rules, rng, config.background_per_frame, size, (lo, hi)):
        out.append((w, 0, "background"))
        counts["background"] += 1
    return out, counts


def _frame_size(frame: Frame) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(frame.image) as img:
            return img.size
    except FileNotFoundError as exc:
        raise EdgepedError(
            f"image not found: {frame.image}", "check --images points at the frames"
        ) from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise EdgepedError(
            f"cannot read image {frame.image} ({exc})", "replace or remove the damaged file"
        ) from exc


def frame_batch(frame: Frame, config: FrameImportConfig) -> tuple[CropBatch | None, dict[str, int]]:
    """Cuts one frame's crops into a CropBatch (None if the frame gives no crops)."""
    windows, counts = crops_for_frame(frame, config)
    if not windows:
        return None, counts
    pixels = _load_image(frame.image)
    n = len(windows)
    images = np.empty((n, *CROP_SHAPE), np.uint8)
    for i, (w, _, _) in enumerate(windows):
        images[i] = extract_crop(pixels, w)
    drive = f"{config.source_name}:{frame.image.stem}"
    return CropBatch.validated(
        images=images,
        metadata=np.full((n, NUM_METADATA), np.nan, np.float32),
        labels=np.array([lab for _, lab, _ in windows]),
        lighting=np.full(n, "unknown"),
        weather=np.full(n, "unknown"),
        scene=np.full(n, "unknown"),
        hard_negative=np.array([k for _, _, k in windows]),
        drive_id=np.full(n, drive),
        crop_id=np.array(
            [
                f"{drive}:{i:04d}:{int(w[0])},{int(w[1])},{int(w[2] - w[0])},{int(w[3] - w[1])}"
                for i, (w, _, _) in enumerate(windows)
            ]
        ),
    ), counts


def import_frames(
    frames: list[Frame],
    out_dir: str,
    config: FrameImportConfig,
    *,
    source: dict,
    overwrite: bool = False,
    split_fractions: tuple[float, float, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Writes the crops of every frame as a dataset, split by source image.

    Raises:
        EdgepedError: no frames, an unreadable image, or no crops at all.
    """
    from edgeped.data.shards import DEFAULT_SPLIT_FRACTIONS, DatasetWriter

    if not frames:
        raise EdgepedError("the annotations list no images", "check the annotation file")
    missing = [str(f.image) for f in frames if not f.image.is_file()]
    if missing:
        raise EdgepedError(
            f"{len(missing)} image(s) named in the annotations are missing, e.g. "
            f"{', '.join(missing[:3])}",
            "check --images points at the frames",
        )
    writer = DatasetWriter(
        out_dir,
        source={**source, "import_config": config.to_dict()},
        overwrite=overwrite,
        shard_records=4096,
        split_fractions=split_fractions or DEFAULT_SPLIT_FRACTIONS,
    )
    totals = dict(positives=0, jittered=0, near_misses=0, cyclists=0, background=0, skipped_small=0)
    for i, frame in enumerate(frames, start=1):
        batch, counts = frame_batch(frame, config)
        if batch is not None:
            writer.add(batch)
        for k, v in counts.items():
            totals[k] += v
        if progress:
            progress(i, len(frames))
    return ImportSummary(manifest=writer.close(), frames=len(frames), **totals)
