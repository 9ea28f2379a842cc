"""Reads the shadow log the device runner appends (device/runner.py, shadow mode).

The log is JSON Lines with a CRC per line: ``<crc32 of the JSON, 8 hex digits> <JSON>``.
The first record is a header (both models, thresholds, inputs), then one record per crop,
then a summary with the shadow's cost when the run finished. A crash leaves at most one
torn line at the end: it is skipped and reported, never parsed. A bad line anywhere else
means the file was damaged after it was written; it is skipped and reported as corrupt.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeped.data.schema import METADATA_FIELDS
from edgeped.errors import EdgepedError
from edgeped.fileio import sha256_file

LOG_KIND = "edgeped.shadow_log"
LOG_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Side:
    """One model's per-crop answers: probability, decision (0/1) and invoke time."""

    scores: np.ndarray
    decisions: np.ndarray
    invoke_ms: np.ndarray | None = None


@dataclass(frozen=True)
class Integrity:
    """What the reader found: records kept, a torn tail, damaged lines, a missing end."""

    records: int
    torn_tail: bool = False
    torn_tail_bytes: int = 0
    corrupt_lines: tuple[int, ...] = ()
    finished: bool = True

    @property
    def ok(self) -> bool:
        """No damaged record anywhere (a torn tail from a crash is expected, not damage)."""
        return not self.corrupt_lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "torn_tail": self.torn_tail,
            "torn_tail_bytes": self.torn_tail_bytes,
            "corrupt_lines": list(self.corrupt_lines),
            "finished": self.finished,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class ShadowRecords:
    """Baseline and candidate answers on the same crops, from a device log or offline."""

    crop_ids: np.ndarray
    baseline: Side
    candidate: Side
    baseline_info: dict[str, Any]
    candidate_info: dict[str, Any]
    source: dict[str, Any]
    labels: np.ndarray | None = None
    tags: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: np.ndarray | None = None  # (N, 6) float, NaN = missing
    image_stats: np.ndarray | None = None  # (N, 2): brightness, contrast
    integrity: Integrity = Integrity(records=0)
    cost: dict[str, Any] | None = None

    def __len__(self) -> int:
        return int(self.crop_ids.size)


def parse_line(line: bytes) -> dict | None:
    """One log line to its record, or None when its CRC or JSON does not check out."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    try:
        want = int(line[:8], 16)
    except ValueError:
        return None
    body = line[9:]
    if zlib.crc32(body) & 0xFFFFFFFF != want:
        return None
    try:
        record = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def read_log(path: str | os.PathLike) -> ShadowRecords:
    """Reads a shadow log, skipping (and reporting) a torn last line or damaged lines.

    Raises:
        EdgepedError: the file is missing, has no valid header, or holds no crop record.
    """
    p = Path(path)
    if not p.is_file():
        raise EdgepedError(f"shadow log not found: {p}", "pass the log `edgeped shadow run` pulled")
    data = p.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline, else a torn record
    torn, torn_bytes = bool(tail), len(tail)
    header, summary, crops, corrupt, numbers = None, None, [], [], []
    for number, line in enumerate(lines, start=1):
        record = parse_line(line)
        if record is None:
            if number == len(lines) and not torn:
                # A complete-looking last line that fails its check: also a crash artefact.
                torn, torn_bytes = True, len(line) + 1
            else:
                corrupt.append(number)
            continue
        kind = record.get("t")
        if kind == "header" and header is None:
            header = record
        elif kind == "crop":
            crops.append(record)
            numbers.append(number)
        elif kind == "summary":
            summary = record
    if header is None or header.get("kind") != LOG_KIND:
        raise EdgepedError(
            f"{p} is not an edgeped shadow log (no valid header record)",
            "pass a log written by the runner's shadow mode (`edgeped shadow run`)",
        )
    _check_record(p, header, "header", 1)
    if header.get("schema_version") != LOG_SCHEMA_VERSION:
        raise EdgepedError(
            f"{p} has shadow log schema {header.get('schema_version')}; "
            f"this edgeped reads {LOG_SCHEMA_VERSION}",
            "read it with the edgeped version whose runner wrote it",
        )
    if not crops:
        raise EdgepedError(
            f"{p} holds no complete crop record"
            + (" (the runner stopped before the first crop)" if summary is None else ""),
            "run the shadow again on at least one crop",
        )
    integrity = Integrity(
        records=len(crops),
        torn_tail=torn,
        torn_tail_bytes=torn_bytes,
        corrupt_lines=tuple(corrupt),
        finished=summary is not None,
    )
    try:
        records = _to_records(header, crops, summary, integrity, p)
        if _plausible(records):
            return records
    except (KeyError, TypeError, ValueError, AttributeError):
        pass
    # The schema per record costs more than the reading itself on a long log: it runs
    # only when reading failed or the arrays hold values no runner writes, to name the
    # first bad record and key.
    for number, crop in zip(numbers, crops, strict=True):
        _check_record(p, crop, "crop", number)
    raise EdgepedError(
        f"{p} holds crop records the reader cannot use", "run the shadow again"
    )  # pragma: no cover - the schema names every shape the arrays refuse


def _plausible(records: ShadowRecords) -> bool:
    """Decisions are 0/1, scores probabilities, times non-negative: as the runner writes."""
    for side in (records.baseline, records.candidate):
        if not np.isin(side.decisions, (0, 1)).all():
            return False
        if ((side.scores < 0) | (side.scores > 1)).any():  # NaN is left to the report
            return False
        if side.invoke_ms is not None and (side.invoke_ms < 0).any():
            return False
    return True


def _check_record(path: Path, record: dict, kind: str, line: int) -> None:
    from edgeped.schemas import shape_problem

    problem = shape_problem(record, f"edgeped.shadow_log.{kind}")
    if problem:
        raise EdgepedError(
            f"{path}:{line}: the {kind} record has the wrong shape: {problem}",
            "the log was not written by the edgeped runner (its lines check out but do not "
            "follow the shadow log schema): run the shadow again with `edgeped shadow run`",
        )


def _side(crops: list[dict], key: str) -> Side:
    return Side(
        scores=np.array([c[key]["p"] for c in crops], np.float64),
        decisions=np.array([c[key]["y"] for c in crops], np.int8),
        invoke_ms=np.array([c[key]["ms"] for c in crops], np.float64),
    )


def _to_records(
    header: dict, crops: list[dict], summary: dict | None, integrity: Integrity, path: Path
) -> ShadowRecords:
    labels = None
    if header.get("labels"):
        labels = np.array([c.get("label", -1) for c in crops], np.int64)
    tags = {
        name: np.array([c.get("tags", {}).get(name, "unknown") for c in crops]).astype(str)
        for name in header.get("tag_fields", [])
    }
    meta = np.array(
        [[np.nan if v is None else v for v in c["meta"]] for c in crops], np.float64
    ).reshape(len(crops), len(METADATA_FIELDS))
    return ShadowRecords(
        crop_ids=np.array([c["id"] for c in crops]).astype(str),
        baseline=_side(crops, "b"),
        candidate=_side(crops, "c"),
        baseline_info=header["baseline"],
        candidate_info=header["candidate"],
        source={
            "kind": "device_log",
            "path": str(path),
            "sha256": sha256_file(path),
            "environment": header.get("environment", {}),
            "inputs": header.get("inputs", {}),
        },
        labels=labels,
        tags=tags,
        metadata=meta,
        image_stats=np.array([c["img"] for c in crops], np.float64).reshape(len(crops), 2),
        integrity=integrity,
        cost=summary.get("cost") if summary else None,
    )
