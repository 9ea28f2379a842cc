"""A folder of crops with a CSV manifest -> an edgeped dataset.

Columns (header row required):
- `path` (required): image file, relative to the CSV's folder (an absolute path
  must lie inside that folder too; `..` and symlinks leading out are refused);
  any size, resized to 128x64 (HxW) RGB.
- `label` (required): 1/0, or pedestrian/background.
- `split` (optional): train/val/test. If given it must be set on every row and is
  used as is; otherwise whole groups (`drive_id`) are assigned by a stable hash.
- `drive_id` (optional): the group crops must not be split across (a drive, a
  source image); without it each crop's source folder is its group.
- `lighting`, `weather`, `scene`, `hard_negative` (optional): slice tags from the
  schema vocabularies; empty or absent means "unknown" ("none" for a positive's kind).
- metadata columns (optional): any of speed_mps, yaw_rate_rps, exposure_ms,
  tod_sin, tod_cos, analog_gain_db; empty means missing (NaN).

Every row is checked before anything is written: all problems are reported at
once (up to a few examples each), and a bad file leaves no dataset behind (nor
touches the one already in OUT_DIR). Refused: a row with more fields than the
header, the same image listed twice (its crop id would repeat), the same image
content in two splits or with two labels (a copy under another name included),
a drive_id in two splits, and a split that would come out empty.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeped.data.schema import (
    CROP_HEIGHT,
    CROP_WIDTH,
    METADATA_BOUNDS,
    METADATA_FIELDS,
    TAG_VOCABULARIES,
    TOD_UNIT_TOLERANCE,
    CropBatch,
)
from edgeped.errors import EdgepedError

LABELS = {"1": 1, "0": 0, "pedestrian": 1, "background": 0, "person": 1, "true": 1, "false": 0}
_CHUNK = 1024


def _read_rows(csv_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not csv_path.is_file():
        raise EdgepedError(f"CSV manifest not found: {csv_path}", "check the path")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = [h.strip() for h in (reader.fieldnames or [])]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise EdgepedError(
            f"cannot parse {csv_path} as CSV ({exc})", "save it as UTF-8 CSV with a header"
        ) from exc
    long = [
        f"row {i + 2} has {len(header) + len(r[None])} fields"
        for i, r in enumerate(rows)
        if r.get(None)
    ]
    if long:
        raise EdgepedError(
            f"{csv_path}: {len(long)} row(s) have more fields than the header's {len(header)} "
            f"({', '.join(long[:3])})",
            "quote values that contain commas, or add the missing column names to the header",
        )
    rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in rows]
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise EdgepedError(
            f"{csv_path}: the header names column(s) {duplicated} more than once",
            "give every column its own name",
        )
    return header, rows


def _validate(csv_path: Path, header: list[str], rows: list[dict[str, str]]) -> list[str]:
    problems: list[str] = []
    for col in ("path", "label"):
        if col not in header:
            raise EdgepedError(
                f"{csv_path} has no {col!r} column (columns: {header})",
                "add a header row with at least path,label",
            )
    if not rows:
        raise EdgepedError(f"{csv_path} lists no crops", "add one row per crop")
    if "split" in header:
        empty = [i + 2 for i, r in enumerate(rows) if not r["split"]]
        if empty and len(empty) != len(rows):
            problems.append(
                f"split is empty on rows {empty[:5]} but set on others: set it on every row or none"
            )

    def check(name: str, bad: list[str]) -> None:
        if bad:
            problems.append(f"{name} on {len(bad)} row(s), e.g. {'; '.join(bad[:3])}")

    check(
        "unknown label (use 1/0 or pedestrian/background)",
        [
            f"row {i + 2}: {r['label']!r}"
            for i, r in enumerate(rows)
            if r["label"].lower() not in LABELS
        ],
    )
    if "split" in header:
        check(
            "unknown split (use train/val/test)",
            [
                f"row {i + 2}: {r['split']!r}"
                for i, r in enumerate(rows)
                if r["split"] and r["split"] not in ("train", "val", "test")
            ],
        )
    for tag, vocab in TAG_VOCABULARIES.items():
        if tag in header:
            check(
                f"unknown {tag} (use {', '.join(vocab)})",
                [
                    f"row {i + 2}: {r[tag]!r}"
                    for i, r in enumerate(rows)
                    if r[tag] and r[tag] not in vocab
                ],
            )
    for name in METADATA_FIELDS:
        if name in header:
            check(
                f"non-numeric or non-finite {name}",
                [
                    f"row {i + 2}: {r[name]!r}"
                    for i, r in enumerate(rows)
                    if r[name] and not _is_number(r[name])
                ],
            )
            lo, hi = METADATA_BOUNDS[name]
            check(
                f"{name} outside its physical range [{lo:g}, {hi:g}]",
                [
                    f"row {i + 2}: {r[name]}"
                    for i, r in enumerate(rows)
                    if r[name] and _is_number(r[name]) and not lo <= float(r[name]) <= hi
                ],
            )
    if "tod_sin" in header and "tod_cos" in header:
        check(
            "tod_sin and tod_cos not a point of the unit circle (sin^2 + cos^2 should be 1)",
            [
                f"row {i + 2}: {r['tod_sin']}, {r['tod_cos']}"
                for i, r in enumerate(rows)
                if _is_number(r["tod_sin"])
                and _is_number(r["tod_cos"])
                and abs(float(r["tod_sin"]) ** 2 + float(r["tod_cos"]) ** 2 - 1)
                > TOD_UNIT_TOLERANCE
            ],
        )
    check("empty path", [f"row {i + 2}" for i, r in enumerate(rows) if not r["path"]])
    outside = [
        f"row {i + 2}: {r['path']}"
        for i, r in enumerate(rows)
        if r["path"] and _escapes(csv_path, r["path"])
    ]
    if outside:
        raise EdgepedError(
            f"{csv_path}: {len(outside)} image path(s) lie outside the CSV's folder "
            f"{csv_path.parent} (through '..', an absolute path or a symlink), e.g. "
            f"{'; '.join(outside[:3])}",
            "put the images in the CSV's folder (or below it) and name them relative to it",
        )
    check(
        "missing image file",
        [
            f"row {i + 2}: {r['path']}"
            for i, r in enumerate(rows)
            if r["path"] and not _resolve(csv_path, r["path"]).is_file()
        ],
    )
    first: dict[Path, int] = {}
    repeated = []
    for i, r in enumerate(rows):
        if not r["path"]:
            continue
        key = _resolve(csv_path, r["path"]).resolve()
        if first.setdefault(key, i) != i:
            repeated.append(f"row {i + 2} repeats row {first[key] + 2} ({r['path']})")
    check("the same image listed twice (its crop id would repeat)", repeated)
    return problems


def _names_splits(header: list[str], rows: list[dict[str, str]]) -> bool:
    """Whether the CSV gives each row's split (a filled `split` column)."""
    return "split" in header and bool(rows[0]["split"])


def _splits_and_leaks(
    csv_path: Path,
    header: list[str],
    rows: list[dict[str, str]],
    fractions: tuple[float, float, float],
) -> tuple[list[str], list[str]]:
    """Each row's split, and the leaks found: a drive or an image's content in two splits.

    The split is the row's own (a `split` column) or its drive's (by hash). The
    content of every image file is hashed, so a copy of a training crop under
    another name is caught in val or test too, as is one image given two labels.
    """
    from edgeped.data.shards import split_for_drive

    explicit = _names_splits(header, rows)
    drives = [_drive(csv_path, r) for r in rows]
    splits = [
        r["split"] if explicit else split_for_drive(d, fractions)
        for r, d in zip(rows, drives, strict=True)
    ]
    problems = []
    if explicit and "drive_id" in header:
        where: dict[str, tuple[str, int]] = {}
        bad = []
        for i, (d, split) in enumerate(zip(drives, splits, strict=True)):
            known = where.setdefault(d, (split, i))
            if known[0] != split:
                bad.append(f"drive {d!r}: row {known[1] + 2} in {known[0]}, row {i + 2} in {split}")
        if bad:
            problems.append(
                f"a drive in two splits leaks it into evaluation ({len(bad)} row(s)), "
                f"e.g. {'; '.join(bad[:3])}"
            )
    seen: dict[str, tuple[int, str, str]] = {}
    leaks, conflicts = [], []
    for i, r in enumerate(rows):
        digest = _file_sha256(_resolve(csv_path, r["path"]))
        label = str(LABELS[r["label"].lower()])
        known = seen.setdefault(digest, (i, splits[i], label))
        if known[1] != splits[i]:
            leaks.append(
                f"row {i + 2} ({splits[i]}) is the same image as row {known[0] + 2} ({known[1]})"
            )
        elif known[2] != label:
            conflicts.append(
                f"row {i + 2} (label {label}) is the same image as row {known[0] + 2} "
                f"(label {known[2]})"
            )
    if leaks:
        problems.append(
            f"the same image in two splits leaks it into evaluation ({len(leaks)} row(s)), "
            f"e.g. {'; '.join(leaks[:3])}"
        )
    if conflicts:
        problems.append(
            f"the same image with two labels ({len(conflicts)} row(s)), e.g. "
            f"{'; '.join(conflicts[:3])}"
        )
    return splits, problems


def _file_sha256(path: Path) -> str:
    from edgeped.fileio import sha256_file

    try:
        return sha256_file(path)
    except OSError as exc:
        raise EdgepedError(
            f"cannot read image {path} ({exc.strerror or exc})", "check the file is readable"
        ) from exc


def _drive(csv_path: Path, row: dict[str, str]) -> str:
    return row.get("drive_id") or f"{csv_path.stem}:{Path(row['path']).parent}"


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _resolve(csv_path: Path, path: str) -> Path:
    """The row's image, kept inside the CSV's folder (edgeped.paths.resolve_inside)."""
    from edgeped.paths import resolve_inside

    return resolve_inside(csv_path.parent, path, what="image", source=csv_path)


def _escapes(csv_path: Path, path: str) -> bool:
    try:
        _resolve(csv_path, path)
    except EdgepedError:
        return True
    return False


def _load_crop(path: Path) -> np.ndarray:
    from PIL import Image

    from edgeped.data.importers.images import load_rgb

    pixels = load_rgb(path)
    if pixels.shape[:2] != (CROP_HEIGHT, CROP_WIDTH):
        rgb = Image.fromarray(pixels).resize((CROP_WIDTH, CROP_HEIGHT), Image.Resampling.BILINEAR)
        pixels = np.asarray(rgb, np.uint8)
    return pixels


def _batch(csv_path: Path, header: list[str], rows: list[dict[str, str]]) -> CropBatch:
    n = len(rows)
    labels = np.array([LABELS[r["label"].lower()] for r in rows], np.int64)
    meta = np.full((n, len(METADATA_FIELDS)), np.nan, np.float32)
    for j, name in enumerate(METADATA_FIELDS):
        if name in header:
            meta[:, j] = [float(r[name]) if r[name] else np.nan for r in rows]
    tags = {}
    for tag in TAG_VOCABULARIES:
        values = [r.get(tag, "") or "" for r in rows]
        if tag == "hard_negative":
            values = [
                v or ("none" if lab else "unknown") for v, lab in zip(values, labels, strict=True)
            ]
        tags[tag] = np.array([v or "unknown" for v in values])
    drives = [_drive(csv_path, r) for r in rows]
    return CropBatch.validated(
        images=np.stack([_load_crop(_resolve(csv_path, r["path"])) for r in rows]),
        metadata=meta,
        labels=labels,
        **tags,
        drive_id=np.array(drives),
        crop_id=np.array([f"{csv_path.stem}:{r['path']}" for r in rows]),
    )


def _problems_error(path: Path, problems: list[str]) -> EdgepedError:
    return EdgepedError(
        f"{path} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems),
        "fix those rows and run the import again",
    )


def read_checked(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The CSV's header and rows, every row's values and files checked.

    Raises:
        EdgepedError: the CSV is missing or malformed, or rows are bad (all listed).
    """
    header, rows = _read_rows(path)
    problems = _validate(path, header, rows)
    if problems:
        raise _problems_error(path, problems)
    return header, rows


def required_splits(header: list[str], rows: list[dict[str, str]], fractions) -> tuple[str, ...]:
    """The splits that must not be empty: all three when the CSV names them, else those
    the fractions give a share."""
    from edgeped.data.shards import SPLITS, default_required_splits

    return (
        tuple(SPLITS) if _names_splits(header, rows) else tuple(default_required_splits(fractions))
    )


def plan_splits(
    path: Path, header: list[str], rows: list[dict[str, str]], fractions
) -> tuple[list[str], bool, tuple[str, ...]]:
    """Each row's split, whether the CSV gave them, and the splits that must not be empty.

    Raises:
        EdgepedError: a drive or crop in two splits, or a required split left empty.
    """
    from edgeped.data.shards import SPLITS

    splits, problems = _splits_and_leaks(path, header, rows, fractions)
    if problems:
        raise _problems_error(path, problems)
    explicit = _names_splits(header, rows)
    required = required_splits(header, rows, fractions)
    empty = [s for s in required if s not in splits]
    if empty:
        counts = ", ".join(f"{s} {splits.count(s)}" for s in SPLITS)
        raise EdgepedError(
            f"{path}: the {' and '.join(empty)} split(s) would be empty ({counts} rows): "
            "training needs train and val, evaluation needs val and test",
            "list rows for every split in the split column"
            if explicit
            else "add crops from more drives (drive_id column; splits take whole drives)",
        )
    return splits, explicit, required


def import_crops(
    csv_path: str | Path,
    out_dir: str,
    *,
    overwrite: bool = False,
    split_fractions: tuple[float, float, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Imports the crops a CSV lists; returns the manifest.

    Raises:
        EdgepedError: the CSV is missing, malformed, or lists bad values or
            missing files (all such rows are reported together, nothing is written).
    """
    from edgeped.data.shards import (
        DEFAULT_SPLIT_FRACTIONS,
        check_split_fractions,
    )
    from edgeped.data.writer import DatasetWriter

    fractions = split_fractions or DEFAULT_SPLIT_FRACTIONS
    check_split_fractions(fractions)
    path = Path(csv_path)
    header, rows = read_checked(path)
    splits, explicit, required = plan_splits(path, header, rows, fractions)
    with DatasetWriter(
        out_dir,
        source={"importer": "crops_csv", "csv": str(path.resolve())},
        overwrite=overwrite,
        split_fractions=fractions,
        required_splits=required,
        one_split_per_drive="drive_id" in header or not explicit,
    ) as writer:
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            writer.add(
                _batch(path, header, chunk),
                splits=np.array(splits[start : start + _CHUNK]) if explicit else None,
            )
            if progress:
                progress(min(start + _CHUNK, len(rows)), len(rows))
        return writer.close()
