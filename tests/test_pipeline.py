from dataclasses import replace

import numpy as np
import pytest
from helpers import make_batch

from edgeped.data.augment import AugmentConfig
from edgeped.data.pipeline import (
    VIEW2_KEY,
    PipelineOptions,
    make_dataset,
    positives_fit_in_memory,
)
from edgeped.data.preprocess import Preprocessing
from edgeped.data.shards import Dataset
from edgeped.data.writer import DatasetWriter


def _dataset(tmp_path):
    w = DatasetWriter(tmp_path / "ds", split_fractions=(1.0, 0.0, 0.0))
    batch = make_batch(10, positives=3)
    w.add(batch)
    w.close()
    return Dataset.open(tmp_path / "ds"), batch


def _collect(ds):
    images, metas, labels = [], [], []
    for x, y, _ in ds:
        images.append(x["image"].numpy())
        metas.append(x["meta"].numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(metas), np.concatenate(labels)[:, 0]


def test_tf_pipeline_matches_numpy_preprocessing(tmp_path):
    ds, batch = _dataset(tmp_path)
    prep = Preprocessing.from_manifest_stats(ds.metadata_stats())
    images, metas, labels = _collect(
        make_dataset(ds, "train", prep, PipelineOptions(batch_size=4), shuffle=False)
    )
    np.testing.assert_allclose(images, prep.image(batch.images), atol=1e-6)
    np.testing.assert_allclose(metas, prep.metadata(batch.metadata), atol=1e-5)
    np.testing.assert_array_equal(labels, batch.labels)
    assert metas[0, 6:].sum() == 0 and metas[1, 6 + 2] == 0  # missing -> mask 0


def test_tf_twin_of_the_standardize_rule_matches_numpy(tmp_path):
    """Training sees (within float32 rounding) the tensor eval and the device compute."""
    ds, batch = _dataset(tmp_path)
    prep = Preprocessing.from_manifest_stats(ds.metadata_stats(), image_rule="standardize")
    images, _, _ = _collect(
        make_dataset(ds, "train", prep, PipelineOptions(batch_size=4), shuffle=False)
    )
    np.testing.assert_allclose(images, prep.image(batch.images), atol=2e-5)
    assert np.abs(images).max() <= 2.0 and images.std() > 0.2


def test_camera_augmentations_run_before_the_standardize_rule(tmp_path):
    ds, batch = _dataset(tmp_path)
    prep = Preprocessing.from_manifest_stats(ds.metadata_stats(), image_rule="standardize")
    heavy = AugmentConfig(dark=1.0, noise=1.0, tone=1.0, mix=0.5, occlude=0.5)
    opts = PipelineOptions(batch_size=10, augment=heavy)
    images = next(iter(make_dataset(ds, "train", prep, opts, shuffle=False)))[0]["image"].numpy()
    assert np.abs(images).max() <= 2.0
    # A darkened, noisy crop is still standardised: every crop is centred per channel.
    np.testing.assert_allclose(images.mean(axis=(1, 2)), 0.0, atol=0.15)
    assert not np.allclose(images, prep.image(batch.images), atol=1e-3)


def test_exclude_leaves_out_a_condition(tmp_path):
    ds, batch = _dataset(tmp_path)
    prep = Preprocessing.from_manifest_stats(ds.metadata_stats())
    opts = PipelineOptions(batch_size=4, exclude=(("lighting", "night"),))
    images, _, _ = _collect(make_dataset(ds, "train", prep, opts, shuffle=False))
    day = prep.image(batch.images[batch.lighting == "day"])
    np.testing.assert_allclose(images, day, atol=1e-6)


def test_balanced_sampling_and_augmentation_stay_in_range(tmp_path):
    ds, _ = _dataset(tmp_path)
    prep = Preprocessing.from_manifest_stats(ds.metadata_stats())
    opts = PipelineOptions(
        batch_size=200, positive_fraction=0.5, augment=AugmentConfig(night=0.5, rain=0.5, blur=0.5)
    )
    batches = list(make_dataset(ds, "train", prep, opts, shuffle=True).take(5))
    share = np.mean([float(y.numpy().mean()) for _, y, _ in batches])
    assert 0.43 < share < 0.57  # 3 of 10 records are positive; 1000 draws at 0.5
    image = np.concatenate([x["image"].numpy() for x, _, _ in batches])
    assert image.min() >= -1.0 and image.max() <= 127 / 128


def test_balanced_sampling_with_and_without_the_positive_cache(tmp_path):
    """Each class's stream holds only that class, whether positives are cached in memory or not."""
    ds, batch = _dataset(tmp_path)
    prep = Preprocessing.from_manifest_stats(ds.metadata_stats())
    pos_images = {im.tobytes() for im in prep.image(batch.images[batch.labels == 1])}
    neg_images = {im.tobytes() for im in prep.image(batch.images[batch.labels == 0])}
    for cache_mb in (0.0, 512.0):
        opts = PipelineOptions(batch_size=100, positive_fraction=0.5, cache_positives_mb=cache_mb)
        for x, y, _ in make_dataset(ds, "train", prep, opts, shuffle=True).take(3):
            for image, label in zip(x["image"].numpy(), y.numpy()[:, 0], strict=True):
                assert image.tobytes() in (pos_images if label == 1 else neg_images)


def test_positive_cache_is_bounded_by_the_positives_size(tmp_path):
    ds, _ = _dataset(tmp_path)
    info = ds.manifest["splits"]["train"]
    positive_bytes = sum(s["bytes"] for s in info["shards"]) * 3 / 10
    assert positives_fit_in_memory(ds, "train", positive_bytes / 1e6 * 1.01)
    assert not positives_fit_in_memory(ds, "train", positive_bytes / 1e6 * 0.99)
    assert not positives_fit_in_memory(ds, "train", 0.0)


STREAM_HASHES = """
import hashlib, json, sys
from edgeped._keras import keras, tf
from edgeped.train.loop import make_reproducible

make_reproducible(tf)  # first, as `edgeped train` does: before any pipeline is built
from edgeped.data.augment import AugmentConfig
from edgeped.data.pipeline import PipelineOptions, make_dataset
from edgeped.data.preprocess import Preprocessing
from edgeped.data.shards import Dataset

ds = Dataset.open(sys.argv[1])
prep = Preprocessing.from_manifest_stats(ds.metadata_stats())
out = {}
for balanced in (None, 0.5):
    opts = PipelineOptions(
        batch_size=16, shuffle_buffer=32, positive_fraction=balanced,
        augment=AugmentConfig(), seed=3,
    )
    hashes = []
    for _ in range(3):
        keras.utils.set_random_seed(3)
        h = hashlib.sha256()
        for x, y, _ in make_dataset(ds, "train", prep, opts, shuffle=True).take(6):
            h.update(x["image"].numpy().tobytes())
            h.update(y.numpy().tobytes())
        hashes.append(h.hexdigest())
    out[str(balanced)] = hashes
print(json.dumps(out))
"""


def test_a_multi_shard_stream_is_the_same_every_time(tmp_path):
    """Seeded shuffles over several shards read in parallel give the same batches, bit for
    bit, on every rebuild and in every process.

    Each process does what training does: `make_reproducible` before any pipeline is built
    (it cannot be undone for functions already optimised, hence fresh processes), then
    seeds TensorFlow's global generator before each build. Without it the augmented pixels
    came out an ulp apart between builds, and trainings of one seed drifted apart.
    """
    import json
    import subprocess
    import sys

    w = DatasetWriter(tmp_path / "ds", split_fractions=(1.0, 0.0, 0.0), shard_records=8)
    w.add(make_batch(64, positives=12))
    w.close()
    assert len(Dataset.open(tmp_path / "ds").shard_paths("train")) > 4
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", STREAM_HASHES, str(tmp_path / "ds")],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    for balanced in ("None", "0.5"):
        hashes = runs[0][balanced] + runs[1][balanced]
        assert len(set(hashes)) == 1, f"positive_fraction={balanced}: {hashes}"


def test_second_view_is_another_draw_of_the_same_crop_and_leaves_the_first_alone(tmp_path):
    ds, batch = _dataset(tmp_path)
    prep = Preprocessing.from_manifest_stats(ds.metadata_stats())
    # Sensor noise alone: each view is its crop plus a noise draw of its own.
    aug = replace(AugmentConfig.off(), noise=1.0, consistency=12.0)
    one = PipelineOptions(batch_size=10, augment=aug)
    two = PipelineOptions(batch_size=10, augment=aug, second_view=True)
    x1 = next(iter(make_dataset(ds, "train", prep, one, shuffle=False)))[0]
    x2 = next(iter(make_dataset(ds, "train", prep, two, shuffle=False)))[0]
    assert VIEW2_KEY not in x1 and set(x2) == {"image", "meta", VIEW2_KEY}
    # The first view is the same draw with or without a second one (its own stream).
    np.testing.assert_array_equal(x1["image"].numpy(), x2["image"].numpy())
    view2 = x2[VIEW2_KEY].numpy()
    assert view2.shape == x2["image"].shape and view2.min() >= -1.0 and view2.max() <= 127 / 128
    assert not np.allclose(view2, x2["image"].numpy(), atol=1e-3)
    # Both views come from the crop of the same record: each is far closer to it than to
    # another record's crop.
    clean = prep.image(batch.images)
    for view in (x2["image"].numpy(), view2):
        own = np.abs(view - clean).mean(axis=(1, 2, 3))
        other = np.abs(view - np.roll(clean, 1, axis=0)).mean(axis=(1, 2, 3))
        assert np.all(own < 0.5 * other)


def test_clean_anchored_second_view_is_the_crop_unaugmented(tmp_path):
    ds, batch = _dataset(tmp_path)
    prep = Preprocessing.from_manifest_stats(ds.metadata_stats())
    aug = replace(AugmentConfig.off(), noise=1.0, consistency=12.0, consistency_anchor="clean")
    one = PipelineOptions(batch_size=10, augment=aug)
    two = PipelineOptions(batch_size=10, augment=aug, second_view=True)
    x1 = next(iter(make_dataset(ds, "train", prep, one, shuffle=False)))[0]
    x2 = next(iter(make_dataset(ds, "train", prep, two, shuffle=False)))[0]
    np.testing.assert_array_equal(x1["image"].numpy(), x2["image"].numpy())
    clean = prep.image(batch.images)
    np.testing.assert_allclose(x2[VIEW2_KEY].numpy(), clean, atol=1e-6)
    assert not np.allclose(x2["image"].numpy(), clean, atol=1e-3)  # the first view is noisy


def test_consistency_anchor_is_validated():
    with pytest.raises(ValueError, match="consistency_anchor must be one of"):
        replace(AugmentConfig.off(), consistency_anchor="teacher")


def test_second_view_without_augmentation_is_refused():
    with pytest.raises(ValueError, match="second_view needs augment"):
        PipelineOptions(second_view=True)
