"""Benchmark mode: init, first inference, latency percentiles, memory, parity, instructions."""

from __future__ import annotations

import hashlib
import os
import resource
import time

from .background import BackgroundLoad
from .common import RESULT_KIND, RESULT_SCHEMA_VERSION, RunnerError, import_runtime
from .fingerprint import fingerprint
from .inputs import batches, load_crops
from .insn import MARKER_START, MARKER_STOP, insn_out_path, marker
from .memory import process_peak_mb, read_status_kb, reset_peak_rss
from .model import ModelIO, make_interpreter, read_model
from .parity import check_parity, load_golden
from .preprocess import Preprocessor, load_image_rule, load_preprocess
from .stats import summarise


def run(args) -> dict:
    """Benchmarks the model on the crops: the runner's default mode."""
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
            "process_peak_rss_mb": process_peak_mb(startup_peak_kb, phase_peak_kb),
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
        "parity": parity,
        "instructions": insn,
        "environment": fingerprint(runtime),
        "process_seconds": time.perf_counter() - t_process,
    }
    return result


def count_instructions(pre, feed, args) -> dict:
    path = insn_out_path()
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
