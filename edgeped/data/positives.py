"""Positive-only companion shards, so class-balanced sampling never rescans the train split.

Balanced sampling draws pedestrians at a set share of every batch. Without an
index the rare class is found by filtering every train shard each epoch (or
cached in memory when it is small); at fleet scale (12.5M crops, ~7.7 GB of
positives) neither works. This writes, for every train shard with
pedestrians, `positives/<shard name>` holding exactly that shard's positive
records (same bytes, same order), and `positives/index.json` last, bound to
the manifest by its sha256: an index left from another dataset is ignored.
The dataset itself (shards, manifest) is untouched, so datasets written with
and without the index are byte-identical.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeped.data.shards import MANIFEST, Dataset
from edgeped.data.tfrecord import decode_example, iter_records, write_record
from edgeped.errors import EdgepedError
from edgeped.fileio import atomic_output, read_json, sha256_file, write_json_atomic
from edgeped.provenance import stamp

FOLDER = "positives"
INDEX = "index.json"


def write_companion(root: str | os.PathLike, entry: dict) -> dict | None:
    """Writes the positives of one listed shard; returns its index entry (None if it has none)."""
    if not entry.get("positives"):
        return None
    root = Path(root)
    source = root / entry["file"]
    target = root / FOLDER / entry["file"]
    n = 0
    with open(source, "rb") as handle, atomic_output(target) as out:
        for payload in iter_records(handle, source.name):
            if decode_example(payload)["label"][0] > 0:
                write_record(out, payload)
                n += 1
    if n != entry["positives"]:
        target.unlink()
        raise EdgepedError(
            f"{source.name} holds {n} positives, its manifest entry says {entry['positives']}",
            "run `edgeped data verify` and regenerate the dataset",
        )
    return {
        "file": f"{FOLDER}/{entry['file']}",
        "source": entry["file"],
        "records": n,
        "bytes": target.stat().st_size,
        "sha256": sha256_file(target),
    }


def write_index(root: str | os.PathLike, entries: list[dict | None]) -> dict:
    """Writes positives/index.json (last, atomically) for companions already on disk."""
    root = Path(root)
    index = {
        **stamp("edgeped.positive_index"),
        "split": "train",
        "manifest_sha256": sha256_file(root / MANIFEST),
        "shards": [e for e in entries if e is not None],
    }
    write_json_atomic(root / FOLDER / INDEX, index)
    return index


def write_positive_index(root: str | os.PathLike) -> dict:
    """Writes every train shard's companion, then the index. Returns the index.

    Raises:
        EdgepedError: the dataset cannot be opened, or a shard disagrees with the manifest.
    """
    ds = Dataset.open(root)
    entries = ds.manifest["splits"]["train"]["shards"]
    return write_index(ds.root, [write_companion(ds.root, e) for e in entries])


def positive_files(dataset: Dataset, split: str) -> list[Path] | None:
    """The companion files of `split` if a current index covers it, else None.

    Current means: written for this manifest (sha256) and listing every shard
    with positives, each file present with its recorded size.
    """
    path = dataset.root / FOLDER / INDEX
    if split != "train" or not path.is_file():
        return None
    from edgeped.schemas import shape_problem

    index = read_json(path, "positive index")
    if shape_problem(index, "edgeped.positive_index") is not None:
        return None  # a damaged cache is not used (the shards themselves are read instead)
    if index.get("manifest_sha256") != dataset.manifest_sha256:
        return None
    listed = {e["source"]: e for e in index.get("shards", [])}
    needed = [e["file"] for e in dataset.manifest["splits"][split]["shards"] if e["positives"]]
    if sorted(listed) != sorted(needed):
        return None
    from edgeped.paths import resolve_inside

    index_path = path
    files = [
        resolve_inside(dataset.root, listed[name]["file"], what="positives file", source=index_path)
        for name in needed
    ]
    if any(
        not f.is_file() or f.stat().st_size != listed[name]["bytes"]
        for f, name in zip(files, needed, strict=True)
    ):
        return None
    return files
