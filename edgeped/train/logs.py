"""Training logs for outside tools, switched on in the config's `[logging]` table.

- `tensorboard = true`: TensorBoard event files per stage in `RUN_DIR/tensorboard/<stage>/`
  (`tensorboard --logdir RUN_DIR/tensorboard`).
- `csv = true`: one row per epoch in `RUN_DIR/train_log.<stage>.csv` (Keras CSVLogger:
  epoch, loss, val_loss, val_auc_pr, ...).

`train_log.json` is written either way; these are extra views of the same history.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgeped.errors import EdgepedError
from edgeped.train.config import LoggingConfig


def log_paths(run_dir: Path, stage: str, config: LoggingConfig) -> dict[str, Path]:
    """Where the enabled logs of ``stage`` go: {"tensorboard": dir, "csv": file}."""
    paths = {}
    if config.tensorboard:
        paths["tensorboard"] = run_dir / "tensorboard" / stage
    if config.csv:
        paths["csv"] = run_dir / f"train_log.{stage}.csv"
    return paths


def log_callbacks(run_dir: Path, stage: str, config: LoggingConfig) -> list:
    """The Keras callbacks that write the enabled logs of ``stage`` (empty when both are off)."""
    paths = log_paths(run_dir, stage, config)
    if not paths:
        return []
    from edgeped._keras import keras

    if "tensorboard" in paths and importlib.util.find_spec("tensorboard") is None:
        raise EdgepedError(
            "logging.tensorboard = true needs the tensorboard package",
            "pip install tensorboard, or set tensorboard = false in [logging]",
        )

    callbacks = []
    if "tensorboard" in paths:
        paths["tensorboard"].mkdir(parents=True, exist_ok=True)
        callbacks.append(
            keras.callbacks.TensorBoard(
                log_dir=str(paths["tensorboard"]), write_graph=False, profile_batch=0
            )
        )
    if "csv" in paths:
        callbacks.append(keras.callbacks.CSVLogger(str(paths["csv"])))
    return callbacks
