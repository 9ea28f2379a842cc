"""Checkpoints of the training stages: atomic .h5 saves, loading, QAT input ranges.

Every stage writes one Keras .h5 into the run directory (HDF5 is the format
tfmot's quantize_scope documents for QAT models); `edgeped convert` loads them back.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from contextlib import nullcontext
from pathlib import Path

from edgeped.errors import EdgepedError

INPUT_RANGE = (-1.0, 127.0 / 128.0)  # (u8 - 128) / 128 for u8 in [0, 255]


def save_h5(model, path: Path, scope=None) -> None:
    """Saves a Keras model atomically (temp file in the same folder, then rename)."""
    fd, tmp = tempfile.mkstemp(suffix=".h5", dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    try:
        # HDF5 is the format tfmot's quantize_scope documents for QAT models; Keras's
        # "legacy format" notice about it is expected here.
        with warnings.catch_warnings(), scope() if scope is not None else nullcontext():
            warnings.filterwarnings("ignore", message=".*HDF5 file.*", category=UserWarning)
            model.save(tmp, include_optimizer=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path):
    """Loads a float or QAT checkpoint (QAT needs tfmot's quantize scope)."""
    from edgeped._keras import keras, tfmot

    p = Path(path)
    if not p.is_file():
        raise EdgepedError(f"checkpoint not found: {p}", "run `edgeped train` first")
    try:
        with tfmot().quantization.keras.quantize_scope():
            return keras.models.load_model(p, compile=False)
    except (OSError, ValueError) as exc:
        raise EdgepedError(
            f"cannot load checkpoint {p}: {exc}", "the file is corrupt or not a Keras .h5: retrain"
        ) from exc


def fix_input_ranges(
    qat_model,
    metadata_range: tuple[float, float] | None = None,
    image_range: tuple[float, float] = INPUT_RANGE,
) -> int:
    """Pins the image input quantiser to `image_range` (the image rule's, see
    edgeped.data.preprocess.IMAGE_INPUT_RANGES; by default [-1, 127/128], q = u8 - 128).

    tfmot tracks the input range from data; pinning it makes the converted
    model's input scale exact (1/128 for the fixed rule) with zero point 0. With `metadata_range`
    the metadata input (z clipped to +/-clip, mask 0/1) is pinned too: its
    AllValuesQuantizer assigns min/max locally on each replica, so under
    multi-worker training the workers' ranges diverge unless they are fixed.
    Returns how many quantisers were pinned.
    """
    pinned = 0
    for layer in qat_model.layers:
        if type(layer).__name__ != "QuantizeLayer":
            continue
        rank = len(layer.input_shape)
        if rank == 4:
            low, high = image_range
        elif rank == 2 and metadata_range is not None:
            low, high = metadata_range
        else:
            continue
        # Match the suffix: the variables carry the layer's own (uniquified) name, e.g.
        # quantize_layer_1/quantize_layer_1_min, in a process that built several models.
        values = {
            key: w
            for w in layer.weights
            for key in ("_min", "_max")
            if w.name.split("/")[-1].split(":")[0].endswith(key)
        }
        if not values:  # no quantiser here (the input feeds a layer that quantises it)
            continue
        values["_min"].assign(low)
        values["_max"].assign(high)
        pinned += 1
    return pinned
