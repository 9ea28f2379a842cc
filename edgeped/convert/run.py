"""Converts a training run's checkpoints into .tflite models with model cards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeped.convert.converter import CalibrationData, convert_model
from edgeped.convert.model_card import build_card, card_bytes
from edgeped.data.preprocess import Preprocessing
from edgeped.data.shards import Dataset
from edgeped.errors import EdgepedError
from edgeped.fileio import sha256_file, write_group_atomic
from edgeped.layout import CONFIG_FILE, CONVERSIONS, TRAIN_LOG_FILE, card_path
from edgeped.schemas import read_checked

# (output name, checkpoints to try in order, mode): what a run converts.
PLAN = tuple((c.name, c.checkpoints, c.mode) for c in CONVERSIONS)


@dataclass
class Converted:
    name: str
    path: Path
    card_path: Path
    mode: str
    size_bytes: int
    sha256: str


def calibration_data(
    dataset: Dataset,
    prep: Preprocessing,
    *,
    samples: int = 256,
    use_metadata: bool = True,
    seed: int = 0,
) -> CalibrationData:
    """Draws a representative set from the train split: up to a quarter positives.

    Reads at most 16x `samples` records, so calibration cost does not grow with
    the dataset.
    """
    batch = dataset.read("train", limit=samples * 16)
    rng = np.random.default_rng(seed)
    pos = np.flatnonzero(batch.labels == 1)
    neg = np.flatnonzero(batch.labels == 0)
    n_pos = min(len(pos), samples // 4)
    pick = np.concatenate(
        [
            rng.choice(pos, n_pos, replace=False),
            rng.choice(neg, min(len(neg), samples - n_pos), replace=False),
        ]
    )
    pick.sort()
    return CalibrationData(
        prep.image(batch.images[pick]),
        prep.metadata(batch.metadata[pick]) if use_metadata else None,
    )


def convert_run(
    run_dir: str | Path,
    *,
    only: tuple[str, ...] | None = None,
    calibration_samples: int = 256,
    data_dir: str | Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Converted]:
    """Converts each checkpoint of the run per PLAN; writes .tflite + card atomically.

    Args:
        data_dir: the run's dataset where it is now [default: where config.json records
            it, relative to the run first]; its manifest must be the one trained on.

    Raises:
        EdgepedError: the run has no config, its dataset cannot be found (or is another
            one), or there are no checkpoints to convert.
    """
    from edgeped.train.checkpoints import load_checkpoint
    from edgeped.train.run_dir import resolve_run_dataset

    run = Path(run_dir)
    config = read_checked(
        run / CONFIG_FILE,
        "edgeped.train_config",
        f"run config ({CONFIG_FILE})",
        "the run's config.json is damaged: train the run again (`edgeped train --overwrite`)",
    )
    dataset = Dataset.open(resolve_run_dataset(run, data_dir, command="convert").absolute())
    image_rule = str((config.get("config") or {}).get("image_rule", "fixed"))
    prep = Preprocessing.from_manifest_stats(dataset.metadata_stats(), image_rule=image_rule)
    plan = [p for p in PLAN if only is None or p[0] in only]
    if only:
        unknown = sorted(set(only) - {p[0] for p in PLAN})
        if unknown:
            raise EdgepedError(
                f"unknown model name(s) {unknown}", f"choose from {', '.join(p[0] for p in PLAN)}"
            )
    todo = []
    for name, candidates, mode in plan:
        found = next((c for c in candidates if (run / c).is_file()), None)
        if found:
            todo.append((name, found, mode))
    if not todo:
        raise EdgepedError(f"no checkpoints to convert in {run}", "run `edgeped train` first")
    parents = {}
    if (run / TRAIN_LOG_FILE).is_file():
        parents = read_checked(
            run / TRAIN_LOG_FILE,
            "edgeped.train_log",
            "train log",
            "the run's train_log.json is damaged: train the run again",
        ).get("parents", {})
    calibration = None
    models: dict[str, object] = {}
    out = []
    for name, checkpoint, mode in todo:
        progress(f"converting {checkpoint} -> {name}.tflite ({mode})")
        if checkpoint not in models:
            models[checkpoint] = load_checkpoint(run / checkpoint)
        model = models[checkpoint]
        use_meta = len(model.inputs) > 1
        if mode != "float32" and calibration is None:
            calibration = calibration_data(
                dataset,
                prep,
                samples=calibration_samples,
                use_metadata=use_meta,
                seed=config["config"]["seed"],
            )
        tflite = convert_model(model, mode, calibration)
        path = run / f"{name}.tflite"
        card = build_card(
            tflite,
            file_name=path.name,
            mode=mode,
            architecture=model.name,
            parameters=int(model.count_params()),
            prep=prep,
            source={
                "checkpoint": checkpoint,
                "checkpoint_sha256": sha256_file(run / checkpoint),
                "float_parent": parents.get(checkpoint, checkpoint),
                "dataset": str(dataset.root),
                "dataset_manifest_sha256": dataset.manifest_sha256,
                "calibration_samples": 0 if mode == "float32" else int(calibration.image.shape[0]),
            },
        )
        # The model and its card change together (an interrupt never leaves a new
        # model under an old card).
        write_group_atomic({path: tflite, card_path(path): card_bytes(card)})
        out.append(
            Converted(name, path, card_path(path), mode, len(tflite), card["model"]["sha256"])
        )
    return out
