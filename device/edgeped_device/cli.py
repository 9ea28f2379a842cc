"""The runner's command line: parse, pick the mode, print one JSON line, exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .background import busy_worker
from .bench import run
from .common import EXIT_INTERNAL, EXIT_PROBLEM, EXIT_USAGE, RunnerError, failure, jsonable
from .frames import run_frames
from .parity import write_golden
from .per_op import run_per_op
from .shadow import run_shadow

DESCRIPTION = "Benchmarks one .tflite model on the machine it runs on and prints one JSON result."


class _Parser(argparse.ArgumentParser):
    """Command-line mistakes become a RunnerError (one JSON line, exit 64), not argparse's
    usage text and exit 2, so the host shows them like every other problem."""

    def error(self, message):
        raise RunnerError("usage", message, "see `runner.py --help` for the options")


def parse_args(argv):
    p = _Parser(description=DESCRIPTION)
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


def main(argv=None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except RunnerError as exc:
        sys.stdout.write(json.dumps(failure(exc)) + "\n")
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
        result, code = failure(exc), EXIT_PROBLEM
    except Exception as exc:  # noqa: BLE001 - a bug still answers with one JSON line
        import traceback

        traceback.print_exc()
        result = failure(
            RunnerError(
                "internal",
                f"{type(exc).__name__}: {exc}",
                "this is a bug in the runner: report it with the traceback on stderr",
            )
        )
        code = EXIT_INTERNAL
    sys.stdout.flush()
    with os.fdopen(json_fd, "w") as out:
        out.write(json.dumps(result, allow_nan=False, default=jsonable) + "\n")
    return code
