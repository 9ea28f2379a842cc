"""Calibration data for the untrained models the cost sweeps convert: uniform(-1, 1) inputs.

Instruction counts depend on the graph and the int8 ranges' shape, not on trained
weights, so untrained models calibrated on random inputs stand in for trained ones (see
benchmarks/README.md). The draws are those of the earlier hand-written representative
datasets (one generator, sample by sample, input by input), so the models are the same.
"""

from __future__ import annotations

import numpy as np

from edgeped.convert.converter import CalibrationData


def random_calibration(model, count: int, seed: int = 0) -> CalibrationData:
    """`count` one-record samples of uniform(-1, 1) float32 per model input.

    Args:
        model: a Keras model whose inputs are named "image" (and "meta").
        count: how many samples.
        seed: the generator's seed.

    Raises:
        ValueError: an input other than "image" and "meta".
    """
    names = [t.name.split(":")[0] for t in model.inputs]
    unknown = sorted(set(names) - {"image", "meta"})
    if unknown or "image" not in names:
        raise ValueError(f"model inputs {names}: need 'image' (and 'meta'), got {unknown}")
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    rng = np.random.default_rng(seed)
    drawn: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for _ in range(count):
        for name, shape in zip(names, shapes, strict=True):
            drawn[name].append(rng.uniform(-1, 1, (1, *shape)).astype(np.float32))
    meta = np.concatenate(drawn["meta"]) if "meta" in drawn else None
    return CalibrationData(image=np.concatenate(drawn["image"]), meta=meta)
