"""Frame mode (`edgeped bench --proposals-per-frame`): N crops batched against one at a time."""

from __future__ import annotations

import hashlib

from .background import BackgroundLoad
from .common import RESULT_SCHEMA_VERSION, RunnerError, import_runtime
from .fingerprint import fingerprint
from .inputs import load_crops
from .insn import count_regions, insn_out_path
from .model import ModelIO, make_interpreter, read_model
from .preprocess import Preprocessor, load_image_rule, load_preprocess
from .stats import summarise, timed


def run_frames(args) -> dict:
    """Frames of N proposals: one batched invoke of N against N invokes of one crop.

    Per frame: preprocessing, invoke(s) and dequantised scores of its N crops; p50/p95
    of the frame time and the share of frames over the budget 1000/fps ms; on the
    emulated board, instructions per frame.
    """
    np, Interpreter, load_delegate, resolver, runtime = import_runtime()
    images, metadata, crops_info = load_crops(args.crops, np, args.random_count, args.seed)
    mean, std, clip, pre_path = load_preprocess(args.preprocess)
    insn_path = insn_out_path() if args.insn_count else None
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
                entry["instructions_per_frame"], entry["per_frame"] = count_regions(
                    frame, args.insn_runs, insn_path
                )
            else:
                samples_ms = [
                    v / 1e3 for v in timed(frame, max(args.min_runs, 1), args.max_seconds / 2)
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
