"""uint8 crops and raw metadata to the model's input tensors, and the rule's JSON.

The arithmetic is the training side's, bit for bit (tests/test_runner.py compares them).
"""

from __future__ import annotations

import array
import bisect
import json
import math

from .common import META_FEATURES, RunnerError
from .model import ModelIO

IMAGE_RULES = ("fixed", "standardize")


# Batches up to this many crops take the per-value Python path for metadata and outputs.
SMALL_BATCH = 16
_F32_MAX = 3.4028234663852886e38  # nan_to_num's stand-in for +/-inf in float32
_TOP_BITS: list = []  # numpy's uint64 0x8080808080808080, made once numpy is imported


def _is_float32(dtype, np) -> bool:
    """Whether a tensor's dtype is float32, without building dtypes on every call."""
    if dtype is np.float32:
        return True
    if dtype is np.int8:
        return False
    return np.dtype(dtype) == np.dtype(np.float32)


# The "standardize" rule's constants: the twin of edgeped.data.preprocess (a test keeps
# the two bit-identical).
STD_FLOOR = 4.0
STD_OUT_SCALE = 0.5
STD_OUT_CLIP = 2.0


def standardize_tables(crops, np):
    """Per crop and channel, the float32 input value of every u8 level: (N, 3, 256).

    Mean and std come from exact sums (integers below 2**53 in float64: any summation
    order gives the same bits) and float64 arithmetic, so every machine computes the same
    table bit for bit. The sums run over a channel-planar float64 copy: numpy's fast path
    is a long contiguous inner loop, not one of 3 channels (docs/robustness.md, *Cost*).
    """
    n, channels = crops.shape[0], crops.shape[-1]
    planar = np.ascontiguousarray(crops.reshape(n, -1, channels).transpose(0, 2, 1))
    x = planar.astype(np.float64)
    count = x.shape[2]
    total = x.sum(axis=2)
    x *= x
    squares = x.sum(axis=2)
    mean = total / count
    var = (squares * count - total * total) / (float(count) * count)
    inv = STD_OUT_SCALE / np.maximum(np.sqrt(np.maximum(var, 0.0)), STD_FLOOR)
    levels = np.arange(256, dtype=np.float64)
    x = (levels[None, None, :] - mean[..., None]) * inv[..., None]
    return np.clip(x, -STD_OUT_CLIP, STD_OUT_CLIP).astype(np.float32)


def lookup(crops, tables, np):
    """Every pixel through its crop's channel table: one gather, the table's dtype."""
    n, channels = crops.shape[0], crops.shape[-1]
    wide = np.uint16 if n * channels * 256 <= 65536 else np.uint32
    index = crops.astype(wide)
    by_channel = index.reshape(n, -1, channels)
    for c in range(1, channels):  # strided but long inner loops, unlike a broadcast over 3
        by_channel[:, :, c] += c * 256
    if n > 1:
        index.reshape(n, -1)[...] += (np.arange(n, dtype=wide) * (channels * 256))[:, None]
    return np.take(tables.reshape(-1), index)


class Preprocessor:
    """uint8 crops and raw metadata to the model's input tensors (the training-side rule)."""

    def __init__(self, io: ModelIO, mean, std, clip: float, image_rule: str = "fixed") -> None:
        np = io.np
        self.np = np
        self.io = io
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.clip = float(clip)
        if image_rule not in IMAGE_RULES:
            raise RunnerError(
                "preprocess_invalid",
                f"unknown image rule {image_rule!r}",
                f"the model card's preprocessing.image.rule must be one of {IMAGE_RULES}",
            )
        self.image_rule = image_rule
        if not _TOP_BITS:
            _TOP_BITS.append(np.uint64(0x8080808080808080))
        # The metadata rule per value in plain Python for small batches: a dozen numpy calls
        # on 12 values cost ~170 k a76 instructions of call overhead (docs/optimization.md).
        self._mean = [float(v) for v in self.mean.tolist()]
        self._std = [float(v) for v in self.std.tolist()]
        self._clip = float(np.float32(self.clip))
        self._small_ok = all(v != 0 and v == v for v in self._std)
        self._thresholds = False  # not built yet (built on the first small batch)

    def image(self, crops):
        np = self.np
        d = self.io.image
        if self.image_rule == "standardize":
            tables = standardize_tables(crops, np)
            if np.dtype(d["dtype"]) == np.dtype(np.float32):
                return lookup(crops, tables, np)
            # Fused: quantise the 3 x 256 table values, then one gather per pixel; the same
            # int8 values as quantising each pixel's float, since a pixel's value depends
            # only on its level and channel.
            scale, zero = d["quantization"]
            q = np.clip(np.round(tables / scale) + zero, -128, 127).astype(np.int8)
            return lookup(crops, q, np)
        if _is_float32(d["dtype"], np):
            return (crops.astype(np.float32) - 128.0) / 128.0
        scale, zero = d["quantization"]
        if abs(scale - 1.0 / 128.0) < 1e-9 and zero == 0:
            # u8 - 128 as int8 is u8 with its top bit flipped: one XOR, eight pixels per
            # 64-bit word (numpy's uint8 loop is not vectorised on aarch64); the arrays
            # are made over the same bytes, not reshaped and viewed call by call.
            if crops.flags.c_contiguous and crops.nbytes % 8 == 0:
                words = np.bitwise_xor(
                    np.ndarray((crops.nbytes // 8,), np.uint64, crops), _TOP_BITS[0]
                )
                return np.ndarray(crops.shape, np.int8, words)
            return np.bitwise_xor(crops, np.uint8(0x80)).view(np.int8)
        x = (crops.astype(np.float32) - 128.0) / 128.0
        return np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)

    def meta(self, values):
        np = self.np
        if len(values) <= SMALL_BATCH and values.dtype == np.float32:
            thresholds = self._meta_thresholds()
            if thresholds is not None:
                return self._meta_small(values, thresholds)
        return self._meta_numpy(values)

    def _meta_thresholds(self):
        """Per field, the smallest float32 value reaching each int8 level of the meta input.

        The quantised rule (standardise, clip, divide by the scale, round, clip) is a
        non-decreasing function of the raw value, so a field's int8 value is its lowest
        level plus the number of thresholds at or below the value: one `bisect` per value
        in place of a dozen numpy calls (docs/optimization.md, *End-to-end overhead*).
        Each threshold is found by bisection over the float32 values in order, evaluating
        `_meta_numpy` itself, so the two give the same bytes by construction. None for a
        float32 meta input or a rule that cannot be inverted (std 0).
        """
        if self._thresholds is not False:
            return self._thresholds
        np = self.np
        self._thresholds = None
        if np.dtype(self.io.meta["dtype"]) != np.dtype(np.int8) or not self._small_ok:
            return None
        fields = len(self._mean)
        levels = np.arange(-127, 128)  # thresholds of levels -127..127 over level -128

        # float32 values in order <-> integers in order (sign-magnitude to two's complement).
        def to_float(k):
            bits = np.where(k < 0, (-k) | 0x80000000, k).astype(np.uint32)
            return bits.view(np.float32)

        top = int(np.array([_F32_MAX], np.float32).view(np.uint32)[0])
        lo = np.full((len(levels), fields), -top - 1, np.int64)  # f(lo) < level, or -inf
        hi = np.full((len(levels), fields), top, np.int64)  # f(hi) >= level, or +inf
        with np.errstate(over="ignore", invalid="ignore"):  # the bisection probes extremes
            f_low = self._meta_numpy(np.full((1, fields), -_F32_MAX, np.float32))[0, :fields]
            f_high = self._meta_numpy(np.full((1, fields), _F32_MAX, np.float32))[0, :fields]
            while np.any(hi - lo > 1):
                mid = (lo + hi) // 2
                q = self._meta_numpy(to_float(mid))[:, :fields].astype(np.int64)
                reached = q >= levels[:, None]
                hi = np.where(reached, mid, hi)
                lo = np.where(reached, lo, mid)
        values = to_float(hi).astype(np.float64)
        table = []
        for i in range(fields):
            column = []
            for j, level in enumerate(levels.tolist()):
                if f_low[i] >= level:
                    column.append(-math.inf)
                elif f_high[i] < level:
                    column.append(math.inf)
                else:
                    column.append(float(values[j, i]))
            table.append(column)
        unknown = self._meta_numpy(np.full((1, fields), np.nan, np.float32))[0]
        missing, absent = int(unknown[0]), unknown[fields:].tolist()
        flags = self._meta_numpy(np.zeros((1, fields), np.float32))[0, fields:].tolist()
        self._thresholds = (table, missing, flags, absent)
        return self._thresholds

    def _meta_small(self, values, thresholds):
        table, missing, flags, absent = thresholds
        top, right = _F32_MAX, bisect.bisect_right
        levels = []
        for row in values.tolist():
            # +/-inf count as +/-float32 max (numpy's nan_to_num), below the unreachable
            # levels' infinite thresholds.
            levels += [
                missing
                if v != v
                else right(table[i], top if v > top else -top if v < -top else v) - 128
                for i, v in enumerate(row)
            ]
            levels += [absent[i] if v != v else flags[i] for i, v in enumerate(row)]
        return self.np.frombuffer(array.array("b", levels), self.np.int8).reshape(-1, 12)

    def _meta_numpy(self, values):
        np = self.np
        present = ~np.isnan(values)
        z = np.where(present, (np.nan_to_num(values) - self.mean) / self.std, 0.0)
        z = np.clip(z, -self.clip, self.clip)
        x = np.concatenate([z, present.astype(np.float32)], axis=1).astype(np.float32)
        d = self.io.meta
        if np.dtype(d["dtype"]) == np.dtype(np.float32):
            return x
        scale, zero = d["quantization"]
        return np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)

    def set_inputs(self, crops, metadata) -> None:
        interp = self.io.interpreter
        interp.set_tensor(self.io.image["index"], self.image(crops))
        if self.io.meta is not None:
            interp.set_tensor(self.io.meta["index"], self.meta(metadata))

    def raw_output(self):
        return self.io.interpreter.get_tensor(self.io.output["index"]).reshape(self.io.batch, -1)

    def probabilities(self, raw):
        np = self.np
        d = self.io.output
        if _is_float32(d["dtype"], np):
            return raw[:, 0].astype(np.float32)
        scale, zero = d["quantization"]
        if len(raw) <= SMALL_BATCH:
            # (q - zero) is a small integer and scale a float32: the product rounded once to
            # float32 is numpy's float32 multiply.
            scale = array.array("f", [scale])[0]  # numpy multiplies by the float32 scale
            return np.frombuffer(
                array.array("f", [(row[0] - zero) * scale for row in raw.tolist()]), np.float32
            )
        return ((raw[:, 0].astype(np.float32) - zero) * scale).astype(np.float32)


_PREPROCESS_SHAPE = (
    '{"image": {"rule": "fixed"|"standardize"}, "metadata": {"mean": [6], "std": [6], "clip": 4.0}}'
)


def _read_preprocess(path) -> dict:
    """The preprocessing JSON as a dict (its metadata and image rule are read from it)."""
    try:
        with open(path, encoding="utf-8") as handle:
            spec = json.load(handle)
    except (OSError, ValueError) as exc:
        raise RunnerError(
            "preprocess_invalid",
            f"cannot read preprocessing {path}: {exc}",
            f"it must hold {_PREPROCESS_SHAPE}",
        ) from exc
    if not isinstance(spec, dict):
        raise RunnerError(
            "preprocess_invalid",
            f"cannot read preprocessing {path}: not a JSON object",
            f"it must hold {_PREPROCESS_SHAPE}",
        )
    return spec


def load_preprocess(path):
    if path is None:
        return [0.0] * META_FEATURES, [1.0] * META_FEATURES, 4.0, None
    spec = _read_preprocess(path)
    try:
        spec = spec["metadata"]
        mean, std = [float(v) for v in spec["mean"]], [float(v) for v in spec["std"]]
        clip = float(spec.get("clip", 4.0))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunnerError(
            "preprocess_invalid",
            f"cannot read preprocessing {path}: {exc}",
            'it must hold {"metadata": {"mean": [6], "std": [6], "clip": 4.0}}',
        ) from exc
    finite = all(math.isfinite(v) for v in (*mean, *std, clip))
    if len(mean) != META_FEATURES or len(std) != META_FEATURES or min(std) <= 0 or not finite:
        raise RunnerError(
            "preprocess_invalid",
            f"{path}: mean/std must be 6 finite values, std > 0, clip finite",
            "regenerate the preprocessing section of the model card",
        )
    return mean, std, clip, path


def load_image_rule(path) -> str:
    """The image rule named in a preprocessing JSON ("fixed" when it names none)."""
    if path is None:
        return "fixed"
    image = _read_preprocess(path).get("image") or {}
    rule = image.get("rule", "fixed") if isinstance(image, dict) else image
    if rule not in IMAGE_RULES:
        raise RunnerError(
            "preprocess_invalid",
            f"{path}: unknown image rule {rule!r}",
            f"use one of {IMAGE_RULES} (regenerate the preprocessing section of the model card)",
        )
    return rule
