import numpy as np

from edgeped.data.augment import AugmentConfig
from edgeped.data.pipeline import PipelineOptions, make_dataset
from edgeped.data.preprocess import Preprocessing
from edgeped.data.shards import Dataset, DatasetWriter
from tests.conftest import make_batch


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
    images, metas, labels = _collect(make_dataset(ds, "train", prep, PipelineOptions(batch_size=4),
                                                  shuffle=False))
    np.testing.assert_allclose(images, prep.image(batch.images), atol=1e-6)
    np.testing.assert_allclose(metas, prep.metadata(batch.metadata), atol=1e-5)
    np.testing.assert_array_equal(labels, batch.labels)
    assert metas[0, 6:].sum() == 0 and metas[1, 6 + 2] == 0  # missing -> mask 0


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
    opts = PipelineOptions(batch_size=200, positive_fraction=0.5,
                           augment=AugmentConfig(night=0.5, rain=0.5, blur=0.5))
    batches = list(make_dataset(ds, "train", prep, opts, shuffle=True).take(5))
    share = np.mean([float(y.numpy().mean()) for _, y, _ in batches])
    assert 0.43 < share < 0.57  # 3 of 10 records are positive; 1000 draws at 0.5
    image = np.concatenate([x["image"].numpy() for x, _, _ in batches])
    assert image.min() >= -1.0 and image.max() <= 127 / 128
