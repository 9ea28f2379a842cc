"""Per-crop scores: one split's scores in memory (`SplitScores`) and the test scores file
(test_scores.npz) that eval writes and the gate reads.

numpy only, so the gate can read it without the evaluation stack.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeped.errors import EdgepedError
from edgeped.fileio import atomic_output, sha256_file

TEST_SCORES_KIND = "edgeped.test_scores"


@dataclass
class SplitScores:
    labels: np.ndarray
    tags: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]  # model name -> probabilities
    drives: np.ndarray
    crop_ids: np.ndarray


def write_test_scores(
    path: Path, crop_ids: np.ndarray, labels: np.ndarray, scores: dict[str, np.ndarray]
) -> str:
    """Per-crop test scores of every model (.npz), for decision flips against a later release.

    Returns:
        The file's sha256, which metrics.json records.
    """
    arrays = {
        "kind": np.array(TEST_SCORES_KIND),
        "crop_id": np.asarray(crop_ids).astype(str),
        "label": np.asarray(labels).astype(np.int8),
        **{f"score/{name}": np.asarray(v, np.float32) for name, v in scores.items()},
    }
    with atomic_output(path) as f:
        np.savez_compressed(f, **arrays)
    return sha256_file(path)


def read_test_scores(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a test-scores file written by `write_test_scores`.

    Raises:
        EdgepedError: the file is missing, not an .npz, or not a test-scores file.
    """
    p = Path(path)
    if not p.is_file():
        raise EdgepedError(f"{p} does not exist", "re-run `edgeped eval` on the run directory")
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise EdgepedError(
            f"{p} is not a readable .npz file ({exc})", "re-run `edgeped eval` on the run directory"
        ) from exc
    if str(arrays.get("kind", "")) != TEST_SCORES_KIND or "crop_id" not in arrays:
        raise EdgepedError(
            f"{p} is not an edgeped test-scores file", "re-run `edgeped eval` on the run directory"
        )
    return arrays
