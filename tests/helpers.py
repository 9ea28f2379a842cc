"""Plain helpers the tests import (`from helpers import make_batch`): pytest puts tests/ on
sys.path, so this works from any working directory, unlike `from tests.conftest import`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeped.data.schema import CROP_SHAPE, CropBatch

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNNER = REPO_ROOT / "device" / "runner.py"  # the device harness the tests run


def device_module(name: str):
    """A module of the on-board package (device/edgeped_device), imported as the board does."""
    import importlib
    import sys

    if str(RUNNER.parent) not in sys.path:
        sys.path.insert(0, str(RUNNER.parent))
    return importlib.import_module(f"edgeped_device.{name}")


def make_batch(n: int = 8, *, seed: int = 0, drive: str = "d0", positives: int = 2) -> CropBatch:
    """A hand-made batch of n records with a few NaN metadata values."""
    rng = np.random.default_rng(seed)
    meta = rng.normal(size=(n, 6)).astype(np.float32)
    meta[0, :] = np.nan
    meta[1, 2] = np.nan
    labels = np.zeros(n, np.int64)
    labels[:positives] = 1
    return CropBatch.validated(
        images=rng.integers(0, 256, (n, *CROP_SHAPE), dtype=np.uint8),
        metadata=meta,
        labels=labels,
        lighting=np.array(["day", "night"] * (n // 2) + ["day"] * (n % 2)),
        weather=np.full(n, "clear"),
        scene=np.full(n, "urban"),
        hard_negative=np.where(labels == 1, "none", "pole"),
        drive_id=np.full(n, drive),
        crop_id=np.array([f"{drive}-{i}" for i in range(n)]),
    )
