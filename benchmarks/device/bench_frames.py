"""The frame deadline: N proposals per frame, one batched invoke against N single invokes.

For each N (default 16 and 64) it runs `edgeped bench MODEL --proposals-per-frame N`:
host frame times (p50/p95, share of frames over the 1000/fps budget) without and with a
busy background thread, and instructions per frame on emulated cortex-a53/a72/a76.

    python -m benchmarks.device.bench_frames runs/qd-run/student_qat_int8.tflite --label vgg-w025

Writes benchmarks/results/device/frames-<YYYYMMDD>[-<label>].json (--out: another path) and
a Markdown table beside it, with the machine, load and versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.device import emu

SUBJECT = "frames"


def out_path(out: Path | None = None, label: str = "") -> Path:
    """`out`, else today's benchmarks/results/device/frames-<YYYYMMDD>[-<label>].json."""
    return out or harness.result_path("device", SUBJECT, label)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--n", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=200, help="timed frames per mode on the host")
    ap.add_argument("--cores", default="a53,a72,a76")
    ap.add_argument("--label", default="", help="name qualifier, e.g. the model 'vgg-w025'")
    ap.add_argument(
        "--out",
        type=Path,
        help="JSON path (default benchmarks/results/device/frames-<YYYYMMDD>[-<label>].json)",
    )
    args = ap.parse_args(argv)

    from edgeped.targets.bench import BenchOptions
    from edgeped.targets.emulated import EmulatedArm64Target
    from edgeped.targets.frames import FrameOptions, bench_frames
    from edgeped.targets.local import LocalTarget

    log = lambda msg: print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr)  # noqa: E731
    result = harness.provenance("frames", argv)
    rows = []
    with emu.clear_errors():  # no board, no qemu, a timeout: error + fix, no traceback
        for n in args.n:
            frame = FrameOptions(n, args.fps)
            for load in (0, 1):
                log(f"host N={n} load_threads={load}")
                opts = BenchOptions(
                    min_runs=args.runs, min_seconds=0.0, warmup=5, load_threads=load, timeout_s=1800
                )
                r = bench_frames(args.model, LocalTarget(), opts, frame)
                rows.append({"where": "host", "n": n, "load_threads": load, **_flat(r)})
            for core in args.cores.split(","):
                log(f"emulated {core} N={n}")
                opts = BenchOptions(
                    min_runs=1, min_seconds=0.0, warmup=1, insn_runs=3, timeout_s=3600
                )
                r = bench_frames(args.model, EmulatedArm64Target(core=core), opts, frame)
                rows.append({"where": f"emulated {r.target['core']}", "n": n, **_flat(r)})
    result.update(fps=args.fps, rows=rows)
    out = out_path(args.out, args.label)
    harness.write_result(out, harness.finish(result), render(result))
    print(out)
    return 0


def _flat(result) -> dict:
    return {"model_sha256": result.model_sha256, "modes": result.summary()}


def render(result: dict[str, Any]) -> str:
    """The Markdown table of a result (the harness's provenance keys)."""
    budget = 1000.0 / result["fps"]
    lines = [
        f"# Frame deadline ({result['date_utc']})",
        "",
        f"`{result['command']}`; budget {budget:.1f} ms per frame at {result['fps']:g} fps; "
        f"host load average before/after {result['loadavg_before_after']}.",
        "",
        "| where | N | load | mode | frame p50 ms | frame p95 ms | over budget | "
        "instructions / frame | per crop |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        for mode, s in r["modes"].items():
            if "instructions_per_frame" in s:
                lines.append(
                    f"| {r['where']} | {r['n']} | - | {mode} | - | - | - | "
                    f"{s['instructions_per_frame']:,} | {s['instructions_per_crop']:,.0f} |"
                )
            else:
                lines.append(
                    f"| {r['where']} | {r['n']} | {r['load_threads']} | {mode} | "
                    f"{s['frame_ms_p50']:.2f} | {s['frame_ms_p95']:.2f} | "
                    f"{100 * s['over_budget_share']:.1f}% | - | - |"
                )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
