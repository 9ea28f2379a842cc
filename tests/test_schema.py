import numpy as np
import pytest
from helpers import make_batch

from edgeped.data.schema import CROP_SHAPE, CropBatch
from edgeped.data.shards import Dataset, examples_to_batch, record_to_example
from edgeped.data.writer import DatasetWriter
from edgeped.errors import EdgepedError


def _fields(batch):
    return {
        k: getattr(batch, k)
        for k in ("labels", "lighting", "weather", "scene", "hard_negative", "drive_id", "crop_id")
    }


def test_record_round_trip_keeps_every_field_and_nan():
    batch = make_batch(6)
    back = examples_to_batch([record_to_example(batch, i) for i in range(6)], "mem")
    np.testing.assert_array_equal(back.images, batch.images)
    np.testing.assert_array_equal(np.isnan(back.metadata), np.isnan(batch.metadata))
    np.testing.assert_allclose(back.metadata, batch.metadata, equal_nan=True)
    for key, value in _fields(batch).items():
        np.testing.assert_array_equal(getattr(back, key), value, err_msg=key)


def test_dataset_write_read_round_trip(tmp_path):
    writer = DatasetWriter(tmp_path / "ds", shard_records=3)
    batches = [make_batch(5, seed=i, drive=f"drive{i}") for i in range(12)]
    for b in batches:
        writer.add(b)
    manifest = writer.close()
    ds = Dataset.open(tmp_path / "ds")
    got = {}
    for split in ("train", "val", "test"):
        if ds.count(split):
            b = ds.read(split)
            for i, cid in enumerate(b.crop_id):
                got[cid] = b.images[i]
    want = {cid: b.images[i] for b in batches for i, cid in enumerate(b.crop_id)}
    assert got.keys() == want.keys()
    for cid in want:
        np.testing.assert_array_equal(got[cid], want[cid])
    assert manifest["records"] == 60
    assert all(s["records"] <= 3 for split in manifest["splits"].values() for s in split["shards"])


def test_manifest_metadata_stats_ignore_nan(tmp_path):
    writer = DatasetWriter(tmp_path / "ds", split_fractions=(1.0, 0.0, 0.0))
    batch = make_batch(8)
    writer.add(batch)
    stats = writer.close()["metadata_stats"]
    expected = np.nanmean(batch.metadata, axis=0)
    np.testing.assert_allclose(stats["mean"], expected, rtol=1e-5)
    assert stats["missing_rate"][2] == pytest.approx(2 / 8)
    assert stats["missing_rate"][0] == pytest.approx(1 / 8)


@pytest.mark.parametrize(
    "change,needle",
    [
        (dict(images=np.zeros((2, 64, 64, 3), np.uint8)), "expected (N, 128, 64, 3)"),
        (dict(images=np.zeros((2, *CROP_SHAPE), np.float32)), "dtype float32"),
        (dict(labels=np.array([0, 2])), "labels must be"),
        (dict(lighting=np.array(["day", "noon"])), "unknown lighting"),
        (dict(metadata=np.full((2, 5), 1.0, np.float32)), "metadata has shape"),
        (dict(metadata=np.full((2, 6), np.inf, np.float32)), "inf"),
    ],
)
def test_validation_names_the_problem(change, needle):
    good = dict(
        images=np.zeros((2, *CROP_SHAPE), np.uint8),
        metadata=np.zeros((2, 6), np.float32),
        labels=np.array([0, 1]),
        lighting=np.array(["day", "day"]),
        weather=np.array(["clear"] * 2),
        scene=np.array(["urban"] * 2),
        hard_negative=np.array(["none"] * 2),
        drive_id=np.array(["a", "a"]),
        crop_id=np.array(["a0", "a1"]),
    )
    with pytest.raises(EdgepedError, match=None) as info:
        CropBatch.validated(**{**good, **change})
    assert needle in str(info.value)


def test_empty_dataset_is_refused(tmp_path):
    with pytest.raises(EdgepedError, match="empty"):
        DatasetWriter(tmp_path / "ds").close()
    assert not (tmp_path / "ds" / "manifest.json").exists()


def test_existing_dataset_needs_overwrite(tmp_path):
    w = DatasetWriter(tmp_path / "ds")
    w.add(make_batch(4))
    w.close()
    with pytest.raises(EdgepedError, match="--overwrite"):
        DatasetWriter(tmp_path / "ds")


def test_open_reports_missing_manifest(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(EdgepedError, match="no manifest.json"):
        Dataset.open(tmp_path / "x")
    with pytest.raises(EdgepedError, match="not found"):
        Dataset.open(tmp_path / "nowhere")
