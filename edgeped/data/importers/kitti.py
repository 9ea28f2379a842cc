"""KITTI object label files -> `Frame`s.

One `<frame>.txt` per image in the label folder, one object per line with 15
space-separated fields (a 16th, a score, is allowed): type, truncated, occluded,
alpha, bbox left/top/right/bottom (pixels), 3-D size and location, rotation_y.
`Pedestrian` boxes are people, `Cyclist` boxes give cyclist negatives, and
`Person_sitting` and `DontCare` areas are ignore regions (never a negative's
content). The image is `<frame>.png` (or .jpg) in the image folder.
"""

from __future__ import annotations

import math
from pathlib import Path

from edgeped.data.importers.frames import Frame
from edgeped.errors import EdgepedError
from edgeped.paths import resolve_inside

PEOPLE, CYCLISTS, IGNORE = {"Pedestrian"}, {"Cyclist"}, {"Person_sitting", "DontCare"}
KNOWN_TYPES = {"Car", "Van", "Truck", "Tram", "Misc", *PEOPLE, *CYCLISTS, *IGNORE}
_FIX = (
    "each line: type truncated occluded alpha left top right bottom h w l x y z rotation_y [score]"
)


def parse_label_file(path: Path) -> tuple[list, list, list]:
    """Returns (people, cyclists, ignore) boxes of one label file.

    Raises:
        EdgepedError: a line has the wrong number of fields, a non-numeric or
            non-finite value, an inverted box, or an unknown object type.
    """
    people, cyclists, ignore = [], [], []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EdgepedError(f"{path} is not a text label file ({exc})", _FIX) from exc
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{path}:{lineno}"
        if len(fields) not in (15, 16):
            raise EdgepedError(
                f"{where} has {len(fields)} fields, expected 15 (or 16 with a score)", _FIX
            )
        kind = fields[0]
        if kind not in KNOWN_TYPES:
            raise EdgepedError(
                f"{where} has unknown object type {kind!r}",
                f"use one of {', '.join(sorted(KNOWN_TYPES))}",
            )
        try:
            values = [float(v) for v in fields[1:]]
        except ValueError as exc:
            raise EdgepedError(f"{where} has a non-numeric field ({exc})", _FIX) from exc
        if not all(math.isfinite(v) for v in values):
            raise EdgepedError(f"{where} has a non-finite value", _FIX)
        left, top, right, bottom = values[3:7]
        if right <= left or bottom <= top:
            raise EdgepedError(
                f"{where} has an empty or inverted box "
                f"(left {left}, top {top}, right {right}, bottom {bottom})",
                _FIX,
            )
        box = (left, top, right, bottom)
        if kind in PEOPLE:
            people.append(box)
        elif kind in CYCLISTS:
            cyclists.append(box)
        elif kind in IGNORE:
            ignore.append(box)
    return people, cyclists, ignore


def load_kitti(labels_dir: str | Path, images_dir: str | Path) -> list[Frame]:
    """Reads every label file of a KITTI folder into frames.

    Raises:
        EdgepedError: the folder is missing or empty, a label file is malformed,
            or a frame's image is missing.
    """
    labels, images = Path(labels_dir), Path(images_dir)
    if not labels.is_dir():
        raise EdgepedError(
            f"KITTI label folder not found: {labels}", "point at label_2/ (one .txt per frame)"
        )
    files = sorted(labels.glob("*.txt"))
    if not files:
        raise EdgepedError(
            f"{labels} holds no .txt label files", "point at label_2/ (one .txt per frame)"
        )
    frames = []
    for f in files:
        resolve_inside(labels, f.name, what="label file")
        people, cyclists, ignore = parse_label_file(f)
        image = next(
            (
                resolve_inside(images, f"{f.stem}{ext}", what="image")
                for ext in (".png", ".jpg", ".jpeg")
                if (images / f"{f.stem}{ext}").is_file() or (images / f"{f.stem}{ext}").is_symlink()
            ),
            None,
        )
        if image is None:
            raise EdgepedError(
                f"no image for label file {f.name} in {images} (.png/.jpg)",
                "point --images at image_2/",
            )
        frames.append(
            Frame(image=image, people=tuple(people), ignore=tuple(ignore), cyclists=tuple(cyclists))
        )
    return frames
