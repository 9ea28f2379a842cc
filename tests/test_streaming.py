import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeped.cli import main
from edgeped.data.fleet import FleetConfig, write_fleet
from edgeped.data.shards import Dataset
from edgeped.data.writer import RunningStats, is_hard_negative


@pytest.fixture(scope="module")
def fleet_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet_small") / "ds"
    write_fleet(
        str(out),
        FleetConfig(
            drives=12,
            crops_per_drive=25,
            positive_rate=0.15,
            hard_negative_rate=0.4,
            seed=7,
            workers=2,
        ),
        shard_records=50,
        split_fractions=(0.6, 0.2, 0.2),
    )
    return out


def test_parallel_writer_matches_a_serial_write(fleet_small, tmp_path):
    """Two worker processes write the very bytes one process writes, for the same config."""
    from dataclasses import replace

    parallel = Dataset.open(fleet_small)
    config = replace(FleetConfig.from_dict(parallel.manifest["source"]["config"]), workers=1)
    serial_dir = tmp_path / "serial"
    write_fleet(str(serial_dir), config, shard_records=50, split_fractions=(0.6, 0.2, 0.2))
    serial = Dataset.open(serial_dir)
    for split in ("train", "val", "test"):
        a, b = serial.manifest["splits"][split], parallel.manifest["splits"][split]
        assert a["records"] == b["records"] and a["hard_negatives"] == b["hard_negatives"]
        assert [s["sha256"] for s in a["shards"]] == [s["sha256"] for s in b["shards"]], split
    a, b = serial.manifest["metadata_stats"], parallel.metadata_stats()
    np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-5)
    np.testing.assert_allclose(a["std"], b["std"], rtol=1e-5)
    np.testing.assert_allclose(a["missing_rate"], b["missing_rate"])


def test_running_stats_merge_equals_one_pass():
    rng = np.random.default_rng(0)
    data = rng.normal(3, 2, (500, 6)).astype(np.float32)
    data[rng.random((500, 6)) < 0.1] = np.nan
    whole, parts = RunningStats(), [RunningStats(), RunningStats()]
    whole.update(data)
    parts[0].update(data[:123])
    parts[1].update(data[123:])
    parts[0].merge(parts[1])
    for key in ("mean", "std", "missing_rate"):
        np.testing.assert_allclose(parts[0].to_dict()[key], whole.to_dict()[key], rtol=1e-9)


def _shard_files(root):
    manifest = json.loads((root / "manifest.json").read_text())
    return [s["file"] for split in manifest["splits"].values() for s in split["shards"]]


def test_verify_cli_reports_every_bad_shard_and_exits_non_zero(fleet_small, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(fleet_small, root)
    files = _shard_files(root)
    assert len(files) >= 4
    (root / files[0]).unlink()
    flipped = bytearray((root / files[1]).read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    (root / files[1]).write_bytes(bytes(flipped))
    (root / files[2]).write_bytes((root / files[2]).read_bytes()[:-7])
    (root / "stray-00000.tfrecord").write_bytes(b"")
    report = tmp_path / "verify.json"
    result = CliRunner().invoke(main, ["data", "verify", str(root), "--json", str(report)])
    assert result.exit_code == 1, result.output
    status = {s["file"]: s["status"] for s in json.loads(report.read_text())["shards"]}
    assert status[files[0]] == "missing"
    assert status[files[1]] == "hash_mismatch"
    assert status[files[2]] == "size_mismatch"
    assert status["stray-00000.tfrecord"] == "unlisted"
    assert all(status[f] == "ok" for f in files[3:])
    assert json.loads(report.read_text())["bad"] == 3
    for word in ("missing", "hash_mismatch", "size_mismatch"):
        assert word in result.output


def test_verify_cli_passes_a_clean_dataset(fleet_small):
    result = CliRunner().invoke(main, ["data", "verify", str(fleet_small), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert '"ok": true' in result.output


def test_stats_cli_writes_the_card(fleet_small, tmp_path):
    result = CliRunner().invoke(main, ["data", "stats", str(fleet_small), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "dataset_card.json").read_text())
    ds = Dataset.open(fleet_small)
    for split in ("train", "val", "test"):
        assert card["splits"][split]["records"] == ds.count(split)
        assert card["splits"][split]["positives"] == ds.positives(split)
    assert sum(v["records"] for v in card["slices"]["lighting"].values()) == ds.manifest["records"]
    kinds = set().union(*(c["hard_negative"] for c in card["splits"].values()))
    assert {"none", "background"} < kinds and len(kinds) > 4
    assert 0.0 < card["metadata"]["records_with_any_missing"] < 0.25
    fields = card["metadata"]["fields"]
    assert (
        fields["exposure_ms"]["mean_by_lighting"].get("night", 99)
        > fields["exposure_ms"]["mean_by_lighting"]["day"]
    )
    assert (tmp_path / "dataset_card_samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Hard-negative kind" in (tmp_path / "dataset_card.md").read_text()


def _draw(ds, options, batches=30):
    from edgeped.data.pipeline import make_dataset
    from edgeped.data.preprocess import Preprocessing

    prep = Preprocessing.from_manifest_stats(ds.metadata_stats())
    labels, weights = [], []
    for _, y, w in make_dataset(ds, "train", prep, options, shuffle=True).take(batches):
        labels.append(y.numpy()[:, 0])
        weights.append(w.numpy())
    return np.concatenate(labels), np.concatenate(weights)


def test_balanced_sampling_balances_and_near_misses_get_their_share(fleet_small):
    from edgeped.data.pipeline import PipelineOptions

    ds = Dataset.open(fleet_small)
    natural = ds.positives("train") / ds.count("train")
    assert natural < 0.25
    labels, _ = _draw(ds, PipelineOptions(batch_size=32, positive_fraction=0.5, shuffle_buffer=64))
    assert labels.mean() == pytest.approx(0.5, abs=0.08)
    labels, weights = _draw(
        ds,
        PipelineOptions(
            batch_size=32,
            positive_fraction=0.5,
            shuffle_buffer=64,
            near_miss_fraction=0.7,
            hard_negative_weight=3.0,
        ),
    )
    negatives = weights[labels < 0.5]
    assert labels.mean() == pytest.approx(0.5, abs=0.08)
    assert (negatives == 3.0).mean() == pytest.approx(0.7, abs=0.1)  # weight 3 marks a near miss
    batch = ds.read("train")
    assert (
        is_hard_negative(batch).sum() / (batch.labels == 0).sum() < 0.55
    )  # 0.7 is not the natural share


def test_near_miss_sampling_needs_class_balancing():
    from edgeped.data.pipeline import PipelineOptions

    with pytest.raises(ValueError, match="near_miss_fraction needs positive_fraction"):
        PipelineOptions(near_miss_fraction=0.5)
