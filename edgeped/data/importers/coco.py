"""COCO detection JSON -> `Frame`s (person boxes, crowds as ignore regions).

Accepted: `images` (id, file_name, optional width/height), `annotations` (image_id,
category_id, bbox = [x, y, width, height] in pixels, optional iscrowd) and
`categories` (id, name). People are annotations whose category name is one of
`person_categories`; crowd annotations (iscrowd = 1) become ignore regions; a
category named "cyclist"/"rider" (if present) gives cyclist negatives.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from edgeped.data.importers.frames import Frame
from edgeped.errors import EdgepedError

PERSON_CATEGORIES = ("person", "pedestrian")
CYCLIST_CATEGORIES = ("cyclist", "rider")


def _bad(path: Path, problem: str) -> EdgepedError:
    return EdgepedError(
        f"{path}: {problem}",
        "give a COCO detection file: images[{id, file_name}], "
        "annotations[{image_id, category_id, bbox: [x, y, w, h]}], categories[{id, name}]",
    )


def load_coco(
    annotations: str | Path,
    images_dir: str | Path,
    person_categories: tuple[str, ...] = PERSON_CATEGORIES,
) -> list[Frame]:
    """Reads a COCO JSON file into frames, one per image (images without people included).

    Raises:
        EdgepedError: the file is missing, not JSON, lacks a required key, has a
            malformed bbox, points at an unknown image, or has no person category.
    """
    path = Path(annotations)
    if not path.is_file():
        raise EdgepedError(f"COCO file not found: {path}", "check the path to the annotations JSON")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _bad(path, f"top level is a {type(data).__name__}, expected an object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise _bad(path, f"missing or non-list key {key!r}")
    wanted = {c.lower() for c in person_categories}
    try:
        categories = {int(c["id"]): str(c["name"]).lower() for c in data["categories"]}
        images: dict[int, dict] = {}
        for im in data["images"]:
            image_id = int(im["id"])
            if image_id in images:
                raise _bad(path, f"image id {image_id} is listed twice in images")
            images[image_id] = im
            if not isinstance(im["file_name"], str) or not im["file_name"]:
                raise _bad(path, f"image {im['id']} has no file_name")
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"a category or image entry lacks id/name/file_name ({exc!r})") from exc
    person_ids = {cid for cid, name in categories.items() if name in wanted}
    cyclist_ids = {cid for cid, name in categories.items() if name in CYCLIST_CATEGORIES}
    if not person_ids:
        raise EdgepedError(
            f"{path}: no category named {sorted(wanted)} (has {sorted(categories.values())})",
            "pass --category with the name your file uses for people",
        )
    boxes: dict[int, dict[str, list]] = {
        i: {"people": [], "ignore": [], "cyclists": []} for i in images
    }
    for n, ann in enumerate(data["annotations"]):
        where = f"annotation #{n} (id {ann.get('id', '?') if isinstance(ann, dict) else '?'})"
        if not isinstance(ann, dict):
            raise _bad(path, f"{where} is not an object")
        try:
            image_id, category = int(ann["image_id"]), int(ann["category_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad(path, f"{where} lacks image_id/category_id") from exc
        if image_id not in images:
            raise _bad(path, f"{where} refers to image_id {image_id}, which is not in images")
        if category not in person_ids and category not in cyclist_ids:
            continue
        bbox = ann.get("bbox")
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)
        ):
            raise _bad(path, f"{where} has bbox {bbox!r}; expected [x, y, width, height] numbers")
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            raise _bad(path, f"{where} has a non-positive box size {w}x{h}")
        box = (x, y, x + w, y + h)
        kind = (
            "cyclists"
            if category in cyclist_ids
            else "ignore"
            if ann.get("iscrowd", 0)
            else "people"
        )
        boxes[image_id][kind].append(box)
    from edgeped.paths import resolve_inside

    root = Path(images_dir)
    frames = []
    for image_id, im in sorted(images.items()):
        size = _declared_size(path, image_id, im)
        frames.append(
            Frame(
                image=resolve_inside(root, im["file_name"], what="image file_name", source=path),
                people=tuple(boxes[image_id]["people"]),
                ignore=tuple(boxes[image_id]["ignore"]),
                cyclists=tuple(boxes[image_id]["cyclists"]),
                size=size,
            )
        )
    return frames


def _declared_size(path: Path, image_id: int, im: dict) -> tuple[int, int] | None:
    """The image's declared (width, height), or None when the entry gives neither."""
    if im.get("width") is None and im.get("height") is None:
        return None
    values = (im.get("width"), im.get("height"))
    if not all(
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
        and v == int(v)
        and 0 < v <= 1_000_000
        for v in values
    ):
        raise _bad(
            path,
            f"image {image_id} declares width {values[0]!r}, height {values[1]!r}; "
            "expected two positive whole numbers of pixels (or neither)",
        )
    return int(values[0]), int(values[1])
