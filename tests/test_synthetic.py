import numpy as np
import pytest

from edgeped.data.shards import Dataset, split_for_drive
from edgeped.data.synthetic import SynthConfig, generate_drive, iter_drives


def test_same_drive_same_bytes():
    cfg = SynthConfig(drives=3, crops_per_drive=12, positive_rate=0.3, seed=5)
    a, b = generate_drive(cfg, 2), generate_drive(cfg, 2)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.metadata, b.metadata)
    np.testing.assert_array_equal(a.crop_id, b.crop_id)
    other = generate_drive(SynthConfig(drives=3, crops_per_drive=12, positive_rate=0.3, seed=6), 2)
    assert not np.array_equal(a.images, other.images)


def test_parallel_generation_matches_serial():
    serial = SynthConfig(drives=6, crops_per_drive=4, seed=1, workers=1)
    parallel = SynthConfig(drives=6, crops_per_drive=4, seed=1, workers=2)
    a = np.concatenate([b.images for b in iter_drives(serial, chunk_drives=2)])
    b = np.concatenate([b.images for b in iter_drives(parallel, chunk_drives=2)])
    np.testing.assert_array_equal(a, b)


def test_rates_follow_config():
    cfg = SynthConfig(
        drives=60,
        crops_per_drive=40,
        positive_rate=0.1,
        metadata_missing_rate=0.08,
        seed=2,
        workers=1,
    )
    batches = list(iter_drives(cfg))
    labels = np.concatenate([b.labels for b in batches])
    meta = np.concatenate([b.metadata for b in batches])
    assert 0.07 < labels.mean() < 0.13
    missing = np.isnan(meta).all(axis=1).mean()
    assert 0.05 < missing < 0.11
    kinds = set(np.concatenate([b.hard_negative for b in batches]))
    assert {"pole", "cyclist", "stroller", "background", "none"} <= kinds


def test_conditions_shape_pixels_and_metadata():
    cfg = SynthConfig(drives=80, crops_per_drive=10, seed=4, workers=1)
    batches = [generate_drive(cfg, d) for d in range(cfg.drives)]
    by = {}
    for b in batches:
        by.setdefault(b.lighting[0], []).append(b)
    day = np.concatenate([b.images for b in by["day"]]).mean()
    night = np.concatenate([b.images for b in by["night"]]).mean()
    assert night < 0.6 * day
    exposure = {k: np.nanmean(np.concatenate([b.metadata[:, 2] for b in v])) for k, v in by.items()}
    gain = {k: np.nanmean(np.concatenate([b.metadata[:, 5] for b in v])) for k, v in by.items()}
    assert exposure["night"] > exposure["day"] and gain["night"] > gain["day"]


def test_split_by_drive_has_no_leakage(tiny_dataset):
    ds = Dataset.open(tiny_dataset)
    drives = {s: set(ds.read(s).drive_id) for s in ("train", "val", "test")}
    assert not drives["train"] & drives["val"]
    assert not drives["train"] & drives["test"]
    assert not drives["val"] & drives["test"]
    for split, ids in drives.items():
        assert all(split_for_drive(d, (0.5, 0.25, 0.25)) == split for d in ids)


def test_split_fractions_are_respected():
    ids = [f"drive-{i}" for i in range(4000)]
    counts = {s: 0 for s in ("train", "val", "test")}
    for d in ids:
        counts[split_for_drive(d)] += 1
    assert counts["train"] / 4000 == pytest.approx(0.7, abs=0.03)
    assert counts["val"] / 4000 == pytest.approx(0.15, abs=0.03)


@pytest.mark.parametrize(
    "bad", [dict(positive_rate=1.5), dict(drives=0), dict(night_rate=0.9, dusk_rate=0.3)]
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        SynthConfig(**bad)
