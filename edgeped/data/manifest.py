"""The dataset manifest's shape: what readers rely on, checked before they use it.

A manifest that is valid JSON of the wrong shape (`[]`, a split that is `null`,
a shard entry without its sha256) must give a clear error naming the key, not
a TypeError deep in a reader. `manifest_shape_problem` says what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeped.data.schema import NUM_METADATA, SPLITS

_SHARD_KEYS = {"file": str, "records": int, "positives": int, "bytes": int, "sha256": str}


def manifest_shape_problem(manifest: Any) -> str | None:
    """What is wrong with a manifest's structure (types of the keys readers use), or None."""
    if not isinstance(manifest, dict):
        return f"the top level is {_json_type(manifest)}, expected an object"
    for key, kind in (("records", int), ("splits", dict), ("metadata_stats", dict)):
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            return f"{key!r} is {_json_type(manifest.get(key))}, expected {_NAMES[kind]}"
    for split in SPLITS:
        info = manifest["splits"].get(split)
        if not isinstance(info, dict):
            return f"splits.{split} is {_json_type(info)}, expected an object"
        for key in ("records", "positives"):
            if not isinstance(info.get(key), int) or isinstance(info.get(key), bool):
                return f"splits.{split}.{key} is {_json_type(info.get(key))}, expected a number"
        if not isinstance(info.get("shards"), list):
            return f"splits.{split}.shards is {_json_type(info.get('shards'))}, expected a list"
        for i, entry in enumerate(info["shards"]):
            if not isinstance(entry, dict):
                return f"splits.{split}.shards[{i}] is {_json_type(entry)}, expected an object"
            for key, kind in _SHARD_KEYS.items():
                value = entry.get(key)
                if not isinstance(value, kind) or isinstance(value, bool):
                    return (
                        f"splits.{split}.shards[{i}].{key} is {_json_type(value)}, "
                        f"expected {_NAMES[kind]}"
                    )
            head = entry.get("head_sha256")
            if head is not None and not isinstance(head, str):
                return f"splits.{split}.shards[{i}].head_sha256 is {_json_type(head)}, expected a string"
            if Path(entry["file"]).name != entry["file"] or not entry["file"]:
                return f"splits.{split}.shards[{i}].file {entry['file']!r} is not a file name"
    stats = manifest["metadata_stats"]
    for key in ("mean", "std"):
        values = stats.get(key)
        if (
            not isinstance(values, list)
            or len(values) != NUM_METADATA
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        ):
            return f"metadata_stats.{key} must be {NUM_METADATA} numbers, got {values!r:.60}"
    return None


_NAMES = {int: "a number", str: "a string", dict: "an object", list: "a list"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)
