"""Golden crops that test the model: real test crops whose outputs differ, around the threshold.

The board's health check runs the model on the golden crops and requires its outputs
bit-exact (int8) against the host's AND its decisions equal to eval's. Random noise
tells nothing there (every output was the same background score), so a release picks
crops from the run's own test split: both classes, the crops nearest the decision
threshold on each side (where a wrong scale or zero point flips a decision first), and
crops spread over each class's scores, never two with the same eval score.

`select_golden` is the pure choice from eval's per-crop scores; `golden_from_run` reads
those scores and the crops themselves and returns the arrays of ``crops.npz``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeped.errors import EdgepedError
from edgeped.fileio import read_json, sha256_file

MIN_GOLDEN = 4  # fewer distinct outputs than this cannot tell a model from a constant


def select_golden(labels: np.ndarray, scores: np.ndarray, threshold: float, count: int):
    """Indices of ``count`` crops: near the threshold on both sides, then spread per class.

    No two chosen crops share a score, so their outputs differ.

    Returns:
        (indices, reasons): int array and the matching reason per crop
        (``near_threshold`` or ``spread``).

    Raises:
        EdgepedError: the scores hold one class only, or fewer than
            ``MIN_GOLDEN`` distinct scores.
    """
    labels = np.asarray(labels).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    decisions = scores >= threshold
    if len(np.unique(labels)) < 2:
        raise EdgepedError(
            "the test split holds one class only: golden crops need pedestrians and background",
            "evaluate the run on a dataset whose test split has both classes",
        )
    taken: set[float] = set()
    chosen: list[int] = []
    reasons: list[str] = []

    def take(candidates, reason: str, limit: int) -> None:
        got = 0
        for i in candidates:
            if got >= limit or len(chosen) >= count:
                return
            s = float(scores[i])
            if s in taken or not np.isfinite(s):
                continue
            taken.add(s)
            chosen.append(int(i))
            reasons.append(reason)
            got += 1

    near = max(1, count // 4)
    distance = np.abs(scores - threshold)
    for cls in (1, 0):  # one crop of each class first, the one nearest the threshold
        idx = np.flatnonzero(labels == cls)
        take(idx[np.argsort(distance[idx], kind="stable")], "near_threshold", 1)
    for side in (True, False):  # the crops either side of the threshold, nearest first
        idx = np.flatnonzero(decisions == side)
        take(idx[np.argsort(distance[idx], kind="stable")], "near_threshold", near)
    for cls in (1, 0):  # evenly over each class's scores, lowest to highest
        remaining = count - len(chosen)
        want = (remaining + 1) // 2 if cls == 1 else remaining
        idx = np.flatnonzero(labels == cls)
        idx = idx[np.argsort(scores[idx], kind="stable")]
        even = np.unique(np.linspace(0, len(idx) - 1, num=max(want, 1)).round().astype(int))
        rest = np.setdiff1d(np.arange(len(idx)), even)  # stand-ins for repeated scores
        take(idx[np.concatenate([even, rest])], "spread", want)
    if len(chosen) < count:  # fill from every remaining distinct score
        rest = np.argsort(scores, kind="stable")
        take(rest, "spread", count - len(chosen))
    if len(set(labels[chosen].tolist())) < 2:
        raise EdgepedError(
            "the model scores every pedestrian exactly like some background crop: golden "
            "crops of both classes with distinct outputs cannot be chosen",
            "check the model and evaluate it again",
        )
    if len(chosen) < min(count, MIN_GOLDEN):
        raise EdgepedError(
            f"the model gives only {len(taken)} distinct scores on the test split: golden "
            "crops whose outputs differ cannot be chosen",
            "check the model (a constant output is a broken model) and evaluate it again",
        )
    return np.asarray(chosen, dtype=np.int64), np.asarray(reasons)


def _dataset_root(run: Path, metrics: dict, data_dir: str | os.PathLike | None) -> Path:
    if data_dir is not None:
        root = Path(data_dir)
        if not root.is_dir():
            raise EdgepedError(f"dataset not found: {root}", "pass the run's dataset to --data")
        return root
    recorded = (metrics.get("dataset") or {}).get("root")
    for candidate in (recorded, run / str(recorded) if recorded else None):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise EdgepedError(
        f"the dataset the run was evaluated on ({recorded}) is not found: golden crops are "
        "real test crops from it",
        f"pass the dataset with `edgeped release {run} --data DIR`",
    )


def golden_from_run(
    run_dir: str | os.PathLike,
    model: str,
    threshold: float,
    count: int,
    data_dir: str | os.PathLike | None = None,
) -> dict[str, np.ndarray]:
    """The golden crops of ``model``: arrays for ``crops.npz`` with eval's score and decision.

    Raises:
        EdgepedError: no per-crop test scores for this model (not evaluated), the dataset
            is not found, or no usable selection (see `select_golden`).
    """
    from edgeped.evaluate.scores import read_test_scores

    run = Path(run_dir)
    metrics = (
        read_json(run / "metrics.json", "metrics.json") if (run / "metrics.json").is_file() else {}
    )
    entry = metrics.get("test_scores") if isinstance(metrics, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise EdgepedError(
            f"{run} has no per-crop test scores: golden crops are real test crops, chosen by "
            "eval's scores",
            f"run `edgeped eval {run}` first (or pass --crops FILE with eval_decision)",
        )
    path = run / Path(entry["file"]).name
    if not path.is_file() or sha256_file(path) != entry.get("sha256"):
        raise EdgepedError(
            f"{path} is missing or not the file metrics.json was written with",
            f"run `edgeped eval {run}` again",
        )
    arrays = read_test_scores(path)
    key = f"score/{model}"
    if key not in arrays:
        raise EdgepedError(f"{path} has no scores for {model!r}", f"run `edgeped eval {run}`")
    ids = arrays["crop_id"].astype(str)
    labels = arrays["label"].astype(np.int64)
    scores = arrays[key].astype(np.float64)
    picked, reasons = select_golden(labels, scores, threshold, count)
    want = {ids[i]: k for k, i in enumerate(picked)}
    images = np.zeros((len(picked), 128, 64, 3), np.uint8)
    metadata = np.full((len(picked), 6), np.nan, np.float32)
    found = np.zeros(len(picked), bool)
    from edgeped.data.shards import Dataset

    root = _dataset_root(run, metrics, data_dir)
    for batch in Dataset.open(root).iter_batches("test", batch_records=1024):
        for j, cid in enumerate(batch.crop_id.astype(str)):
            k = want.get(cid)
            if k is not None:
                images[k], metadata[k], found[k] = batch.images[j], batch.metadata[j], True
    if not found.all():
        raise EdgepedError(
            f"{int((~found).sum())} golden crops are not in the test split of {root}",
            "pass the dataset the run was evaluated on with --data",
        )
    return {
        "images": images,
        "metadata": metadata,
        "crop_id": ids[picked],
        "label": labels[picked].astype(np.int8),
        "eval_score": scores[picked].astype(np.float32),
        "eval_decision": (scores[picked] >= threshold).astype(np.int8),
        "reason": reasons,
        "threshold": np.float64(threshold),
    }


def decisions(raw: np.ndarray, probabilities: np.ndarray, threshold: dict) -> np.ndarray:
    """The model's decisions as the board makes them: int8 rule on int8 outputs, else score."""
    raw = np.asarray(raw)
    if np.issubdtype(raw.dtype, np.integer) and isinstance(threshold.get("int8"), int):
        return (raw.reshape(len(raw), -1)[:, 0].astype(np.int32) >= threshold["int8"]).astype(
            np.int8
        )
    return (np.asarray(probabilities).reshape(-1) >= float(threshold["score"])).astype(np.int8)
