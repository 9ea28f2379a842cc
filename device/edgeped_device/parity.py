"""Golden outputs: computed on the host, compared on the board (exact for int8 models)."""

from __future__ import annotations

import hashlib
import math
import os

from .common import RunnerError, import_runtime
from .inputs import load_crops
from .model import ModelIO, make_interpreter, read_model
from .preprocess import Preprocessor, load_image_rule, load_preprocess


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
