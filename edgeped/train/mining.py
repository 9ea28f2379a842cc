"""Hard-negative mining: find the background crops the model scores highest.

A round scores a pool (by default the train split) with the current model,
keeps the top-k negatives, and training continues with those mixed into every
batch. Which kinds were mined (poles, cyclists, ...) is reported per round, so
it is visible what the model was confusing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from edgeped.data.preprocess import Preprocessing
from edgeped.data.schema import CropBatch
from edgeped.data.shards import Dataset


def select_top_negatives(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest-scoring negatives, highest first (ties: lower index first)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    neg = np.flatnonzero(np.asarray(labels) == 0)
    if k == 0 or neg.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((neg, -np.asarray(scores, dtype=np.float64)[neg]))
    return neg[order[:k]]


@dataclass
class MinedSet:
    batch: CropBatch
    scores: np.ndarray
    pool_size: int

    def kinds(self) -> dict[str, int]:
        return dict(Counter(self.batch.hard_negative.tolist()).most_common())


def mine(
    model,
    dataset: Dataset,
    prep: Preprocessing,
    *,
    top_k: int,
    split: str = "train",
    use_metadata: bool = True,
    batch_records: int = 2048,
) -> MinedSet:
    """Scores the pool in chunks, keeping a running top-k so memory stays bounded."""
    kept: CropBatch | None = None
    kept_scores = np.zeros(0)
    pool = 0
    for chunk in dataset.iter_batches(split, batch_records=batch_records):
        inputs = {"image": prep.image(chunk.images)}
        if use_metadata:
            inputs["meta"] = prep.metadata(chunk.metadata)
        scores = model.predict(inputs, batch_size=256, verbose=0).reshape(-1)
        pool += len(chunk)
        top = select_top_negatives(scores, chunk.labels, top_k)
        merged = chunk.take(top) if kept is None else CropBatch.concat([kept, chunk.take(top)])
        merged_scores = np.concatenate([kept_scores, scores[top]])
        best = select_top_negatives(merged_scores, np.zeros(len(merged)), top_k)
        kept, kept_scores = merged.take(best), merged_scores[best]
    if kept is None:
        raise ValueError(f"the {split} split is empty: nothing to mine")
    return MinedSet(kept, kept_scores, pool)
