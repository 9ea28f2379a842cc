#!/usr/bin/env python3
"""Benchmarks one .tflite model on the machine it runs on and prints one JSON result.

This file is copied to the target (an ECU, an emulated arm64 board or the host) and run
there. It needs only Python 3.9+, numpy and ai-edge-litert (or tflite-runtime): never
TensorFlow, never the edgeped package.

What it measures: init time, first-inference time, per-invoke latency percentiles
(p50/p90/p95/p99 with distribution-free confidence bounds), end-to-end time per crop
including preprocessing, peak RSS of the load+invoke phase and of the whole process,
output parity against golden outputs computed on the host, an environment fingerprint
and, on the emulated board, guest instructions per invoke.

Shadow mode (``MODEL --shadow CANDIDATE --shadow-spec S.json --shadow-log LOG``) loads
the baseline and the candidate in this one process, feeds both the same crops and
appends one CRC-checked record per crop (id, time, both scores and decisions at their own
thresholds, both invoke times, metadata, image brightness/contrast) to an append-only
log; it also measures what shadowing costs: added time per crop, added peak RSS and, on
the emulated board, added instructions per crop.

Exit codes: 0 success (parity may still have failed: see "parity.ok"), 3 a problem
reported as {"ok": false, "error": {"code", "problem", "fix"}} on stdout, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import array
import bisect
import hashlib
import json
import math
import os
import platform
import resource
import sys
import threading
import time
import zlib

# One BLAS thread keeps the background load and the instruction count predictable; it
# must be set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

RESULT_KIND = "edgeped.device_result"
RESULT_SCHEMA_VERSION = 1
IMAGE_SHAPE = (128, 64, 3)
META_FEATURES = 6
MARKER_START = 0x45504544494E5331  # must match tools/qemu_insncount.c
MARKER_STOP = 0x45504544494E5330
# The host's exit codes (edgeped.errors.ExitCode, BSD sysexits): a bad command line, a bad
# input file, a bug. The JSON line says which problem; the host reads that, not the code.
EXIT_USAGE = 64
EXIT_PROBLEM = 65
EXIT_INTERNAL = 70


class RunnerError(Exception):
    """A problem the host side maps to a clear message: a stable code, what, how to fix."""

    def __init__(self, code: str, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.code = code
        self.problem = problem
        self.fix = fix


# --------------------------------------------------------------------------- runtime


def import_runtime():
    """Returns (numpy, Interpreter, load_delegate, OpResolverType or None, runtime info)."""
    try:
        import numpy as np
    except ImportError as exc:
        raise RunnerError(
            "runtime_missing",
            f"numpy is not importable on this target ({exc})",
            "install numpy for this Python (pip install numpy)",
        ) from exc
    try:
        from ai_edge_litert import interpreter as litert

        name = "ai-edge-litert"
    except ImportError:
        try:
            from tflite_runtime import interpreter as litert

            name = "tflite-runtime"
        except ImportError as exc:
            raise RunnerError(
                "runtime_missing",
                f"neither ai_edge_litert nor tflite_runtime is importable on this target "
                f"(python {sys.executable})",
                "install ai-edge-litert (pip install ai-edge-litert) for this Python, or "
                "point the target's python at one that has it",
            ) from exc
    resolver = getattr(litert, "OpResolverType", None)
    info = {"name": name, "version": _dist_version(name), "numpy": np.__version__}
    return np, litert.Interpreter, litert.load_delegate, resolver, info


def _dist_version(name: str) -> str:
    try:
        from importlib import metadata

        return metadata.version(name)
    except Exception:  # noqa: BLE001 - version is informational only
        return "unknown"


# --------------------------------------------------------------------------- model file


def read_model(path: str) -> bytes:
    """Reads the model and rejects files that cannot be a TFLite flatbuffer."""
    if not os.path.isfile(path):
        raise RunnerError(
            "model_missing",
            f"model file not found: {path}",
            "push the model first or check the path",
        )
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise RunnerError(
            "model_corrupt",
            f"{path} is not a TFLite model ({len(data)} bytes, no TFL3 identifier)",
            "the file is corrupt or truncated: convert or push it again",
        )
    return data


def make_interpreter(data: bytes, path: str, Interpreter, load_delegate, resolver, args):
    kwargs = {"model_content": data, "num_threads": args.threads}
    if not args.xnnpack:
        if resolver is None:
            raise RunnerError(
                "unsupported_option",
                "this runtime cannot turn XNNPACK off",
                "use ai-edge-litert, or run with XNNPACK on",
            )
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if args.delegate:
        options = dict(item.split("=", 1) for item in args.delegate_option)
        try:
            kwargs["experimental_delegates"] = [load_delegate(args.delegate, options)]
        except (ValueError, OSError) as exc:
            raise RunnerError(
                "delegate_failed",
                f"cannot load delegate {args.delegate}: {exc}",
                "check the shared library path and its options",
            ) from exc
    try:
        interpreter = Interpreter(**kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise RunnerError(
            "model_corrupt",
            f"the runtime rejected {path}: {exc}",
            "the file is corrupt, truncated or uses ops this runtime lacks: "
            "convert or push it again",
        ) from exc
    return interpreter


# --------------------------------------------------------------------------- model I/O


class ModelIO:
    """The model's image/meta inputs and probability output, found by rank."""

    def __init__(self, interpreter, np) -> None:
        self.np = np
        self.interpreter = interpreter
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        images = [d for d in inputs if len(d["shape"]) == 4]
        metas = [d for d in inputs if len(d["shape"]) == 2]
        described = ", ".join(
            f"{d['name']}{list(d['shape'])}:{np.dtype(d['dtype']).name}" for d in inputs
        )
        if len(images) != 1 or len(metas) > 1 or len(images) + len(metas) != len(inputs):
            raise RunnerError(
                "unsupported_model_io",
                f"expected one 4-D image input and at most one 2-D meta input, got {described}",
                "export the model with inputs image [N,128,64,3] and optional meta [N,12]",
            )
        self.image = images[0]
        self.meta = metas[0] if metas else None
        if tuple(int(x) for x in self.image["shape"][1:]) != IMAGE_SHAPE:
            raise RunnerError(
                "unsupported_model_io",
                f"image input {list(self.image['shape'])} is not [N,128,64,3]",
                "export the model with a 128x64 RGB NHWC input",
            )
        if self.meta is not None and int(self.meta["shape"][1]) != 2 * META_FEATURES:
            raise RunnerError(
                "unsupported_model_io",
                f"meta input {list(self.meta['shape'])} is not [N,12]",
                "meta must be concat(z[6], mask[6])",
            )
        for d in [self.image] + ([self.meta] if self.meta else []):
            if np.dtype(d["dtype"]) not in (np.dtype(np.int8), np.dtype(np.float32)):
                raise RunnerError(
                    "unsupported_model_io",
                    f"input {d['name']} has dtype {np.dtype(d['dtype']).name}",
                    "inputs must be int8 (quantised) or float32",
                )
        if len(outputs) != 1:
            raise RunnerError(
                "unsupported_model_io",
                f"expected one output tensor, got {len(outputs)}",
                "export a single [N,1] probability output",
            )
        self.output = outputs[0]
        self.batch = int(self.image["shape"][0])

    def resize(self, batch: int) -> None:
        """Sets the batch size, if the model allows it."""
        if batch == self.batch:
            return
        try:
            self.interpreter.resize_tensor_input(self.image["index"], [batch, *IMAGE_SHAPE])
            if self.meta is not None:
                self.interpreter.resize_tensor_input(self.meta["index"], [batch, 2 * META_FEATURES])
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise RunnerError(
                "batch_unsupported",
                f"the model does not accept batch {batch}: {exc}",
                "run with --batch 1 or export the model with a dynamic batch",
            ) from exc
        self.batch = batch
        by_index = {d["index"]: d for d in self.interpreter.get_input_details()}
        self.image = by_index[self.image["index"]]
        if self.meta is not None:
            self.meta = by_index[self.meta["index"]]
        self.output = self.interpreter.get_output_details()[0]

    def quantisation(self) -> dict:
        def q(d):
            scale, zero = d["quantization"]
            return {
                "dtype": self.np.dtype(d["dtype"]).name,
                "scale": float(scale),
                "zero_point": int(zero),
                "shape": [int(x) for x in d["shape"]],
            }

        out = {"image": q(self.image), "output": q(self.output)}
        if self.meta is not None:
            out["meta"] = q(self.meta)
        return out


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
        missing = int(self._meta_numpy(np.full((1, fields), np.nan, np.float32))[0, 0])
        flags = self._meta_numpy(np.zeros((1, fields), np.float32))[0, fields:].tolist()
        absent = self._meta_numpy(np.full((1, fields), np.nan, np.float32))[0, fields:].tolist()
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


# --------------------------------------------------------------------------- inputs


def load_crops(path, np, count: int, seed: int):
    """Returns (images uint8 [N,128,64,3], metadata float32 [N,6], description)."""
    if path is None:
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, size=(count, *IMAGE_SHAPE), dtype=np.uint8)
        metadata = rng.normal(size=(count, META_FEATURES)).astype(np.float32)
        metadata[rng.random(metadata.shape) < 0.1] = np.nan
        return images, metadata, {"source": "random", "seed": seed, "count": count}
    if not os.path.isfile(path):
        raise RunnerError(
            "crops_missing",
            f"crops file not found: {path}",
            "push the .npz with the model or run without --crops",
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            images = npz["images"]
            metadata = npz["metadata"] if "metadata" in npz.files else None
    except (OSError, ValueError, KeyError) as exc:
        raise RunnerError(
            "crops_invalid",
            f"cannot read crops {path}: {exc}",
            "the .npz needs 'images' uint8 [N,128,64,3] and 'metadata' float32 [N,6]",
        ) from exc
    if (
        images.dtype != np.uint8
        or images.ndim != 4
        or tuple(images.shape[1:]) != IMAGE_SHAPE
        or len(images) == 0
    ):
        raise RunnerError(
            "crops_invalid",
            f"crops 'images' is {images.dtype} {list(images.shape)}",
            "images must be uint8 [N,128,64,3] with N >= 1",
        )
    if metadata is None:
        metadata = np.full((len(images), META_FEATURES), np.nan, dtype=np.float32)
    if metadata.shape != (len(images), META_FEATURES):
        raise RunnerError(
            "crops_invalid",
            f"crops 'metadata' is {list(metadata.shape)}",
            f"metadata must be float32 [{len(images)},6] (NaN = missing)",
        )
    return (
        images,
        metadata.astype(np.float32),
        {"source": path, "sha256": sha256_file(path), "count": int(len(images))},
    )


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


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def batches(images, metadata, batch: int, np):
    """Yields (crops, metadata) batches in order, cycling, forever."""
    n = len(images)
    start = 0
    while True:
        idx = np.arange(start, start + batch) % n
        yield images[idx], metadata[idx]
        start = (start + batch) % n


# --------------------------------------------------------------------------- statistics


def percentile_ci(sorted_values, q: float, confidence: float = 0.95):
    """Distribution-free CI for the q-quantile from order statistics (binomial ranks).

    Returns (low, high) or (None, None) when there are too few samples for the bound.
    """
    n = len(sorted_values)
    if n == 0:
        return None, None
    alpha = 1.0 - confidence
    logp, log1p = math.log(q), math.log1p(-q)
    cdf, acc = [], 0.0
    for k in range(n + 1):
        acc += math.exp(
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * logp
            + (n - k) * log1p
        )
        cdf.append(acc)
    # lower rank l (1-based): largest with P(B <= l-1) <= alpha/2
    lower = None
    for rank in range(1, n + 1):
        if cdf[rank - 1] <= alpha / 2:
            lower = rank
        else:
            break
    upper = None
    for rank in range(1, n + 1):
        if cdf[rank - 1] >= 1 - alpha / 2:
            upper = rank
            break
    low = sorted_values[lower - 1] if lower is not None else None
    high = sorted_values[upper - 1] if upper is not None else None
    return low, high


def summarise(samples_ms, np) -> dict:
    values = sorted(float(v) for v in samples_ms)
    arr = np.asarray(values)
    out = {
        "n": len(values),
        "mean": float(arr.mean()),
        "min": values[0],
        "max": values[-1],
        "std": float(arr.std(ddof=1)) if len(values) > 1 else 0.0,
    }
    for name, q in (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99)):
        out[name] = float(np.percentile(arr, q * 100))
        low, high = percentile_ci(values, q)
        out[f"{name}_ci95"] = [low, high]
    return out


# --------------------------------------------------------------------------- memory


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _process_peak_mb(startup_kb, phase_kb):
    known = [kb for kb in (startup_kb, phase_kb) if kb]
    if known:
        return max(known) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_status_kb(field: str):
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------- background load


class BackgroundLoad:
    """Busy threads or processes that mimic other ECU tasks competing for CPU and cache."""

    def __init__(self, threads: int, processes: int, cpus, np) -> None:
        self.np = np
        self.stop = threading.Event()
        self.workers = []
        self.procs = []
        self.cpus = cpus
        self.buffers = [np.ones((256, 256), np.float32) for _ in range(threads)]
        self.stream = [np.zeros(1 << 21, np.float32) for _ in range(threads)]  # 8 MB each
        self.threads = threads
        self.processes = processes

    def start(self) -> None:
        for i in range(self.threads):
            worker = threading.Thread(target=self._spin, args=(i,), daemon=True)
            worker.start()
            self.workers.append(worker)
        if self.processes:
            import subprocess

            for _ in range(self.processes):
                try:
                    self.procs.append(
                        subprocess.Popen(
                            [sys.executable, os.path.abspath(__file__), "--busy-worker"],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                        )
                    )
                except OSError as exc:
                    self.close()
                    raise RunnerError(
                        "load_processes_unavailable",
                        f"cannot start a background load process here ({exc})",
                        "use --load-threads instead (an emulated board without binfmt "
                        "cannot start child processes)",
                    ) from exc

    def _spin(self, i: int) -> None:
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)
        a, s = self.buffers[i], self.stream[i]
        while not self.stop.is_set():
            a @ a  # BLAS releases the GIL: real CPU contention
            s += 1.0  # streams 8 MB through the cache

    def close(self) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(timeout=5)
        for proc in self.procs:
            proc.kill()
            proc.wait()

    def describe(self) -> dict:
        return {
            "threads": self.threads,
            "processes": self.processes,
            "cpus": sorted(self.cpus) if self.cpus else None,
        }


def busy_worker() -> int:
    import numpy as np

    a = np.ones((256, 256), np.float32)
    s = np.zeros(1 << 21, np.float32)
    while True:
        a @ a
        s += 1.0


# --------------------------------------------------------------------------- fingerprint


def fingerprint(runtime: dict) -> dict:
    env = {
        "machine": platform.machine(),
        "kernel": platform.release(),
        "system": platform.system(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "numpy": runtime["numpy"],
        "runtime": runtime["name"],
        "runtime_version": runtime["version"],
        "cpu_count": os.cpu_count(),
        "hostname": platform.node(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        env["cpu_affinity"] = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        env["cpu_affinity"] = None
    cpu = {}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if (
                    key
                    in (
                        "model name",
                        "CPU part",
                        "CPU implementer",
                        "CPU variant",
                        "Hardware",
                        "Features",
                        "flags",
                    )
                    and key not in cpu
                ):
                    cpu[key] = value if key not in ("Features", "flags") else value[:200]
    except OSError:
        pass
    env["cpu"] = cpu
    env["cpu_model"] = cpu.get("model name") or _arm_core_name(cpu.get("CPU part"))
    base = "/sys/devices/system/cpu/cpu0/cpufreq/"
    for key, name in (
        ("governor", "scaling_governor"),
        ("freq_khz", "scaling_cur_freq"),
        ("max_freq_khz", "cpuinfo_max_freq"),
    ):
        try:
            with open(base + name) as handle:
                env[key] = handle.read().strip()
        except OSError:
            env[key] = None
    return env


def _arm_core_name(part):
    names = {
        "0xd03": "Cortex-A53",
        "0xd04": "Cortex-A35",
        "0xd05": "Cortex-A55",
        "0xd07": "Cortex-A57",
        "0xd08": "Cortex-A72",
        "0xd09": "Cortex-A73",
        "0xd0a": "Cortex-A75",
        "0xd0b": "Cortex-A76",
        "0xd0c": "Neoverse-N1",
        "0xd0d": "Cortex-A77",
        "0xd41": "Cortex-A78",
    }
    return names.get(part, part)


# --------------------------------------------------------------------------- main flow


def marker(fd: int, value: int) -> None:
    """A syscall the instruction-counting QEMU plugin watches for: lseek on /dev/null.

    It succeeds without side effects, so no Python exception (with its allocation noise)
    lands inside the counted region.
    """
    os.lseek(fd, value, os.SEEK_SET)


def run(args) -> dict:
    t_process = time.perf_counter()
    np, Interpreter, load_delegate, resolver, runtime = import_runtime()
    if args.pin:
        os.sched_setaffinity(0, args.pin)
    images, metadata, crops_info = load_crops(args.crops, np, args.random_count, args.seed)
    mean, std, clip, pre_path = load_preprocess(args.preprocess)
    golden = load_golden(args.golden, np) if args.golden else None
    load = BackgroundLoad(args.load_threads, args.load_processes, args.load_cpus, np)
    if args.insn_count and (args.load_threads or args.load_processes):
        raise RunnerError(
            "unsupported_option",
            "instruction counts with a background load would count the load too",
            "run the instruction count without --load-threads/--load-processes",
        )
    load.start()
    # ru_maxrss carries the pre-exec peak of whatever launched us (Linux copies it across
    # exec), so the whole-process peak is taken from VmHWM before and after the reset.
    startup_peak_kb = read_status_kb("VmHWM")
    try:
        phase_reset = reset_peak_rss()
        rss_before_kb = read_status_kb("VmRSS")
        t0 = time.perf_counter()
        model_bytes = read_model(args.model)
        interpreter = make_interpreter(
            model_bytes, args.model, Interpreter, load_delegate, resolver, args
        )
        io = ModelIO(interpreter, np)
        io.resize(args.batch)
        init_ms = (time.perf_counter() - t0) * 1e3
        pre = Preprocessor(io, mean, std, clip, load_image_rule(args.preprocess))
        feed = batches(images, metadata, args.batch, np)

        crops, meta = next(feed)
        t0 = time.perf_counter()
        pre.set_inputs(crops, meta)
        interpreter.invoke()
        pre.probabilities(pre.raw_output())
        first_ms = (time.perf_counter() - t0) * 1e3

        for _ in range(args.warmup):
            crops, meta = next(feed)
            pre.set_inputs(crops, meta)
            interpreter.invoke()

        invoke_ms, e2e_ms = [], []
        clock = time.perf_counter
        t_start = clock()
        while True:
            crops, meta = next(feed)
            t0 = clock()
            pre.set_inputs(crops, meta)
            t1 = clock()
            interpreter.invoke()
            t2 = clock()
            pre.probabilities(pre.raw_output())
            t3 = clock()
            invoke_ms.append((t2 - t1) * 1e3)
            e2e_ms.append((t3 - t0) * 1e3)
            elapsed = t3 - t_start
            if (
                len(invoke_ms) >= args.min_runs and elapsed >= args.min_seconds
            ) or elapsed >= args.max_seconds:
                break
        loop_seconds = clock() - t_start

        model_sha256 = hashlib.sha256(model_bytes).hexdigest()
        parity = (
            check_parity(pre, images, metadata, golden, args, np, model_sha256) if golden else None
        )
        insn = count_instructions(pre, feed, args) if args.insn_count else None
        phase_peak_kb = read_status_kb("VmHWM")
    finally:
        load.close()

    invoke = summarise(invoke_ms, np)
    e2e = summarise(e2e_ms, np)
    per_crop = {
        k: (v / args.batch if isinstance(v, float) else v)
        for k, v in e2e.items()
        if not k.endswith("_ci95")
    }
    result = {
        "ok": True,
        "kind": RESULT_KIND,
        "schema_version": RESULT_SCHEMA_VERSION,
        "model": {
            "path": args.model,
            "sha256": hashlib.sha256(model_bytes).hexdigest(),
            "size_bytes": len(model_bytes),
            "io": io.quantisation(),
            "has_meta_input": io.meta is not None,
        },
        "config": {
            "threads": args.threads,
            "batch": args.batch,
            "xnnpack": args.xnnpack,
            "delegate": args.delegate,
            "pin": sorted(args.pin) if args.pin else None,
            "warmup": args.warmup,
            "min_runs": args.min_runs,
            "min_seconds": args.min_seconds,
            "max_seconds": args.max_seconds,
            "background_load": load.describe(),
            "preprocess": pre_path,
        },
        "inputs": crops_info,
        "init_ms": init_ms,
        "first_inference_ms": first_ms,
        "runs": len(invoke_ms),
        "loop_seconds": loop_seconds,
        "invoke_ms": invoke,
        "e2e_ms_per_invoke": e2e,
        "e2e_ms_per_crop": per_crop,
        # Per-invoke times in run order (the first --keep-samples), for drift/outlier checks.
        "invoke_ms_samples": [round(v, 5) for v in invoke_ms[: args.keep_samples]],
        "e2e_ms_samples": [round(v, 5) for v in e2e_ms[: args.keep_samples]],
        "throughput_crops_per_s": args.batch * len(e2e_ms) / max(sum(e2e_ms) / 1e3, 1e-12),
        "memory": {
            "phase_peak_rss_mb": phase_peak_kb / 1024 if (phase_peak_kb and phase_reset) else None,
            "phase_reset": phase_reset,
            "rss_before_load_mb": rss_before_kb / 1024 if rss_before_kb else None,
            "process_peak_rss_mb": _process_peak_mb(startup_peak_kb, phase_peak_kb),
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
        "parity": parity,
        "instructions": insn,
        "environment": fingerprint(runtime),
        "process_seconds": time.perf_counter() - t_process,
    }
    return result


def load_golden(path, np) -> dict:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise RunnerError(
            "golden_invalid",
            f"cannot read golden outputs {path}: {exc}",
            "recompute the golden outputs on the host",
        ) from exc


def compute_outputs(pre: Preprocessor, images, metadata, np):
    """Runs every crop once in order; returns (raw output [N,...], probabilities [N])."""
    batch = pre.io.batch
    n = len(images)
    raws, probs = [], []
    for start in range(0, n, batch):
        idx = np.arange(start, start + batch) % n  # the last batch wraps to stay full
        pre.set_inputs(images[idx], metadata[idx])
        pre.io.interpreter.invoke()
        raw = pre.raw_output().copy()
        take = min(batch, n - start)
        raws.append(raw[:take])
        probs.append(pre.probabilities(raw)[:take])
    return np.concatenate(raws), np.concatenate(probs)


def check_parity(pre, images, metadata, golden, args, np, model_sha256: str) -> dict:
    raw, probs = compute_outputs(pre, images, metadata, np)
    want_raw = golden.get("raw")
    want_probs = golden.get("probabilities")
    if want_raw is None or want_probs is None or len(want_raw) != len(raw):
        raise RunnerError(
            "golden_invalid",
            f"golden outputs do not match the crops ({len(raw)} crops)",
            "recompute the golden outputs for these crops",
        )
    want_sha = str(golden["model_sha256"]) if "model_sha256" in golden else None
    if want_sha and want_sha != model_sha256:
        raise RunnerError(
            "golden_invalid",
            f"golden outputs were computed for model {want_sha[:12]}, "
            f"not this one ({model_sha256[:12]})",
            "recompute the golden outputs on the host for this model",
        )
    exact = np.issubdtype(raw.dtype, np.integer)
    if exact:
        diff = np.abs(raw.astype(np.int32) - want_raw.astype(np.int32))
        bad = diff.reshape(len(diff), -1).max(axis=1) > 0
    else:
        diff = np.abs(probs.astype(np.float64) - want_probs.astype(np.float64))
        bad = ~(diff <= args.parity_atol)  # NaN outputs count as mismatches
    mismatches = int(bad.sum())
    return {
        "ok": mismatches == 0,
        "exact": bool(exact),
        "n": int(len(raw)),
        "mismatches": mismatches,
        "max_abs_diff": _finite_max(diff, np),
        "unit": "quantised steps" if exact else "probability",
        "atol": 0.0 if exact else args.parity_atol,
        "max_prob_diff": _finite_max(np.abs(probs.astype(np.float64) - want_probs), np),
    }


def _finite_max(values, np):
    """Largest value, or None when any is NaN/inf (JSON has no NaN)."""
    peak = float(np.max(values)) if np.size(values) else 0.0
    return peak if math.isfinite(peak) else None


def count_instructions(pre, feed, args) -> dict:
    path = os.environ.get("EDGEPED_INSN_OUT")
    if not path:
        raise RunnerError(
            "insn_unavailable",
            "--insn-count needs the QEMU counting plugin",
            "run on the emulated board (EDGEPED_INSN_OUT set by the wrapper)",
        )
    with open(path) as handle:
        before = len(handle.read().split())
    interpreter = pre.io.interpreter
    # The same input every time: the count then depends on the model and core only.
    crops, meta = next(feed)
    pre.set_inputs(crops, meta)
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        for _ in range(args.insn_runs):
            marker(fd, MARKER_START)
            interpreter.invoke()
            marker(fd, MARKER_STOP)
        # The end-to-end overhead around one invoke: the image rule and metadata
        # standardisation into the input tensors, then the output read and dequantised.
        for _ in range(args.insn_runs):
            marker(fd, MARKER_START)
            pre.set_inputs(crops, meta)
            pre.probabilities(pre.raw_output())
            marker(fd, MARKER_STOP)
    finally:
        os.close(fd)
    with open(path) as handle:
        counts = [int(v) for v in handle.read().split()[before:]]
    if len(counts) != 2 * args.insn_runs:
        raise RunnerError(
            "insn_unavailable",
            f"the plugin recorded {len(counts)} of {2 * args.insn_runs} regions",
            "check that qemu-aarch64 was started with the libinsncount plugin",
        )
    invokes, overhead = counts[: args.insn_runs], counts[args.insn_runs :]
    # The sequence repeats exactly from process to process; successive invokes within one
    # process differ by a few hundred instructions (interpreter bookkeeping), so the
    # headline figure is the median of the sequence, which is equally repeatable.
    per_invoke = int(sorted(invokes)[len(invokes) // 2])
    per_overhead = int(sorted(overhead)[len(overhead) // 2])
    return {
        "per_invoke": invokes,
        "instructions_per_invoke": per_invoke,
        "constant_within_run": len(set(invokes)) == 1,
        "runs": len(invokes),
        "overhead_instructions_per_invoke": per_overhead,
        "overhead_share_of_invoke": per_overhead / per_invoke if per_invoke else None,
        "image_rule": pre.image_rule,
    }


def write_golden(args) -> dict:
    """Runs the crops once in order and saves raw outputs + probabilities as golden .npz."""
    np, Interpreter, load_delegate, resolver, runtime = import_runtime()
    images, metadata, crops_info = load_crops(args.crops, np, args.random_count, args.seed)
    mean, std, clip, _ = load_preprocess(args.preprocess)
    data = read_model(args.model)
    interpreter = make_interpreter(data, args.model, Interpreter, load_delegate, resolver, args)
    io = ModelIO(interpreter, np)
    io.resize(args.batch)
    pre = Preprocessor(io, mean, std, clip, load_image_rule(args.preprocess))
    raw, probs = compute_outputs(pre, images, metadata, np)
    tmp = args.write_golden + ".tmp.npz"
    np.savez(
        tmp, raw=raw, probabilities=probs, model_sha256=np.array(hashlib.sha256(data).hexdigest())
    )
    os.replace(tmp, args.write_golden)
    return {
        "ok": True,
        "kind": "edgeped.golden",
        "path": args.write_golden,
        "n": int(len(raw)),
        "model_sha256": hashlib.sha256(data).hexdigest(),
        "inputs": crops_info,
        "runtime": runtime,
    }


# --------------------------------------------------------------------------- shadow mode
#
# The baseline and the candidate run in this one process on the same crops; every crop
# becomes one log record. The log is append-only JSON Lines, each line
# "<crc32 of the JSON, 8 hex digits> <JSON>\n", written with one os.write and fsynced
# (every --fsync-every records), so a crash loses at most the record being written and a
# torn last line is recognisable by its missing newline or CRC. The host reader is
# edgeped/rollout/shadow_log.py; both sides must agree on this format.

SHADOW_LOG_KIND = "edgeped.shadow_log"
SHADOW_LOG_SCHEMA_VERSION = 1
LUMA = (0.299, 0.587, 0.114)  # must match edgeped/rollout/drift.py


def image_stats(crop, np):
    """(mean brightness, contrast) of one uint8 crop: mean and std of its luma, in 0..1."""
    luma = crop.astype(np.float32) @ np.asarray(LUMA, np.float32)
    return float(luma.mean()) / 255.0, float(luma.std()) / 255.0


class ShadowLog:
    """The append-only log file: one CRC-checked JSON line per record."""

    def __init__(self, path: str, fsync_every: int) -> None:
        if os.path.exists(path):
            raise RunnerError(
                "log_exists",
                f"shadow log {path} already exists",
                "pass a new --shadow-log path; a log is never overwritten",
            )
        parent = os.path.dirname(os.path.abspath(path))
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except OSError as exc:
            raise RunnerError(
                "log_unwritable",
                f"cannot create shadow log {path}: {exc}",
                "check the directory exists and is writable",
            ) from exc
        self.path = os.path.abspath(path)
        self.fsync_every = fsync_every
        self.pending = 0
        self.records = 0
        self.bytes = 0
        # Make the new file's directory entry durable, so the log itself survives a crash.
        try:
            dfd = os.open(parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass

    def append(self, record: dict) -> None:
        body = json.dumps(
            record, separators=(",", ":"), allow_nan=False, default=_jsonable
        ).encode()
        line = b"%08x " % (zlib.crc32(body) & 0xFFFFFFFF) + body + b"\n"
        try:
            written = os.write(self.fd, line)
            if written != len(line):
                raise OSError(f"short write ({written} of {len(line)} bytes)")
            self.pending += 1
            if self.pending >= self.fsync_every:
                os.fsync(self.fd)
                self.pending = 0
        except OSError as exc:
            raise RunnerError(
                "log_write_failed",
                f"writing shadow log {self.path} failed after {self.records} records: {exc}",
                "free space on the board and run again",
            ) from exc
        self.records += 1
        self.bytes += len(line)

    def close(self) -> None:
        if self.fd is None:
            return
        try:
            if self.pending:
                os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = None


class ShadowModel:
    """One side of the shadow pair: interpreter, preprocessing and its own threshold."""

    def __init__(self, role, path, spec, runtime_parts, args) -> None:
        np, Interpreter, load_delegate, resolver = runtime_parts
        self.np = np
        self.role = role
        self.path = path
        self.data = read_model(path)
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.interpreter = make_interpreter(
            self.data, path, Interpreter, load_delegate, resolver, args
        )
        self.io = ModelIO(self.interpreter, np)
        self.io.resize(1)
        pre = spec.get("preprocess") or {}
        self.pre = Preprocessor(
            self.io,
            pre.get("mean", [0.0] * META_FEATURES),
            pre.get("std", [1.0] * META_FEATURES),
            pre.get("clip", 4.0),
            str(spec.get("image_rule") or "fixed"),
        )
        self.name = str(spec.get("name") or role)
        self.threshold = float(spec["threshold"])
        q = spec.get("threshold_int8")
        self.int8 = np.dtype(self.io.output["dtype"]) == np.dtype(np.int8)
        self.threshold_int8 = int(q) if (q is not None and self.int8) else None

    def step(self, crop, meta):
        """Scores one crop; returns (probability, raw int or None, decision, invoke ms)."""
        self.pre.set_inputs(crop, meta)
        t0 = time.perf_counter()
        self.interpreter.invoke()
        ms = (time.perf_counter() - t0) * 1e3
        raw = self.pre.raw_output()
        p = float(self.pre.probabilities(raw)[0])
        if self.threshold_int8 is not None:
            q = int(raw[0, 0])
            return p, q, int(q >= self.threshold_int8), ms
        return p, (int(raw[0, 0]) if self.int8 else None), int(p >= self.threshold), ms

    def describe(self) -> dict:
        return {
            "name": self.name,
            "path": self.path,
            "sha256": self.sha256,
            "size_bytes": len(self.data),
            "threshold": self.threshold,
            "threshold_int8": self.threshold_int8,
            "decision_rule": (
                "raw int8 output >= threshold_int8"
                if self.threshold_int8 is not None
                else "probability >= threshold"
            ),
            "io": self.io.quantisation(),
        }


def load_shadow_spec(path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            spec = json.load(handle)
        for role in ("baseline", "candidate"):
            float(spec[role]["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunnerError(
            "shadow_spec_invalid",
            f"cannot read shadow spec {path}: {exc}",
            'it must hold {"baseline": {"threshold": T, ...}, "candidate": {"threshold": T, ...}}',
        ) from exc
    return spec


def load_replay(path, np, count: int, seed: int):
    """Crops plus what the log carries through per crop: ids, labels, slice tags."""
    images, metadata, info = load_crops(path, np, count, seed)
    n = len(images)
    ids = [f"crop-{i}" for i in range(n)]
    labels, tags = None, {}
    if path is not None:
        with np.load(path, allow_pickle=False) as npz:
            if "crop_id" in npz.files:
                ids = [str(v) for v in npz["crop_id"]]
            if "label" in npz.files:
                labels = [int(v) for v in npz["label"]]
            for key in npz.files:
                if key.startswith("tag/"):
                    tags[key[4:]] = [str(v) for v in npz[key]]
        bad = [
            k
            for k, v in [
                ("crop_id", ids),
                ("label", labels or ids),
                *[(f"tag/{t}", v) for t, v in tags.items()],
            ]
            if len(v) != n
        ]
        if bad:
            raise RunnerError(
                "crops_invalid",
                f"crops {path}: {bad} do not have {n} entries",
                "every per-crop array needs one entry per image",
            )
    return images, metadata, info, ids, labels, tags


def _meta_list(row):
    return [None if v != v else round(float(v), 6) for v in row]


def run_shadow(args) -> dict:
    """Shadow mode: baseline alone for the cost reference, then both models, logging."""
    t_process = time.perf_counter()
    np, Interpreter, load_delegate, resolver, runtime = import_runtime()
    if args.pin:
        os.sched_setaffinity(0, args.pin)
    spec = load_shadow_spec(args.shadow_spec)
    images, metadata, crops_info, ids, labels, tags = load_replay(
        args.crops, np, args.random_count, args.seed
    )
    parts = (np, Interpreter, load_delegate, resolver)
    log = ShadowLog(args.shadow_log, args.fsync_every)
    try:
        startup_peak_kb = read_status_kb("VmHWM")
        phase_reset = reset_peak_rss()
        rss_before_kb = read_status_kb("VmRSS")
        base = ShadowModel("baseline", args.model, spec["baseline"], parts, args)

        # Cost reference: what the baseline costs alone per crop (preprocess + invoke +
        # decision), on the same crops, before the candidate exists in the process.
        n = len(images)
        for i in range(min(args.warmup, n)):
            base.step(images[i : i + 1], metadata[i : i + 1])
        alone_ms = []
        for k in range(args.cost_runs):
            i = k % n
            t0 = time.perf_counter()
            base.step(images[i : i + 1], metadata[i : i + 1])
            alone_ms.append((time.perf_counter() - t0) * 1e3)
        alone_peak_kb = read_status_kb("VmHWM")

        cand = ShadowModel("candidate", args.shadow, spec["candidate"], parts, args)
        for i in range(min(args.warmup, n)):
            cand.step(images[i : i + 1], metadata[i : i + 1])
        log.append(
            {
                "t": "header",
                "kind": SHADOW_LOG_KIND,
                "schema_version": SHADOW_LOG_SCHEMA_VERSION,
                "started_unix": time.time(),
                "baseline": base.describe(),
                "candidate": cand.describe(),
                "inputs": crops_info,
                "labels": labels is not None,
                "tag_fields": sorted(tags),
                "repeat": args.shadow_repeat,
                "fsync_every": args.fsync_every,
                "environment": fingerprint(runtime),
            }
        )

        def shadow_step(seq, i, sink):
            t0 = time.perf_counter()
            crop, meta = images[i : i + 1], metadata[i : i + 1]
            pb, qb, yb, msb = base.step(crop, meta)
            pc, qc, yc, msc = cand.step(crop, meta)
            brightness, contrast = image_stats(crop[0], np)
            record = {
                "t": "crop",
                "seq": seq,
                "id": ids[i],
                "ts": time.time(),
                "meta": _meta_list(metadata[i]),
                "img": [round(brightness, 6), round(contrast, 6)],
                "b": {"p": pb, "q": qb, "y": yb, "ms": round(msb, 5)},
                "c": {"p": pc, "q": qc, "y": yc, "ms": round(msc, 5)},
            }
            if labels is not None:
                record["label"] = labels[i]
            if tags:
                record["tags"] = {name: values[i] for name, values in tags.items()}
            t1 = time.perf_counter()
            sink.append(record)
            t2 = time.perf_counter()
            return (t2 - t0) * 1e3, (t2 - t1) * 1e3

        shadow_ms, log_ms, seq = [], [], 0
        for _ in range(args.shadow_repeat):
            for i in range(n):
                total, write = shadow_step(seq, i, log)
                shadow_ms.append(total)
                log_ms.append(write)
                seq += 1
        shadow_peak_kb = read_status_kb("VmHWM")
        insn = (
            count_shadow_instructions(base, shadow_step, images, metadata, args)
            if args.insn_count
            else None
        )
    except BaseException:
        log.close()
        raise

    alone, both, writes = summarise(alone_ms, np), summarise(shadow_ms, np), summarise(log_ms, np)
    known = phase_reset and alone_peak_kb and shadow_peak_kb
    cost = {
        "baseline_alone_ms_per_crop": alone,
        "shadow_ms_per_crop": both,
        "log_write_ms": writes,
        "added_ms_per_crop_p50": both["p50"] - alone["p50"],
        "added_ms_per_crop_mean": both["mean"] - alone["mean"],
        "baseline_alone_peak_rss_mb": alone_peak_kb / 1024 if known else None,
        "shadow_peak_rss_mb": shadow_peak_kb / 1024 if known else None,
        "added_peak_rss_mb": (shadow_peak_kb - alone_peak_kb) / 1024 if known else None,
        "rss_before_load_mb": rss_before_kb / 1024 if rss_before_kb else None,
        "process_peak_rss_mb": _process_peak_mb(startup_peak_kb, shadow_peak_kb),
        "instructions": insn,
        "cost_runs": args.cost_runs,
    }
    log.append({"t": "summary", "records": seq, "finished_unix": time.time(), "cost": cost})
    log.close()
    return {
        "ok": True,
        "kind": RESULT_KIND,
        "schema_version": RESULT_SCHEMA_VERSION,
        "mode": "shadow",
        "log": {
            "path": log.path,
            "records": seq,
            "bytes": log.bytes,
            "sha256": sha256_file(log.path),
        },
        "baseline": base.describe(),
        "candidate": cand.describe(),
        "inputs": crops_info,
        "cost": cost,
        "environment": fingerprint(runtime),
        "process_seconds": time.perf_counter() - t_process,
    }


class _NullSink:
    """Where counted shadow steps write their records: the write cost without the log."""

    def __init__(self) -> None:
        self.fd = os.open(os.devnull, os.O_WRONLY)

    def append(self, record: dict) -> None:
        body = json.dumps(
            record, separators=(",", ":"), allow_nan=False, default=_jsonable
        ).encode()
        os.write(self.fd, b"%08x " % (zlib.crc32(body) & 0xFFFFFFFF) + body + b"\n")

    def close(self) -> None:
        os.close(self.fd)


def count_shadow_instructions(base, shadow_step, images, metadata, args) -> dict:
    """Guest instructions of one baseline-alone step and one shadow step, same crop."""
    path = os.environ.get("EDGEPED_INSN_OUT")
    if not path:
        raise RunnerError(
            "insn_unavailable",
            "--insn-count needs the QEMU counting plugin",
            "run on the emulated board (EDGEPED_INSN_OUT set by the wrapper)",
        )
    sink = _NullSink()
    fd = os.open(os.devnull, os.O_RDONLY)
    counts = {}
    try:
        for name in ("baseline_alone", "shadow"):
            with open(path) as handle:
                before = len(handle.read().split())
            for _ in range(args.insn_runs):
                marker(fd, MARKER_START)
                if name == "shadow":
                    shadow_step(-1, 0, sink)
                else:
                    base.step(images[0:1], metadata[0:1])
                marker(fd, MARKER_STOP)
            with open(path) as handle:
                counts[name] = [int(v) for v in handle.read().split()[before:]]
            if len(counts[name]) != args.insn_runs:
                raise RunnerError(
                    "insn_unavailable",
                    f"the plugin recorded {len(counts[name])} of {args.insn_runs} regions",
                    "check that qemu-aarch64 was started with the plugin",
                )
    finally:
        os.close(fd)
        sink.close()
    med = {k: int(sorted(v)[len(v) // 2]) for k, v in counts.items()}
    return {
        "per_step": counts,
        "baseline_alone_per_crop": med["baseline_alone"],
        "shadow_per_crop": med["shadow"],
        "added_per_crop": med["shadow"] - med["baseline_alone"],
        "runs": args.insn_runs,
        "note": "shadow step = both invokes, preprocessing, image stats and the record's "
        "encoding and write(2); fsync is kernel time and not counted",
    }


# --------------------------------------------------------------------------- per-op and frames
# Self-contained modes: per-op cost from prefix models (`edgeped profile`) and the frame
# deadline, N proposals per frame batched or one at a time (`edgeped bench --proposals-per-frame`).

PREFIX_KEY = "prefix_"  # keys of the prefix models carried in the --crops .npz (per-op mode)


def _model_inputs(pre, crops, metadata) -> dict:
    """The full model's preprocessed input tensors, by input name."""
    out = {pre.io.image["name"]: pre.image(crops)}
    if pre.io.meta is not None:
        out[pre.io.meta["name"]] = pre.meta(metadata)
    return out


def _count_regions(step, runs: int, path: str):
    """Instructions of `runs` calls of step(), each its own counted region (median, all)."""
    with open(path) as handle:
        before = len(handle.read().split())
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        for _ in range(runs):
            marker(fd, MARKER_START)
            step()
            marker(fd, MARKER_STOP)
    finally:
        os.close(fd)
    with open(path) as handle:
        counts = [int(v) for v in handle.read().split()[before:]]
    if len(counts) != runs:
        raise RunnerError(
            "insn_unavailable",
            f"the plugin recorded {len(counts)} of {runs} regions",
            "check that qemu-aarch64 was started with the libinsncount plugin",
        )
    return int(sorted(counts)[len(counts) // 2]), counts


def _insn_path(args):
    if not args.insn_count:
        return None
    path = os.environ.get("EDGEPED_INSN_OUT")
    if not path:
        raise RunnerError(
            "insn_unavailable",
            "--insn-count needs the QEMU counting plugin",
            "run on the emulated board (EDGEPED_INSN_OUT set by the wrapper)",
        )
    return path


def _timed(step, runs: int, max_seconds: float):
    """Wall-clock microseconds of up to `runs` calls of step() within max_seconds."""
    clock = time.perf_counter
    samples = []
    t_end = clock() + max_seconds
    while len(samples) < runs:
        t0 = clock()
        step()
        samples.append((clock() - t0) * 1e6)
        if t0 > t_end:
            break
    return samples


def run_per_op(args) -> dict:
    """Cost of the whole model and of every prefix model in the --crops .npz, one crop.

    The host cuts the model after each op (prefix k) and sends the prefixes in the crops
    file; the cost of op k is cost(prefix k) - cost(prefix k-1). On the emulated board the
    cost is instructions per invoke (median of --insn-runs), elsewhere invoke wall time.
    """
    np, Interpreter, load_delegate, resolver, runtime = import_runtime()
    images, metadata, crops_info = load_crops(args.crops, np, args.random_count, args.seed)
    try:
        with np.load(args.crops, allow_pickle=False) as npz:
            keys = sorted(k for k in npz.files if k.startswith(PREFIX_KEY))
            prefixes = [npz[k].tobytes() for k in keys]
    except (OSError, ValueError, TypeError) as exc:
        raise RunnerError(
            "crops_invalid",
            f"cannot read prefix models from {args.crops}: {exc}",
            "build the profile bundle with `edgeped profile`",
        ) from exc
    if not prefixes:
        raise RunnerError(
            "crops_invalid",
            f"{args.crops} holds no prefix models ({PREFIX_KEY}NNNN)",
            "build the profile bundle with `edgeped profile`",
        )
    mean, std, clip, pre_path = load_preprocess(args.preprocess)
    insn_path = _insn_path(args)
    model_bytes = read_model(args.model)
    whole = make_interpreter(model_bytes, args.model, Interpreter, load_delegate, resolver, args)
    pre = Preprocessor(ModelIO(whole, np), mean, std, clip, load_image_rule(args.preprocess))
    feed = _model_inputs(pre, images[:1], metadata[:1])
    budget = args.max_seconds / (len(prefixes) + 2)
    rows = []

    def measure(interp, name):
        row = {"name": name}
        if insn_path:
            row["instructions"], row["per_invoke"] = _count_regions(
                interp.invoke, args.insn_runs, insn_path
            )
        else:
            samples = sorted(_timed(interp.invoke, args.min_runs, budget))
            row["time_us_p50"] = samples[len(samples) // 2]
            row["time_us_min"] = samples[0]
            row["runs"] = len(samples)
        return row

    for name, data in [("whole", model_bytes)] + [(k, prefixes[i]) for i, k in enumerate(keys)]:
        interp = (
            whole
            if name == "whole"
            else make_interpreter(data, name, Interpreter, load_delegate, resolver, args)
        )
        for d in interp.get_input_details():
            if d["name"] not in feed:
                raise RunnerError(
                    "unsupported_model_io",
                    f"{name} has an input {d['name']} the model does not have",
                    "cut prefixes from this very model",
                )
            interp.set_tensor(d["index"], feed[d["name"]])
        for _ in range(max(args.warmup, 2)):
            interp.invoke()
        rows.append(measure(interp, name))
        if interp is not whole:
            del interp
    # The first interpreter of a process runs ~2 k instructions more per invoke until a
    # second one exists (process-wide state settling; measured on every core): the whole
    # model is measured again at the end, beside the prefixes, and that figure is used.
    rows[0] = {**measure(whole, "whole"), "first": rows[0]}
    return {
        "ok": True,
        "kind": "edgeped.device_per_op",
        "schema_version": RESULT_SCHEMA_VERSION,
        "model": {
            "path": args.model,
            "sha256": hashlib.sha256(model_bytes).hexdigest(),
            "size_bytes": len(model_bytes),
        },
        "config": {"threads": args.threads, "xnnpack": args.xnnpack, "preprocess": pre_path},
        "inputs": crops_info,
        "metric": "instructions" if insn_path else "time_us",
        # ai-edge-litert's Python Interpreter has no way to read LiteRT's op profiler
        # (only experimental_force_delegate_node_profiling, whose output Python cannot see).
        "litert_op_profiler": "not exposed by the Python interpreter API",
        "whole": rows[0],
        "prefixes": rows[1:],
        "environment": fingerprint(runtime),
    }


def run_frames(args) -> dict:
    """Frames of N proposals: one batched invoke of N against N invokes of one crop.

    Per frame: preprocessing, invoke(s) and dequantised scores of its N crops; p50/p95
    of the frame time and the share of frames over the budget 1000/fps ms; on the
    emulated board, instructions per frame.
    """
    np, Interpreter, load_delegate, resolver, runtime = import_runtime()
    images, metadata, crops_info = load_crops(args.crops, np, args.random_count, args.seed)
    mean, std, clip, pre_path = load_preprocess(args.preprocess)
    insn_path = _insn_path(args)
    if insn_path and (args.load_threads or args.load_processes):
        raise RunnerError(
            "unsupported_option",
            "instruction counts with a background load would count the load too",
            "run the instruction count without --load-threads/--load-processes",
        )
    n = args.proposals_per_frame
    budget_ms = 1000.0 / args.fps
    model_bytes = read_model(args.model)
    idx = np.arange(n) % len(images)
    load = BackgroundLoad(args.load_threads, args.load_processes, args.load_cpus, np)
    load.start()
    modes = {}
    try:
        for mode in ("batched", "sequential"):
            interp = make_interpreter(
                model_bytes, args.model, Interpreter, load_delegate, resolver, args
            )
            io = ModelIO(interp, np)
            io.resize(n if mode == "batched" else 1)
            pre = Preprocessor(io, mean, std, clip, load_image_rule(args.preprocess))
            frames = [
                (images[(idx + f * n) % len(images)], metadata[(idx + f * n) % len(images)])
                for f in range(4)
            ]
            state = {"f": 0, "scores": None}

            def frame(pre=pre, interp=interp, mode=mode, frames=frames, state=state):
                crops, meta = frames[state["f"] % len(frames)]
                state["f"] += 1
                if mode == "batched":
                    pre.set_inputs(crops, meta)
                    interp.invoke()
                    state["scores"] = pre.probabilities(pre.raw_output())
                else:
                    out = []
                    for i in range(n):
                        pre.set_inputs(crops[i : i + 1], meta[i : i + 1])
                        interp.invoke()
                        out.append(pre.probabilities(pre.raw_output())[0])
                    state["scores"] = out

            for _ in range(args.warmup):
                frame()
            entry = {"invokes_per_frame": 1 if mode == "batched" else n}
            if insn_path:
                entry["instructions_per_frame"], entry["per_frame"] = _count_regions(
                    frame, args.insn_runs, insn_path
                )
            else:
                samples_ms = [
                    v / 1e3 for v in _timed(frame, max(args.min_runs, 1), args.max_seconds / 2)
                ]
                stats = summarise(samples_ms, np)
                entry["frame_ms"] = stats
                entry["over_budget_share"] = sum(v > budget_ms for v in samples_ms) / len(
                    samples_ms
                )
                entry["frame_ms_samples"] = [round(v, 4) for v in samples_ms[: args.keep_samples]]
            state["f"] = 0
            frame()
            entry["scores_first_frame"] = [float(v) for v in state["scores"]]
            modes[mode] = entry
            del interp
    finally:
        load.close()
    return {
        "ok": True,
        "kind": "edgeped.device_frames",
        "schema_version": RESULT_SCHEMA_VERSION,
        "model": {
            "path": args.model,
            "sha256": hashlib.sha256(model_bytes).hexdigest(),
            "size_bytes": len(model_bytes),
        },
        "config": {
            "threads": args.threads,
            "xnnpack": args.xnnpack,
            "proposals_per_frame": n,
            "fps": args.fps,
            "frame_budget_ms": budget_ms,
            "background_load": load.describe(),
            "preprocess": pre_path,
        },
        "inputs": crops_info,
        "metric": "instructions" if insn_path else "time_ms",
        "modes": modes,
        "environment": fingerprint(runtime),
    }


class _Parser(argparse.ArgumentParser):
    """Command-line mistakes become a RunnerError (one JSON line, exit 64), not argparse's
    usage text and exit 2, so the host shows them like every other problem."""

    def error(self, message):
        raise RunnerError("usage", message, "see `runner.py --help` for the options")


def parse_args(argv):
    p = _Parser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?")
    p.add_argument("--crops", help=".npz with images uint8 [N,128,64,3], metadata float32 [N,6]")
    p.add_argument("--random-count", type=int, default=16, help="random crops when no --crops")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preprocess", help='JSON {"metadata": {"mean", "std", "clip"}}')
    p.add_argument("--golden", help="golden outputs .npz computed on the host")
    p.add_argument("--parity-atol", type=float, default=1e-5, help="float models only")
    p.add_argument("--write-golden", metavar="NPZ", help="compute golden outputs and exit")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--no-xnnpack", dest="xnnpack", action="store_false")
    p.add_argument("--delegate", help="external delegate shared library")
    p.add_argument("--delegate-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--pin", type=_cpus, help="CPU list for this process, e.g. 0 or 0,1")
    p.add_argument("--load-threads", type=int, default=0, help="busy background threads")
    p.add_argument("--load-processes", type=int, default=0, help="busy background processes")
    p.add_argument("--load-cpus", type=_cpus, help="CPU list for the background threads")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--min-runs", type=int, default=50)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--max-seconds", type=float, default=600.0)
    p.add_argument(
        "--keep-samples",
        type=int,
        default=2000,
        help="per-invoke times kept in the result, in run order",
    )
    p.add_argument(
        "--insn-count",
        action="store_true",
        help="mark --insn-runs invokes for the QEMU instruction-counting plugin",
    )
    p.add_argument("--insn-runs", type=int, default=3)
    p.add_argument(
        "--shadow",
        metavar="CANDIDATE",
        help="shadow mode: run CANDIDATE beside MODEL (the baseline) on every crop",
    )
    p.add_argument(
        "--shadow-spec",
        help='JSON {"baseline"|"candidate": {"threshold", "threshold_int8", "preprocess", "name"}}',
    )
    p.add_argument("--shadow-log", help="append-only log file to create (never overwritten)")
    p.add_argument("--shadow-repeat", type=int, default=1, help="passes over the crops")
    p.add_argument("--fsync-every", type=int, default=1, help="records per fsync of the log")
    p.add_argument(
        "--cost-runs",
        type=int,
        default=50,
        help="baseline-alone steps timed as the shadow cost reference",
    )
    p.add_argument("--busy-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--per-op",
        action="store_true",
        help="per-op cost: the whole model and the prefix models carried in --crops",
    )
    p.add_argument(
        "--proposals-per-frame",
        type=int,
        default=0,
        help="frame mode: N crops per frame, batched vs one at a time",
    )
    p.add_argument("--fps", type=float, default=30.0, help="frame mode: frame budget 1000/fps ms")
    args = p.parse_args(argv)
    if not args.busy_worker and not args.model:
        p.error("MODEL is required")
    if args.shadow and not (args.shadow_spec and args.shadow_log):
        p.error("--shadow needs --shadow-spec and --shadow-log")
    if args.shadow and args.batch != 1:
        p.error("--shadow runs one crop at a time (--batch 1)")
    if args.per_op and not args.crops:
        p.error("--per-op needs --crops (the bundle with the prefix models)")
    if args.proposals_per_frame < 0 or args.fps <= 0:
        p.error("--proposals-per-frame must be >= 0 and --fps > 0")
    for name in (
        "threads",
        "batch",
        "min_runs",
        "random_count",
        "insn_runs",
        "shadow_repeat",
        "fsync_every",
        "cost_runs",
    ):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    for item in args.delegate_option:
        if "=" not in item:
            p.error(f"--delegate-option {item!r} is not KEY=VALUE")
    return args


def _cpus(text: str):
    try:
        return {int(x) for x in text.split(",") if x.strip()}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a CPU list: {text}") from exc


def _failure(exc: RunnerError) -> dict:
    """The JSON line for a problem; the same `error:/fix:` pair goes to stderr for a person."""
    sys.stderr.write(f"error: {exc.problem}\n  fix: {exc.fix}\n")
    return {
        "ok": False,
        "kind": RESULT_KIND,
        "schema_version": RESULT_SCHEMA_VERSION,
        "error": {"code": exc.code, "problem": exc.problem, "fix": exc.fix},
    }


def main(argv=None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except RunnerError as exc:
        sys.stdout.write(json.dumps(_failure(exc)) + "\n")
        return EXIT_USAGE
    if args.busy_worker:
        return busy_worker()
    # Native libraries may print to fd 1; keep stdout for the one JSON line.
    sys.stdout.flush()
    json_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        result = (
            write_golden(args)
            if args.write_golden
            else run_shadow(args)
            if args.shadow
            else run_per_op(args)
            if args.per_op
            else run_frames(args)
            if args.proposals_per_frame
            else run(args)
        )
        code = 0
    except RunnerError as exc:
        result, code = _failure(exc), EXIT_PROBLEM
    except Exception as exc:  # noqa: BLE001 - a bug still answers with one JSON line
        import traceback

        traceback.print_exc()
        result = _failure(
            RunnerError(
                "internal",
                f"{type(exc).__name__}: {exc}",
                "this is a bug in the runner: report it with the traceback on stderr",
            )
        )
        code = EXIT_INTERNAL
    sys.stdout.flush()
    with os.fdopen(json_fd, "w") as out:
        out.write(json.dumps(result, allow_nan=False, default=_jsonable) + "\n")
    return code


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
