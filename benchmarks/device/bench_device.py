"""Device benchmark: host latency/RSS, emulated instructions per invoke, batch sweep.

Measures, for a float32 and an int8 student model:
  1. host per-crop end-to-end and invoke p50/p95 and peak RSS (load+invoke) at 1 thread;
  2. guest instructions per invoke on the emulated arm64 board for cortex-a53/a72/a76;
  3. host throughput for batch sizes 1..16 at 1 thread.

Writes benchmarks/results/device/device-<YYYYMMDD>[-<label>].json, .csv and .md (the
machine, load, versions and command are recorded in the JSON) and prints the Markdown tables
for benchmarks/README.md.

Usage:
  python -m benchmarks.device.bench_device                      # student architecture, untrained
  python -m benchmarks.device.bench_device --float runs/r1/student_float32.tflite \
      --int8 runs/r1/student_qat_int8.tflite                 # trained models instead
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.device import emu
from edgeped.fileio import write_text_atomic

SUBJECT = "device"


def build_student_models(out: Path) -> dict[str, Path]:
    """The package's student architecture (untrained weights), converted float32 and int8."""
    from benchmarks.device.calibration import random_calibration
    from edgeped._keras import keras
    from edgeped.convert.converter import convert_float32, convert_ptq_int8
    from edgeped.models.registry import ModelSpec, build_model

    keras.utils.set_random_seed(0)
    model = build_model(ModelSpec(architecture="student", use_metadata=True, dropout=0.0))
    paths = {"float32": out / "student_float32.tflite", "int8": out / "student_int8.tflite"}
    paths["float32"].write_bytes(convert_float32(model))
    paths["int8"].write_bytes(convert_ptq_int8(model, random_calibration(model, 32)))
    return paths


def out_path(out_dir: Path | None = None, label: str = "") -> Path:
    """Today's device-<YYYYMMDD>[-<label>].json in benchmarks/results/device/ or `out_dir`."""
    path = harness.result_path("device", SUBJECT, label)
    return path if out_dir is None else Path(out_dir) / path.name


def write(path: Path, record: dict[str, Any]) -> list[Path]:
    """The JSON, the Markdown tables beside it and the rows as CSV (same name)."""
    written = harness.write_result(path, record, markdown(record))
    rows = record["rows"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=sorted({k for row in rows for k in row}))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path.with_suffix(".csv"), text.getvalue())
    return [*written, path.with_suffix(".csv")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--float", dest="float32", type=Path, help="trained float32 .tflite")
    parser.add_argument("--int8", type=Path, help="trained int8 .tflite")
    parser.add_argument("--cores", default="a53,a72,a76")
    parser.add_argument("--batches", default="1,2,4,8,16")
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--pin", default="0", help="CPU list for host runs ('' for none)")
    parser.add_argument(
        "--out-dir", type=Path, help="folder for the results (default benchmarks/results/device)"
    )
    parser.add_argument(
        "--label",
        default="",
        help="qualifier of the results files (device-<YYYYMMDD>-<label>.json), e.g. 'trained'",
    )
    args = parser.parse_args(argv)

    from edgeped.targets import BenchOptions, bench_model
    from edgeped.targets.emulated import EmulatedArm64Target
    from edgeped.targets.local import LocalTarget

    pin = tuple(int(c) for c in args.pin.split(",") if c)
    record = harness.provenance("device", argv)
    with emu.clear_errors(), tempfile.TemporaryDirectory(prefix="bench-device-") as tmp:
        if args.float32 and args.int8:
            models = {"float32": args.float32, "int8": args.int8}
            model_source = "trained models given on the command line"
        else:
            models = build_student_models(Path(tmp))
            model_source = (
                "edgeped.models student architecture (depthwise-separable CNN on "
                "128x64x3 + meta[12]), untrained weights, PTQ int8 on random data"
            )
        host = LocalTarget()
        rows: list[dict] = []
        env = None
        for kind, path in models.items():
            print(f"host {kind} batch 1", file=sys.stderr)
            res = bench_model(
                path,
                host,
                BenchOptions(
                    threads=1, batch=1, min_runs=300, min_seconds=args.min_seconds, pin=pin
                ),
                parity=True,
            )
            env = res.runner["environment"]
            s = res.summary()
            rows.append(
                {
                    "section": "host_latency",
                    "model": kind,
                    "target": "host",
                    "core": env.get("cpu_model"),
                    "threads": 1,
                    "batch": 1,
                    "size_bytes": s["size_bytes"],
                    "runs": s["runs"],
                    "invoke_ms_p50": s["invoke_ms_p50"],
                    "invoke_ms_p95": s["invoke_ms_p95"],
                    "e2e_ms_per_crop_p50": s["e2e_ms_per_crop_p50"],
                    "e2e_ms_per_crop_p95": s["e2e_ms_per_crop_p95"],
                    "invoke_ms_p95_ci95": res.runner["invoke_ms"]["p95_ci95"],
                    "init_ms": s["init_ms"],
                    "first_inference_ms": s["first_inference_ms"],
                    "peak_rss_mb": s["peak_rss_mb"],
                    "process_peak_rss_mb": s["process_peak_rss_mb"],
                    "parity_ok": s["parity_ok"],
                }
            )
        for kind, path in models.items():
            for core in args.cores.split(","):
                print(f"emulated {kind} {core}", file=sys.stderr)
                res = bench_model(
                    path,
                    EmulatedArm64Target(core=core),
                    BenchOptions(threads=1, min_runs=3, min_seconds=0, warmup=1, insn_runs=3),
                    parity=True,
                )
                insn = res.runner["instructions"]
                rows.append(
                    {
                        "section": "emulated_instructions",
                        "model": kind,
                        "target": "arm64-emu",
                        "core": res.core,
                        "threads": 1,
                        "batch": 1,
                        "size_bytes": res.size_bytes,
                        "instructions_per_invoke": insn["instructions_per_invoke"],
                        "instructions_per_invoke_all": insn["per_invoke"],
                        "parity_ok": res.summary()["parity_ok"],
                    }
                )
        for kind, path in models.items():
            for batch in (int(b) for b in args.batches.split(",")):
                print(f"host {kind} batch {batch}", file=sys.stderr)
                res = bench_model(
                    path,
                    host,
                    BenchOptions(
                        threads=1,
                        batch=batch,
                        min_runs=50,
                        min_seconds=args.min_seconds / 2,
                        pin=pin,
                    ),
                )
                s = res.summary()
                rows.append(
                    {
                        "section": "batch_sweep",
                        "model": kind,
                        "target": "host",
                        "core": env.get("cpu_model"),
                        "threads": 1,
                        "batch": batch,
                        "throughput_crops_per_s": s["throughput_crops_per_s"],
                        "invoke_ms_p50": s["invoke_ms_p50"],
                        "invoke_ms_per_crop_p50": s["invoke_ms_p50"] / batch,
                        "e2e_ms_per_crop_p50": s["e2e_ms_per_crop_p50"],
                        "peak_rss_mb": s["peak_rss_mb"],
                    }
                )

    harness.finish(record)
    # The host CPU as the runner saw it, beside the harness's machine facts.
    record["machine"].update(cpu_model=env.get("cpu_model"), governor=env.get("governor"))
    record.update(model_source=model_source, pin=list(pin), rows=rows)
    path = out_path(args.out_dir, args.label)
    write(path, record)
    print(markdown(record))
    print(f"wrote {path} and its .csv and .md", file=sys.stderr)
    return 0


def markdown(record: dict) -> str:
    rows = record["rows"]
    out = [
        "| model | size | invoke p50 / p95 | end-to-end per crop p50 / p95 | peak RSS load+invoke | process peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for r in (r for r in rows if r["section"] == "host_latency"):
        out.append(
            f"| {r['model']} | {r['size_bytes'] / 1024:.0f} KiB | {r['invoke_ms_p50']:.3f} / "
            f"{r['invoke_ms_p95']:.3f} ms | {r['e2e_ms_per_crop_p50']:.3f} / "
            f"{r['e2e_ms_per_crop_p95']:.3f} ms | {r['peak_rss_mb']:.1f} MB | "
            f"{r['process_peak_rss_mb']:.1f} MB |"
        )
    out += [
        "",
        "| model | core | instructions per invoke | int8 parity with host |",
        "|---|---|---|---|",
    ]
    for r in (r for r in rows if r["section"] == "emulated_instructions"):
        out.append(
            f"| {r['model']} | {r['core']} | {r['instructions_per_invoke']:,} | "
            f"{'exact' if r['parity_ok'] and r['model'] == 'int8' else r['parity_ok']} |"
        )
    out += [
        "",
        "| model | batch | throughput (crops/s) | invoke per crop p50 | end-to-end per crop p50 |",
        "|---|---|---|---|---|",
    ]
    for r in (r for r in rows if r["section"] == "batch_sweep"):
        out.append(
            f"| {r['model']} | {r['batch']} | {r['throughput_crops_per_s']:.0f} | "
            f"{r['invoke_ms_per_crop_p50']:.3f} ms | {r['e2e_ms_per_crop_p50']:.3f} ms |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
