"""The shape of every JSON file a command reads, one schema per file kind.

Valid JSON of the wrong shape (a list where an object belongs, a string where a
number belongs, a section that is null) must stop with a message naming the file
and the key, not with a TypeError deep in a reader. The schemas cover the keys the
readers use; other keys are allowed (files grow keys across versions). `jsonschema`
checks them; `shape_problem` renders the first problem as `key.path: what is wrong`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgeped.errors import EdgepedError

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_SHA = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_OBJ = {"type": "object"}
_OBJ_OR_NULL = {"type": ["object", "null"]}


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required)}


def _kind(name: str) -> dict[str, Any]:
    return {"const": name}


_THRESHOLD = _obj({"threshold": _NUM}, ("threshold",))
_NUMS = {"type": "array", "items": _NUM}
_PROFILE = _obj(
    {"missing_rate": _NUM, "edges": _NUMS, "shares": _NUMS, "cdf": _NUMS},
    ("missing_rate", "edges"),
)

SCHEMAS: dict[str, dict[str, Any]] = {
    # metrics.json (eval): compare, gate, shadow report offline, release read it.
    "edgeped.metrics": _obj(
        {
            "kind": _kind("edgeped.metrics"),
            "models": {
                "type": "object",
                "additionalProperties": _obj(
                    {
                        "threshold": {"anyOf": [_THRESHOLD, {"type": "null"}]},
                        "val": _OBJ_OR_NULL,
                        "test": _OBJ_OR_NULL,
                        "slices": _OBJ_OR_NULL,
                    }
                ),
            },
            "inputs": {
                "type": "object",
                "additionalProperties": _obj({"sha256": _STR_OR_NULL}),
            },
            "test_scores": _obj({"file": _STR, "sha256": _STR}, ("file",)),
            "comparisons": {"type": "array", "items": _OBJ},
        },
        ("kind",),
    ),
    # bench.json (bench, deploy): the gate's device checks read the summary keys.
    "edgeped.bench": _obj(
        {
            "kind": _kind("edgeped.bench"),
            "model_sha256": _STR,
            "size_bytes": {"type": ["integer", "null"], "minimum": 0},
            "target_name": _STR,
            "target_kind": _STR,
            "emulated": {"type": "boolean"},
            "core": _STR_OR_NULL,
            **{
                key: {**_NUM_OR_NULL, "minimum": 0}
                for key in (
                    "invoke_ms_p50",
                    "invoke_ms_p95",
                    "invoke_ms_p99",
                    "e2e_ms_per_crop_p50",
                    "e2e_ms_per_crop_p95",
                    "init_ms",
                    "first_inference_ms",
                    "throughput_crops_per_s",
                    "peak_rss_mb",
                    "process_peak_rss_mb",
                )
            },
            "parity_ok": {"type": ["boolean", "null"]},
            "instructions_per_invoke": {"type": ["integer", "null"], "minimum": 0},
            "options": _OBJ,
            "parity": _OBJ_OR_NULL,
        },
        ("kind", "model_sha256", "target_name", "target_kind"),
    ),
    # <model>.card.json (convert, eval): eval, bench, shadow, gate, release read it.
    "edgeped.model_card": _obj(
        {
            "kind": _kind("edgeped.model_card"),
            "model": _obj({"sha256": _STR, "mode": _STR, "size_bytes": _NUM}, ("sha256",)),
            "preprocessing": _obj(
                {
                    # no rule: a card from before the rule existed, which is "fixed"
                    "image": _obj({"rule": {"enum": ["fixed", "standardize"]}}),
                    "metadata": _obj(
                        {
                            "mean": {"type": "array", "items": _NUM},
                            "std": {"type": "array", "items": {"type": "number"}},
                            "clip": _NUM,
                        },
                        ("mean", "std"),
                    ),
                }
            ),
            # eval writes the operating point it chose on val (null until then)
            "threshold": {
                "anyOf": [
                    _obj({"score": _NUM, "int8": {"type": "integer"}}, ("score",)),
                    {"type": "null"},
                ]
            },
            "source": _obj({"dataset": _STR_OR_NULL}),
            "inputs": {"type": "array", "items": _OBJ},
            "outputs": {"type": "array", "items": _OBJ},
        },
        ("kind", "model"),
    ),
    # the metadata normalisation a card (or --preprocess FILE) gives the runner.
    "edgeped.preprocessing": _obj(
        {
            "mean": {"type": "array", "items": _NUM, "minItems": 6, "maxItems": 6},
            "std": {
                "type": "array",
                "items": {"type": "number", "exclusiveMinimum": 0},
                "minItems": 6,
                "maxItems": 6,
            },
            "clip": {"type": "number", "exclusiveMinimum": 0},
        },
        ("mean", "std"),
    ),
    # drift_reference.json (eval): drift reads each feature's frozen profile.
    "edgeped.drift_reference": _obj(
        {
            "kind": _kind("edgeped.drift_reference"),
            "features": {"type": "object", "additionalProperties": _PROFILE},
            "slices": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": {"type": "object", "additionalProperties": _OBJ},
                },
            },
            "scores": {"type": "object", "additionalProperties": _PROFILE},
        },
        ("kind", "features", "slices", "scores"),
    ),
    # shadow log records (device runner, shadow mode), one line each.
    "edgeped.shadow_log.header": _obj(
        {
            "t": _kind("header"),
            "kind": _kind("edgeped.shadow_log"),
            "baseline": _OBJ,
            "candidate": _OBJ,
            "labels": {"type": "boolean"},
            "tag_fields": {"type": "array", "items": _STR},
            "environment": _OBJ,
            "inputs": _OBJ,
        },
        ("t", "kind", "baseline", "candidate"),
    ),
    "edgeped.shadow_log.crop": _obj(
        {
            "t": _kind("crop"),
            "id": {"type": ["string", "integer"]},
            **{
                side: _obj(
                    {
                        "p": {"type": "number", "minimum": 0, "maximum": 1},
                        "y": {"enum": [0, 1]},
                        "ms": {"type": "number", "minimum": 0},
                    },
                    ("p", "y", "ms"),
                )
                for side in ("b", "c")
            },
            "meta": {"type": "array", "items": _NUM_OR_NULL, "minItems": 6, "maxItems": 6},
            "img": {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2},
            "label": {"enum": [-1, 0, 1]},
            "tags": {"type": "object", "additionalProperties": _STR},
        },
        ("t", "id", "b", "c", "meta", "img"),
    ),
    # config.json and train_log.json of a run (train): convert and eval read them.
    "edgeped.train_config": _obj(
        {"kind": _kind("edgeped.train_config"), "config": _obj({"data_dir": _STR_OR_NULL})},
        ("config",),
    ),
    "edgeped.train_log": _obj(
        {
            "parents": {"type": "object", "additionalProperties": _STR_OR_NULL},
            "stages": {
                "type": "array",
                "items": _obj({"name": _STR, "best_val_auc_pr": _NUM_OR_NULL}, ("name",)),
            },
        },
    ),
    # positives/index.json (data synth/import): the train pipeline's cache of positives.
    "edgeped.positive_index": _obj(
        {
            "manifest_sha256": _STR,
            "shards": {
                "type": "array",
                "items": _obj({"source": _STR, "file": _STR, "bytes": _NUM}, ("source", "file")),
            },
        },
        ("manifest_sha256", "shards"),
    ),
    # gate.json (gate): release reads the verdict it ships under.
    "edgeped.gate": _obj(
        {
            "kind": _kind("edgeped.gate"),
            "model": _STR,
            "model_sha256": _STR_OR_NULL,
            "passed": {"type": "boolean"},
            "exit_code": {"type": "integer"},
            "results": {"type": "array", "items": _OBJ},
        },
        ("kind", "model", "model_sha256", "passed", "results"),
    ),
    # release.json (release): a later release reads its baseline's.
    "edgeped.release": _obj(
        {
            "kind": _kind("edgeped.release"),
            "release_id": _STR,
            "model": _obj({"sha256": _STR, "file": _STR, "name": _STR}, ("sha256",)),
        },
        ("kind", "release_id", "model"),
    ),
}


def _where(error) -> str:
    parts = [str(p) if isinstance(p, str) else f"[{p}]" for p in error.absolute_path]
    return ".".join(parts).replace(".[", "[") or "the top level"


def _message(error) -> str:
    value, rule, shown = error.validator_value, error.validator, f"{error.instance!r:.60}"
    if rule == "required":
        return error.message.replace("is a required property", "is missing")
    if rule == "type":
        wanted = value if isinstance(value, list) else [value]
        return f"{shown} is {_json_type(error.instance)}, expected {' or '.join(wanted)}"
    if rule == "const":
        return f"{shown} should be {value!r}"
    if rule == "enum":
        return f"{shown} is not one of {value}"
    if rule == "minimum":
        return f"{shown} is below {value}"
    if rule == "maximum":
        return f"{shown} is above {value}"
    if rule == "exclusiveMinimum":
        return f"{shown} must be above {value}"
    if rule in ("minItems", "maxItems"):
        return f"has {len(error.instance)} items, expected {value}"
    return error.message[:160]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return names.get(type(value), "array" if isinstance(value, list) else "object")


def shape_problem(data: Any, kind: str) -> str | None:
    """`key.path: what is wrong` for the first shape problem of `data` as a `kind` file,
    or None when it fits.

    Raises:
        KeyError: `kind` has no schema.
    """
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    validator = Draft202012Validator(SCHEMAS[kind])
    error = best_match(validator.iter_errors(data))
    if error is None:
        return None
    return f"{_where(error)}: {_message(error)}"


def check_shape(data: Any, kind: str, path: str | os.PathLike, what: str, fix: str) -> Any:
    """Returns `data` when it fits the `kind` schema.

    Raises:
        EdgepedError: naming the file, the key and what is wrong with it.
    """
    problem = shape_problem(data, kind)
    if problem:
        raise EdgepedError(f"{path} is not a valid {what}: {problem}", fix)
    return data


def read_checked(path: str | os.PathLike, kind: str, what: str, fix: str) -> Any:
    """Reads a JSON file and checks its shape (`check_shape`).

    Raises:
        EdgepedError: the file is missing, not JSON, or of the wrong shape.
    """
    from edgeped.fileio import read_json

    return check_shape(read_json(Path(path), what), kind, path, what, fix)
