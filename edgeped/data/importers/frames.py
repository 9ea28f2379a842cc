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


# Crops of one kind cut per person or per frame: past this a frame's crops no longer fit
# in memory, and the value is a typo.
MAX_CROPS_PER_KIND = 1000


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
            if getattr(self, name) > MAX_CROPS_PER_KIND:
                raise ValueError(
                    f"{name} must be <= {MAX_CROPS_PER_KIND} (crops cut per person or frame), "
                    f"got {getattr(self, name)}"
                )
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
    """The frame as uint8 RGB, EXIF-oriented, deep images scaled (importers.images)."""
    from edgeped.data.importers.images import load_rgb

    return load_rgb(path)


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
    """The frame's (width, height) as shown, after its EXIF orientation (header only)."""
    from edgeped.data.importers.images import image_size

    return image_size(frame.image)


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


def check_splits_filled(frames: list[Frame], source_name: str, fractions) -> None:
    """Raises EdgepedError when a required split would get none of the images.

    Images are split whole, by a hash of `source_name:stem`, so a small set can leave
    val or test empty; the message says which and how to fix it.
    """
    from edgeped.data.shards import default_required_splits, split_for_drive

    got = {split_for_drive(f"{source_name}:{f.image.stem}", fractions) for f in frames}
    empty = [s for s in default_required_splits(fractions) if s not in got]
    if empty:
        raise EdgepedError(
            f"the {' and '.join(empty)} split(s) would be empty: {len(frames)} image(s) "
            "are split by source image (whole images, by a hash of their name)",
            "import more images (train, val and test take "
            + ", ".join(f"{f:.0%}" for f in fractions)
            + " of them; --split-fractions sets the shares)",
        )


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
    from edgeped.data.shards import (
        DEFAULT_SPLIT_FRACTIONS,
        check_split_fractions,
        default_required_splits,
    )
    from edgeped.data.writer import DatasetWriter

    fractions = split_fractions or DEFAULT_SPLIT_FRACTIONS
    check_split_fractions(fractions)
    frames = check_frames(frames)
    required = default_required_splits(fractions)
    check_splits_filled(frames, config.source_name, fractions)
    totals = dict(positives=0, jittered=0, near_misses=0, cyclists=0, background=0, skipped_small=0)
    with DatasetWriter(
        out_dir,
        source={**source, "import_config": config.to_dict()},
        overwrite=overwrite,
        shard_records=4096,
        split_fractions=fractions,
        required_splits=required,
    ) as writer:
        for i, frame in enumerate(frames, start=1):
            batch, counts = frame_batch(frame, config)
            if batch is not None:
                writer.add(batch)
            for k, v in counts.items():
                totals[k] += v
            if progress:
                progress(i, len(frames))
        return ImportSummary(manifest=writer.close(), frames=len(frames), **totals)


# A box may stick out of its image by this many pixels (rounding in the annotation tool).
BOX_TOLERANCE_PX = 1.0


def check_frames(frames: list[Frame]) -> list[Frame]:
    """Checks every frame before anything is written; returns them with their sizes read.

    Reads each image's header (not its pixels) and its bytes' sha256.

    Raises:
        EdgepedError: no frames; an image missing or unreadable; a declared size
            that differs from the file's; a box that is not finite or lies
            outside its image; two frames with the same image (by path, name or
            content), whose crops would repeat or leak across splits.
    """
    from edgeped.fileio import sha256_file

    if not frames:
        raise EdgepedError("the annotations list no images", "check the annotation file")
    missing = [str(f.image) for f in frames if not f.image.is_file()]
    if missing:
        raise EdgepedError(
            f"{len(missing)} image(s) named in the annotations are missing, e.g. "
            f"{', '.join(missing[:3])}",
            "check --images points at the frames",
        )
    by_name: dict[str, Path] = {}
    by_content: dict[str, Path] = {}
    checked = []
    for frame in frames:
        if by_name.get(frame.image.stem) == frame.image:
            raise EdgepedError(
                f"the annotations list the image {frame.image} twice: its crops would repeat",
                "merge its entries into one (one entry per image, all its boxes)",
            )
        previous = by_name.setdefault(frame.image.stem, frame.image)
        if previous != frame.image:
            raise EdgepedError(
                f"two frames use the image name {frame.image.stem!r} ({previous}, {frame.image}): "
                "their crops would get the same ids",
                "list each image once, and give different images different names",
            )
        digest = sha256_file(frame.image)
        twin = by_content.setdefault(digest, frame.image)
        if twin != frame.image:
            raise EdgepedError(
                f"{frame.image} and {twin} are the same image: its crops would be imported "
                "twice, and could land in two splits",
                "remove the copy from the annotations",
            )
        actual = _frame_size(frame)
        if frame.size is not None and tuple(frame.size) != tuple(actual):
            raise EdgepedError(
                f"{frame.image} is {actual[0]}x{actual[1]} pixels but the annotations "
                f"declare {frame.size[0]}x{frame.size[1]}",
                "fix the image's width/height in the annotations, or point --images at "
                "the images they were made for",
            )
        for kind in ("people", "ignore", "cyclists"):
            for box in getattr(frame, kind):
                _check_box(frame.image, kind, box, actual)
        checked.append(Frame(frame.image, frame.people, frame.ignore, frame.cyclists, actual))
    return checked


def _check_box(image: Path, kind: str, box: tuple, size: tuple[int, int]) -> None:
    import math

    x0, y0, x1, y1 = box
    w, h = size
    t = BOX_TOLERANCE_PX
    if not all(math.isfinite(v) for v in box) or not (
        -t <= x0 < x1 <= w + t and -t <= y0 < y1 <= h + t
    ):
        raise EdgepedError(
            f"{image}: a {_KIND_NAMES[kind]} box (x0 {x0:g}, y0 {y0:g}, x1 {x1:g}, y1 {y1:g}) lies outside "
            f"the {w}x{h} image",
            "boxes are in pixels of their own image: check the box and that it belongs to "
            "this image",
        )


_KIND_NAMES = {"people": "person", "ignore": "ignore-region", "cyclists": "cyclist"}
