"""Scores crops with a .tflite model through LiteRT, exactly as the device would."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from edgeped.convert.inspect import load_interpreter, tensor_infos
from edgeped.data.preprocess import Preprocessing
from edgeped.errors import EdgepedError


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """Float -> integer tensor with the tensor's own parameters (round half to even)."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


def int8_threshold(score_threshold: float, scale: float, zero_point: int) -> int:
    """The lowest raw int8 output whose dequantised probability is >= ``score_threshold``.

    Decided with eval's own dequantisation (float32, as `dequantize` computes it), so a
    device comparing raw outputs makes exactly eval's decision on every crop. It may be
    128, which no int8 output reaches: a threshold above the largest score means "never
    pedestrian".
    """
    q = np.arange(-128, 128)
    hits = np.flatnonzero(dequantize(q, scale, zero_point).astype(np.float64) >= score_threshold)
    if hits.size:
        return int(q[hits[0]])
    return max(128, int(np.ceil(score_threshold / scale - 1e-9) + zero_point))


@dataclass
class Scores:
    """Probabilities (dequantised for int8 models) and the raw output tensor values."""

    probability: np.ndarray  # (N,) float32
    raw: np.ndarray  # (N,) int8 or float32, as the model produced


class TfliteScorer:
    """Holds one interpreter; scores batches of uint8 crops + raw metadata."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        prep: Preprocessing,
        *,
        batch: int = 64,
        num_threads: int = 2,
    ) -> None:
        self.interpreter = load_interpreter(model_path, num_threads=num_threads)
        self.inputs, self.outputs = tensor_infos(self.interpreter)
        if len(self.outputs) != 1:
            raise EdgepedError(
                f"{model_path} has {len(self.outputs)} outputs, expected 1 score",
                "export a model with a single [N, 1] score output",
            )
        self.prep = prep
        self.batch = batch
        for t in self.inputs:
            self.interpreter.resize_tensor_input(t.index, [batch, *t.shape[1:]])
        self.interpreter.allocate_tensors()

    def _feed(self, info, x: np.ndarray) -> None:
        if info.dtype in ("int8", "uint8"):
            x = quantize(x, info.scale, info.zero_point, info.dtype)
        self.interpreter.set_tensor(info.index, x.astype(info.dtype, copy=False))

    def score(self, images: np.ndarray, metadata: np.ndarray) -> Scores:
        n = images.shape[0]
        if n == 0:
            raise EdgepedError("no crops to score", "the split is empty")
        out_info = self.outputs[0]
        raw = np.empty(n, np.dtype(out_info.dtype))
        for start in range(0, n, self.batch):
            stop = min(start + self.batch, n)
            pad = self.batch - (stop - start)
            img = images[start:stop]
            meta = metadata[start:stop]
            if pad:
                img = np.concatenate([img, np.zeros((pad, *img.shape[1:]), img.dtype)])
                meta = np.concatenate([meta, np.zeros((pad, meta.shape[1]), meta.dtype)])
            for info in self.inputs:
                self._feed(
                    info, self.prep.image(img) if info.role == "image" else self.prep.metadata(meta)
                )
            self.interpreter.invoke()
            raw[start:stop] = self.interpreter.get_tensor(out_info.index).reshape(-1)[
                : stop - start
            ]
        prob = (
            dequantize(raw, out_info.scale, out_info.zero_point)
            if out_info.dtype in ("int8", "uint8")
            else raw.astype(np.float32)
        )
        return Scores(prob, raw)
