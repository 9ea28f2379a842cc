"""Shards are checked against the manifest where they are read, and `data verify` checks
the manifest's own totals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeped.cli import main
from edgeped.data.shards import HEAD_BYTES, Dataset, shard_head_sha256
from edgeped.data.verify import verify
from edgeped.errors import EdgepedError


def _write(out: Path, seed: int) -> Path:
    from edgeped.data.synthetic import SynthConfig, write_synthetic

    write_synthetic(
        str(out),
        SynthConfig(drives=20, crops_per_drive=6, positive_rate=0.3, workers=1, seed=seed),
    )
    return out


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("shard_check")
    return _write(root / "a", 0), _write(root / "b", 1)


@pytest.fixture
def data(tmp_path, two_datasets) -> Path:
    shutil.copytree(two_datasets[0], tmp_path / "data")
    return tmp_path / "data"


def _manifest(data: Path) -> dict:
    return json.loads((data / "manifest.json").read_text())


def test_writers_record_the_head_sha256_of_every_shard(data):
    for split in ("train", "val", "test"):
        for entry in _manifest(data)["splits"][split]["shards"]:
            assert entry["head_sha256"] == shard_head_sha256(data / entry["file"])


def _swap_in_other_val_shard(data: Path, other: Path) -> str:
    """Copies a val shard of another dataset over this one's, padded to the same size."""
    entry = _manifest(data)["splits"]["val"]["shards"][0]
    foreign = (other / _manifest(other)["splits"]["val"]["shards"][0]["file"]).read_bytes()
    size = entry["bytes"]
    payload = (foreign * (size // len(foreign) + 1))[:size]
    (data / entry["file"]).write_bytes(payload)
    return entry["file"]


def test_a_foreign_shard_of_the_same_size_is_refused_by_readers(data, two_datasets):
    name = _swap_in_other_val_shard(data, two_datasets[1])
    with pytest.raises(EdgepedError, match="does not match the dataset's manifest") as info:
        Dataset.open(data).read("val")
    assert name in str(info.value) and "data verify" in str(info.value)


@pytest.mark.parametrize(
    "args",
    [
        ["data", "stats", "{data}", "--out", "{tmp}/stats"],
        ["train", "{tmp}/run", "--data", "{data}"],
    ],
)
def test_commands_refuse_a_damaged_shard(data, tmp_path, two_datasets, args):
    _swap_in_other_val_shard(data, two_datasets[1])
    argv = [a.format(data=data, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 65, result.output
    assert "does not match the dataset's manifest" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_changed_size_is_refused_without_reading_the_shard(data):
    entry = _manifest(data)["splits"]["train"]["shards"][0]
    with open(data / entry["file"], "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(EdgepedError, match="bytes, the manifest says"):
        Dataset.open(data).shard_paths("train")


def test_damage_past_the_first_block_is_left_to_verify(data):
    entry = _manifest(data)["splits"]["train"]["shards"][0]
    path = data / entry["file"]
    raw = bytearray(path.read_bytes())
    assert len(raw) > HEAD_BYTES + 10
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    Dataset.open(data).shard_paths("train")  # the cheap check passes
    bad = {r.file: r.status for r in verify(data) if not r.ok}
    assert bad == {entry["file"]: "hash_mismatch"}


def test_a_manifest_without_head_sha256_gets_the_full_check(data):
    manifest = _manifest(data)
    for split in manifest["splits"].values():
        for entry in split["shards"]:
            del entry["head_sha256"]
    (data / "manifest.json").write_text(json.dumps(manifest))
    entry = manifest["splits"]["test"]["shards"][0]
    path = data / entry["file"]
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(EdgepedError, match="its sha256 differs"):
        Dataset.open(data).read("test")


@pytest.mark.parametrize(
    "edit, detail",
    [
        (lambda m: m["splits"]["val"].update(records=m["splits"]["val"]["records"] + 7), "val"),
        (lambda m: m["splits"]["test"].update(positives=0), "splits.test.positives"),
        (lambda m: m.update(records=m["records"] * 2), "the splits hold"),
    ],
)
def test_verify_refuses_false_split_totals(data, edit, detail):
    manifest = _manifest(data)
    edit(manifest)
    (data / "manifest.json").write_text(json.dumps(manifest))
    bad = [r for r in verify(data) if not r.ok]
    assert bad and all(r.status == "totals_mismatch" for r in bad)
    assert any(detail in r.detail for r in bad)
    result = CliRunner().invoke(main, ["data", "verify", str(data)])
    assert result.exit_code == 1, result.output


def test_verify_catches_a_wrong_head_sha256(data):
    manifest = _manifest(data)
    manifest["splits"]["train"]["shards"][0]["head_sha256"] = "0" * 64
    (data / "manifest.json").write_text(json.dumps(manifest))
    bad = {r.status for r in verify(data) if not r.ok}
    assert bad == {"head_mismatch"}


def test_a_sound_dataset_verifies_clean(data):
    assert all(r.ok for r in verify(data))
