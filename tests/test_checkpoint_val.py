"""checkpoint_on: which val crops choose the checkpoint."""

from dataclasses import replace

import numpy as np
import pytest
from helpers import make_batch

from edgeped.config import ConfigError
from edgeped.data.augment import AugmentConfig
from edgeped.data.preprocess import Preprocessing
from edgeped.data.shards import Dataset
from edgeped.data.writer import DatasetWriter
from edgeped.train.config import TrainConfig
from edgeped.train.session import validation_data


def _val(tmp_path, n=12):
    w = DatasetWriter(tmp_path / "ds", split_fractions=(0.0, 1.0, 0.0))
    batch = make_batch(n, positives=4)
    w.add(batch)
    w.close()
    ds = Dataset.open(tmp_path / "ds")
    return ds, Preprocessing.from_manifest_stats(ds.metadata_stats()), batch


def _images(ds):
    x = [b[0]["image"].numpy() for b in ds]
    y = [b[1].numpy()[:, 0] for b in ds]
    return np.concatenate(x), np.concatenate(y)


def test_clean_val_is_the_split_as_recorded(tmp_path):
    ds, prep, batch = _val(tmp_path)
    config = TrainConfig(data_dir=str(tmp_path / "ds"), checkpoint_on="clean")
    images, labels = _images(validation_data(ds, prep, True, config))
    assert len(images) == 12 and labels.sum() == 4
    np.testing.assert_allclose(
        np.sort(images.reshape(12, -1).sum(1)),
        np.sort(prep.image(batch.images).reshape(12, -1).sum(1)),
        rtol=1e-5,
    )


def test_clean_plus_augmented_val_adds_one_fixed_draw_of_the_same_crops(tmp_path):
    ds, prep, _ = _val(tmp_path)
    aug = replace(AugmentConfig.off(), noise=1.0)
    both = TrainConfig(data_dir=str(tmp_path / "ds"), augment=aug)
    assert both.checkpoint_on == "clean+augmented"  # the default since 2026-12-08
    clean = replace(both, checkpoint_on="clean")
    clean_x, clean_y = _images(validation_data(ds, prep, True, clean))
    first_x, first_y = _images(validation_data(ds, prep, True, both))
    again_x, _ = _images(validation_data(ds, prep, True, both))
    assert len(first_x) == 24
    np.testing.assert_array_equal(first_x[:12], clean_x)
    np.testing.assert_array_equal(first_y, np.concatenate([clean_y, clean_y]))
    shifted = first_x[12:]
    assert not np.allclose(shifted, clean_x, atol=1e-3)  # augmented...
    assert np.abs(shifted - clean_x).mean() < 0.5 * np.abs(shifted - np.roll(clean_x, 1, 0)).mean()
    np.testing.assert_array_equal(again_x, first_x)  # ...the same draw every epoch
    other_seed, _ = _images(validation_data(ds, prep, True, replace(both, seed=1)))
    assert not np.allclose(other_seed[12:], shifted, atol=1e-3)


def test_checkpoint_on_is_validated():
    with pytest.raises(ConfigError, match="checkpoint_on must be one of"):
        TrainConfig.from_dict({"data_dir": "x", "checkpoint_on": "augmented"})
