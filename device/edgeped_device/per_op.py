"""Per-op mode (`edgeped profile`): the cost of the whole model and of every prefix model."""

from __future__ import annotations

import hashlib

from .common import RESULT_SCHEMA_VERSION, RunnerError, import_runtime
from .fingerprint import fingerprint
from .inputs import load_crops
from .insn import count_regions, insn_out_path
from .model import ModelIO, make_interpreter, read_model
from .preprocess import Preprocessor, load_image_rule, load_preprocess
from .stats import timed

PREFIX_KEY = "prefix_"  # keys of the prefix models carried in the --crops .npz (per-op mode)


def _model_inputs(pre, crops, metadata) -> dict:
    """The full model's preprocessed input tensors, by input name."""
    out = {pre.io.image["name"]: pre.image(crops)}
    if pre.io.meta is not None:
        out[pre.io.meta["name"]] = pre.meta(metadata)
    return out


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
    insn_path = insn_out_path() if args.insn_count else None
    model_bytes = read_model(args.model)
    whole = make_interpreter(model_bytes, args.model, Interpreter, load_delegate, resolver, args)
    pre = Preprocessor(ModelIO(whole, np), mean, std, clip, load_image_rule(args.preprocess))
    feed = _model_inputs(pre, images[:1], metadata[:1])
    budget = args.max_seconds / (len(prefixes) + 2)
    rows = []

    def measure(interp, name):
        row = {"name": name}
        if insn_path:
            row["instructions"], row["per_invoke"] = count_regions(
                interp.invoke, args.insn_runs, insn_path
            )
        else:
            samples = sorted(timed(interp.invoke, args.min_runs, budget))
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
