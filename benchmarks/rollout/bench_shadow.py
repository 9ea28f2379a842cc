"""What shadowing costs: added time per crop and peak RSS on the host, and added guest
instructions per crop on the emulated arm64 board, for a run's baseline and candidate.

    python -m benchmarks.rollout.bench_shadow RUN_DIR [--baseline student_distilled_float32]
        [--candidate student_qat_int8] [--crops 500] [--emu-crops 8] [--core a76]

Each side is the device runner's shadow mode (device/runner.py --shadow): first the
baseline alone on --cost-runs crops (the reference), then both models on every crop with
the log written and fsynced per record. Host time and RSS are real; emulated time and RSS
are not (QEMU), so only the emulated instruction counts are reported. Writes
benchmarks/results/rollout/shadow-<YYYYMMDD>.json and .md beside (--out: another folder).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness
from edgeped.rollout.shadow import ShadowOptions, run_shadow
from edgeped.targets import resolve_target

TOPIC, SUBJECT = "rollout", "shadow"


def render(result: dict[str, Any]) -> str:
    """The Markdown table of one result (written beside its JSON)."""
    c, i = result["host"]["cost"], result["emulated"]["instructions"]
    b32 = result["host_fsync_every_32"]["cost"]
    core = result["emulated"]["core"]
    lines = [
        f"Shadow cost, {result['candidate']} beside {result['baseline']} "
        f"({result['host']['crops']} test crops on the host; {result['emulated']['crops']} on "
        f"emulated {core}).",
        "",
        "| figure | baseline alone | shadow (both + log) | added |",
        "|---|---|---|---|",
        f"| host ms per crop, p50 | {c['baseline_alone_ms_per_crop']['p50']:.3f} | "
        f"{c['shadow_ms_per_crop']['p50']:.3f} | {c['added_ms_per_crop_p50']:.3f} |",
        f"| host ms per crop, mean | {c['baseline_alone_ms_per_crop']['mean']:.3f} | "
        f"{c['shadow_ms_per_crop']['mean']:.3f} | {c['added_ms_per_crop_mean']:.3f} |",
        f"| host peak RSS, MB | {c['baseline_alone_peak_rss_mb']:.1f} | "
        f"{c['shadow_peak_rss_mb']:.1f} | {c['added_peak_rss_mb']:.1f} |",
        f"| emulated {core} instructions per crop | {i['baseline_alone_per_crop']:,} | "
        f"{i['shadow_per_crop']:,} | {i['added_per_crop']:,} |",
        f"| host ms per crop, p50, fsync every 32 records | "
        f"{b32['baseline_alone_ms_per_crop']['p50']:.3f} | {b32['shadow_ms_per_crop']['p50']:.3f} "
        f"| {b32['added_ms_per_crop_p50']:.3f} |",
        "",
        f"Log write (JSON + CRC + write + fsync) per record on the host: p50 "
        f"{c['log_write_ms']['p50']:.3f} ms, p95 {c['log_write_ms']['p95']:.3f} ms. Load "
        f"average at start {(result['loadavg_before_after'][0] or [float('nan')])[0]:.1f} on "
        f"{result['machine']['cpu_count']} cores.",
    ]
    return "\n".join(lines) + "\n"


def out_path(folder: Path | None = None) -> Path:
    """Today's result file: in benchmarks/results/rollout/, or in `folder` under the same name."""
    path = harness.result_path(TOPIC, SUBJECT)
    return path if folder is None else Path(folder) / path.name


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--baseline", default="student_distilled_float32")
    p.add_argument("--candidate", default="student_qat_int8")
    p.add_argument("--data", help="dataset [default: the baseline card's]")
    p.add_argument("--crops", type=int, default=500)
    p.add_argument("--emu-crops", type=int, default=8)
    p.add_argument("--core", default="a76")
    p.add_argument("--out", type=Path, help="folder [default: benchmarks/results/rollout]")
    args = p.parse_args(argv)
    base = args.run_dir / f"{args.baseline}.tflite"
    cand = args.run_dir / f"{args.candidate}.tflite"
    card = json.loads((args.run_dir / f"{args.baseline}.card.json").read_text())
    data = args.data or card["source"]["dataset"]
    result = harness.provenance("shadow", argv)
    result.update({"baseline": args.baseline, "candidate": args.candidate})
    with tempfile.TemporaryDirectory(prefix="edgeped-bench-shadow-") as tmp:
        started = time.time()
        host = run_shadow(base, cand, resolve_target("local"), Path(tmp) / "host", data_dir=data,
                          limit=args.crops, options=ShadowOptions(cost_runs=args.crops))  # fmt: skip
        result["host"] = {"crops": host.report.overall["crops"], "cost": host.report.cost,
                          "flip_rate": host.report.overall["flip_rate"],
                          "seconds": time.time() - started}  # fmt: skip
        batched = run_shadow(base, cand, resolve_target("local"), Path(tmp) / "host32",
                             data_dir=data, limit=args.crops,
                             options=ShadowOptions(cost_runs=args.crops, fsync_every=32))  # fmt: skip
        result["host_fsync_every_32"] = {"cost": batched.report.cost}
        # The host phases' load (the emulated phase after them loads the machine itself).
        result["host"]["loadavg_after"] = _loadavg()
        started = time.time()
        emu = run_shadow(base, cand, resolve_target("arm64-emu", core=args.core),
                         Path(tmp) / "emu", data_dir=data, limit=args.emu_crops,
                         options=ShadowOptions(cost_runs=args.emu_crops, warmup=1,
                                               insn_runs=3))  # fmt: skip
        result["emulated"] = {"core": args.core, "crops": emu.report.overall["crops"],
                              "instructions": emu.report.cost["instructions"],
                              "seconds": time.time() - started,
                              "note": "emulated time and RSS are not reported: they measure QEMU"}  # fmt: skip
    harness.finish(result)
    markdown = render(result)
    out = out_path(args.out)
    harness.write_result(out, result, markdown)
    print(markdown, end="")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
