"""Every JSON file kind a command reads has a schema; a wrong shape names the file and key."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest

from edgeped.errors import EdgepedError
from edgeped.schemas import SCHEMAS, check_shape, shape_problem

SHA = "a" * 64

GOOD = {
    "edgeped.metrics": {
        "kind": "edgeped.metrics",
        "models": {"m": {"threshold": {"threshold": 0.5}, "test": {}}},
        "inputs": {"m": {"sha256": SHA}},
        "test_scores": {"file": "test_scores.npz", "sha256": SHA},
    },
    "edgeped.bench": {
        "kind": "edgeped.bench",
        "model_sha256": SHA,
        "target_name": "local",
        "target_kind": "local",
        "invoke_ms_p95": 1.5,
        "parity_ok": None,
        "instructions_per_invoke": None,
    },
    "edgeped.model_card": {
        "kind": "edgeped.model_card",
        "model": {"sha256": SHA},
        "preprocessing": {"metadata": {"mean": [0] * 6, "std": [1] * 6, "clip": 4.0}},
        "threshold": {"score": 0.4, "rule": "p >= score", "int8": -20},
    },
    "edgeped.preprocessing": {"mean": [0] * 6, "std": [1] * 6, "clip": 4.0},
    "edgeped.drift_reference": {
        "kind": "edgeped.drift_reference",
        "features": {"speed_mps": {"missing_rate": 0.1, "edges": [1.0], "shares": [0.5, 0.5]}},
        "slices": {"lighting": {"day": {"speed_mps": {"counts": [1, 2]}}}},
        "scores": {},
    },
    "edgeped.shadow_log.header": {
        "t": "header",
        "kind": "edgeped.shadow_log",
        "baseline": {},
        "candidate": {},
    },
    "edgeped.shadow_log.crop": {
        "t": "crop",
        "id": "c1",
        "b": {"p": 0.2, "y": 0, "ms": 1.0},
        "c": {"p": 0.7, "y": 1, "ms": 1.1},
        "meta": [None, 1, 2, 3, 4, 5],
        "img": [0.4, 0.1],
    },
    "edgeped.train_config": {"kind": "edgeped.train_config", "config": {"data_dir": "d"}},
    "edgeped.train_log": {"parents": {"student": "teacher.h5"}, "stages": []},
    "edgeped.gate": {
        "kind": "edgeped.gate",
        "model": "m",
        "model_sha256": SHA,
        "passed": True,
        "results": [],
    },
    "edgeped.release": {"kind": "edgeped.release", "release_id": "r", "model": {"sha256": SHA}},
    "edgeped.positive_index": {
        "manifest_sha256": SHA,
        "shards": [{"source": "train-00000.tfrecord", "file": "positives/x", "bytes": 10}],
    },
}

# (kind, edit, the key path the message must name)
BAD = [
    ("edgeped.metrics", lambda d: d.update(models=[]), "models"),
    ("edgeped.metrics", lambda d: d["models"]["m"].update(threshold={"threshold": "x"}), "m"),
    ("edgeped.metrics", lambda d: d["test_scores"].update(file=5), "test_scores.file"),
    ("edgeped.bench", lambda d: d.update(invoke_ms_p95="1.5"), "invoke_ms_p95"),
    ("edgeped.bench", lambda d: d.update(parity_ok="yes"), "parity_ok"),
    ("edgeped.bench", lambda d: d.update(instructions_per_invoke=-3), "instructions_per_invoke"),
    ("edgeped.bench", lambda d: d.pop("target_name"), "target_name"),
    ("edgeped.model_card", lambda d: d.update(model=None), "model"),
    ("edgeped.model_card", lambda d: d.update(threshold={"score": None}), "threshold"),
    ("edgeped.model_card", lambda d: d["threshold"].update(int8=0.5), "threshold"),
    ("edgeped.model_card", lambda d: d["preprocessing"]["metadata"].update(std="1"), "std"),
    ("edgeped.preprocessing", lambda d: d.update(std=[1] * 5 + [0]), "std[5]"),
    ("edgeped.preprocessing", lambda d: d.update(mean=[0] * 5), "mean"),
    ("edgeped.preprocessing", lambda d: d.update(clip=-1), "clip"),
    ("edgeped.drift_reference", lambda d: d.update(features=[]), "features"),
    ("edgeped.drift_reference", lambda d: d["features"]["speed_mps"].pop("edges"), "speed_mps"),
    ("edgeped.shadow_log.crop", lambda d: d["b"].update(y=2), "b.y"),
    ("edgeped.shadow_log.crop", lambda d: d.update(meta=[0] * 5), "meta"),
    ("edgeped.shadow_log.crop", lambda d: d["c"].pop("p"), "c"),
    ("edgeped.shadow_log.header", lambda d: d.update(baseline=None), "baseline"),
    ("edgeped.train_config", lambda d: d.update(config=[]), "config"),
    ("edgeped.train_log", lambda d: d.update(parents=["a"]), "parents"),
    ("edgeped.train_log", lambda d: d.update(stages=[{"best_val_auc_pr": 1}]), "stages[0]"),
    ("edgeped.positive_index", lambda d: d.update(shards={}), "shards"),
    ("edgeped.positive_index", lambda d: d["shards"][0].pop("file"), "shards[0]"),
    ("edgeped.gate", lambda d: d.update(passed="yes"), "passed"),
    ("edgeped.gate", lambda d: d.update(model_sha256=7), "model_sha256"),
    ("edgeped.release", lambda d: d.update(model="m"), "model"),
]


def test_every_kind_has_a_good_example_that_fits():
    assert set(GOOD) == set(SCHEMAS)
    for kind, data in GOOD.items():
        assert shape_problem(data, kind) is None, kind


@pytest.mark.parametrize("kind, edit, key", BAD, ids=[f"{k}-{key}" for k, _, key in BAD])
def test_a_wrong_shape_names_the_key(kind, edit, key):
    data = json.loads(json.dumps(GOOD[kind]))
    edit(data)
    problem = shape_problem(data, kind)
    assert problem is not None and key in problem, problem


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_a_list_at_the_top_level_is_refused_with_the_file_named(kind):
    with pytest.raises(EdgepedError) as info:
        check_shape([], kind, "x/file.json", "thing", "regenerate it")
    assert "x/file.json" in str(info.value) and "the top level" in str(info.value)


def _line(record: dict) -> bytes:
    body = json.dumps(record).encode()
    return f"{zlib.crc32(body) & 0xFFFFFFFF:08x} ".encode() + body + b"\n"


def test_shadow_log_with_a_crop_of_the_wrong_shape_names_line_and_key(tmp_path):
    from edgeped.rollout.shadow_log import LOG_SCHEMA_VERSION, read_log

    header = {**GOOD["edgeped.shadow_log.header"], "schema_version": LOG_SCHEMA_VERSION}
    good = GOOD["edgeped.shadow_log.crop"]
    bad = {**good, "id": "c2", "b": {"p": "high", "y": 1, "ms": 1.0}}
    log = tmp_path / "shadow_log.jsonl"
    log.write_bytes(_line(header) + _line(good) + _line(bad))
    with pytest.raises(EdgepedError) as info:
        read_log(log)
    assert "shadow_log.jsonl:3" in str(info.value) and "b.p" in str(info.value)
    log.write_bytes(_line(header) + _line(good))
    assert len(read_log(log)) == 1


def test_drift_reference_of_the_wrong_shape_is_refused(tmp_path):
    from edgeped.rollout.drift_run import read_reference

    ref = json.loads(json.dumps(GOOD["edgeped.drift_reference"]))
    ref["features"]["speed_mps"]["edges"] = "1,2,3"
    path = tmp_path / "drift_reference.json"
    path.write_text(json.dumps(ref))
    with pytest.raises(EdgepedError, match="features.speed_mps.edges"):
        read_reference(path)


def test_gate_evidence_of_the_wrong_shape_is_unreadable_not_a_crash(tmp_path):
    from edgeped.gate.evidence import read_source

    bench = {**GOOD["edgeped.bench"], "invoke_ms_p95": "fast"}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(bench))
    source = read_source(path, "edgeped.bench")
    assert not source.ok and "invoke_ms_p95" in source.problem


def test_model_card_of_the_wrong_shape_is_refused(tmp_path):
    from edgeped.convert.model_card import read_card

    card = json.loads(json.dumps(GOOD["edgeped.model_card"]))
    card["threshold"] = {"score": "0.5"}
    path = tmp_path / "m.card.json"
    path.write_text(json.dumps(card))
    with pytest.raises(EdgepedError, match="threshold"):
        read_card(path)


def test_a_config_file_that_is_a_json_list_is_refused(tmp_path):
    from edgeped.config import load_mapping

    path = tmp_path / "train.json"
    path.write_text("[1, 2]")
    with pytest.raises(EdgepedError, match="the top level is a list"):
        load_mapping(Path(path))


def test_a_damaged_positive_index_is_not_used(tmp_path):
    """The positives cache is derived: a damaged index falls back to the shards."""
    from edgeped.data.positives import FOLDER, INDEX, positive_files, write_positive_index
    from edgeped.data.shards import Dataset
    from edgeped.data.synthetic import SynthConfig, write_synthetic

    data = tmp_path / "data"
    write_synthetic(
        str(data), SynthConfig(drives=20, crops_per_drive=6, positive_rate=0.3, workers=1)
    )
    if not (data / FOLDER / INDEX).is_file():
        write_positive_index(data)
    assert positive_files(Dataset.open(data), "train")
    (data / FOLDER / INDEX).write_text("[]")
    assert positive_files(Dataset.open(data), "train") is None
