import numpy as np
import pytest
from helpers import make_batch

from edgeped.data.preprocess import Preprocessing
from edgeped.data.shards import Dataset
from edgeped.data.writer import DatasetWriter
from edgeped.train.mining import mine, select_top_negatives


def test_picks_highest_scoring_negatives_only():
    labels = np.array([1, 0, 0, 1, 0, 0, 0])
    scores = np.array([0.99, 0.2, 0.9, 0.95, 0.5, 0.9, 0.1])
    assert select_top_negatives(scores, labels, 3).tolist() == [2, 5, 4]
    assert select_top_negatives(scores, labels, 10).tolist() == [2, 5, 4, 1, 6]
    assert select_top_negatives(scores, labels, 0).size == 0


def test_mining_over_chunks_matches_global_top_k(tmp_path):
    class ScoreByMeanPixel:
        def predict(self, inputs, **_):
            return inputs["image"].mean(axis=(1, 2, 3))[:, None]

    w = DatasetWriter(tmp_path / "ds", split_fractions=(1.0, 0.0, 0.0))
    for i in range(6):
        w.add(make_batch(10, seed=i, drive=f"d{i}", positives=3))
    w.close()
    ds = Dataset.open(tmp_path / "ds")
    prep = Preprocessing(mean=(0.0,) * 6, std=(1.0,) * 6)
    got = mine(ScoreByMeanPixel(), ds, prep, top_k=5, batch_records=7)
    everything = ds.read("train")
    scores = prep.image(everything.images).mean(axis=(1, 2, 3))
    want = set(everything.crop_id[select_top_negatives(scores, everything.labels, 5)])
    assert set(got.batch.crop_id) == want
    assert (got.batch.labels == 0).all() and got.pool_size == 60
    assert got.kinds() == {"pole": 5}
    assert np.all(np.diff(got.scores) <= 0)


def test_negative_k_is_rejected():
    with pytest.raises(ValueError):
        select_top_negatives(np.zeros(3), np.zeros(3), -1)
