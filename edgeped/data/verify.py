"""`data verify`: every shard checked against the manifest, as a result that saves itself.

Each listed shard is read once: record CRCs and the sha256 are checked in the
same pass. `.tfrecord` files the manifest does not list are reported as
`unlisted` (harmless: readers open only listed shards).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeped.data.output import MANIFEST
from edgeped.data.schema import SPLITS
from edgeped.data.shards import Dataset, shard_head_sha256
from edgeped.data.tfrecord import CorruptRecordError, iter_records
from edgeped.errors import EdgepedError
from edgeped.fileio import write_json_atomic
from edgeped.paths import resolve_inside
from edgeped.provenance import stamp


@dataclass
class ShardReport:
    file: str
    status: (
        str  # ok | missing | outside | size_mismatch | hash_mismatch | corrupt | count_mismatch
        # | head_mismatch | totals_mismatch | unlisted
    )
    detail: str = ""
    split: str = ""

    @property
    def ok(self) -> bool:
        """An unlisted file is reported but harmless: readers only open listed shards."""
        return self.status in ("ok", "unlisted")


class _HashingReader:
    """A read-only file wrapper that hashes what is read, so one pass checks CRCs and sha256."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.handle.read(n)
        self.digest.update(data)
        return data

    def finish(self) -> str:
        while self.read(1 << 20):
            pass
        return self.digest.hexdigest()


def _check_shard(root: Path, entry: dict, split: str, check_records: bool) -> ShardReport:
    name = entry.get("file", "?")
    try:
        path = resolve_inside(root, name, what="shard", source=root / MANIFEST)
    except EdgepedError as exc:
        return ShardReport(name, "outside", exc.problem, split)
    if not path.is_file():
        return ShardReport(name, "missing", "file not found", split)
    size = path.stat().st_size
    if size != entry.get("bytes"):
        return ShardReport(
            name, "size_mismatch", f"{size} bytes, manifest says {entry.get('bytes')}", split
        )
    with open(path, "rb") as handle:
        reader = _HashingReader(handle)
        n, problem = 0, None
        if check_records:
            try:
                n = sum(1 for _ in iter_records(reader, name))
            except CorruptRecordError as exc:
                problem = exc.problem
        digest = reader.finish()
    if digest != entry.get("sha256"):
        detail = "sha256 differs from manifest" + (f"; {problem}" if problem else "")
        return ShardReport(name, "hash_mismatch", detail, split)
    if problem:  # the manifest recorded a shard that was already damaged when written
        return ShardReport(name, "corrupt", problem, split)
    if check_records and n != entry.get("records"):
        return ShardReport(
            name, "count_mismatch", f"{n} records, manifest says {entry.get('records')}", split
        )
    head = entry.get("head_sha256")
    if head is not None and shard_head_sha256(path) != head:
        # readers check this key on every open: a wrong one would refuse a sound shard
        return ShardReport(name, "head_mismatch", "head_sha256 differs from the file's", split)
    return ShardReport(name, "ok", f"{entry.get('records')} records", split)


def verify(root: str | os.PathLike, *, check_records: bool = True) -> list[ShardReport]:
    """Checks every shard against the manifest; reports all problems, not just the first.

    Raises:
        EdgepedError: the manifest itself is missing, unreadable or of the wrong shape.
    """
    ds = Dataset.open(root)
    reports, listed = [], set()
    for split in SPLITS:
        for entry in ds.manifest.get("splits", {}).get(split, {}).get("shards", []):
            listed.add(entry.get("file"))
            try:
                reports.append(_check_shard(ds.root, entry, split, check_records))
            except OSError as exc:
                reports.append(ShardReport(entry.get("file", "?"), "unreadable", str(exc), split))
    for extra in sorted(p.name for p in ds.root.glob("*.tfrecord") if p.name not in listed):
        reports.append(
            ShardReport(extra, "unlisted", "not in the manifest (left from an earlier write?)")
        )
    return reports + totals_reports(ds.manifest)


def totals_reports(manifest: dict) -> list[ShardReport]:
    """The manifest's own sums checked: each split's records and positives against its
    shards', and the dataset's records against the splits'. A manifest whose totals were
    edited would mislead every reader that trusts them (sampling weights, reports)."""
    reports = []
    for split in SPLITS:
        info = manifest["splits"][split]
        for key in ("records", "positives"):
            total = sum(e[key] for e in info["shards"])
            if info[key] != total:
                reports.append(
                    ShardReport(
                        MANIFEST,
                        "totals_mismatch",
                        f"splits.{split}.{key} is {info[key]}, its shards hold {total}",
                        split,
                    )
                )
    total = sum(manifest["splits"][s]["records"] for s in SPLITS)
    if manifest["records"] != total:
        reports.append(
            ShardReport(
                MANIFEST,
                "totals_mismatch",
                f"records is {manifest['records']}, the splits hold {total}",
            )
        )
    return reports


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on one dataset folder: every shard's report."""

    dataset: str
    shards: tuple[ShardReport, ...]

    @property
    def bad(self) -> tuple[ShardReport, ...]:
        return tuple(r for r in self.shards if not r.ok)

    @property
    def ok(self) -> bool:
        return not self.bad

    @property
    def exit_code(self) -> int:
        """0 when every listed shard is intact, 1 otherwise."""
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        return {
            **stamp("edgeped.verify"),
            "dataset": self.dataset,
            "ok": self.ok,
            "bad": len(self.bad),
            "shards": [asdict(r) for r in self.shards],
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the result as JSON (atomically). Returns the path."""
        write_json_atomic(path, self.to_dict())
        return Path(path)


def verify_dataset(root: str | os.PathLike, *, check_records: bool = True) -> VerifyResult:
    """`verify` as a result object (what `edgeped data verify` renders and saves).

    Raises:
        EdgepedError: the manifest itself is missing, unreadable or of the wrong shape.
    """
    return VerifyResult(str(root), tuple(verify(root, check_records=check_records)))
