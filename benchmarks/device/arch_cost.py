"""Architecture cost sweep: parameters, MACs, int8 size and cortex-a76 instructions per invoke.

For each student-family variant (architecture, width, depth) it builds the Keras model with
untrained weights, converts it to full int8 (post-training quantisation on random data:
cost depends on the graph, not the weights; trained models were measured within 0.01% of
untrained ones, see README), and counts guest instructions per invoke on the emulated
arm64 board (exact, repeatable). Writes
benchmarks/results/device/arch-cost-<YYYYMMDD>[-<label>].json and a Markdown table beside it
(--out: another JSON path); rerun with the same output to resume a sweep.

Usage:
  python -m benchmarks.device.arch_cost                                  # the default sweep
  python -m benchmarks.device.arch_cost --variants vgg:0.25:1 --core a76 --label vgg
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.device import emu

SUBJECT = "arch-cost"
MODEL_SOURCE = "untrained weights, PTQ int8 on random data, int8 I/O, with metadata"
DEFAULT_VARIANTS = (
    "student:0.5:1,student:0.75:1,student:1.0:1,student:1.25:1,student:1.5:1,"
    "student:0.75:2,student:1.0:2,student:1.0:3,mobilenet:0.5:1,mobilenet:1.0:1"
)


def parse_variant(text: str) -> tuple[str, float, int]:
    arch, width, depth = text.split(":")
    return arch, float(width), int(depth)


def variant_name(arch: str, width: float, depth: int) -> str:
    return f"{arch}-w{width:g}-d{depth}"


def macs(model) -> int:
    """Multiply-accumulates of the conv, depthwise and dense layers (batch 1)."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in ("Conv2D", "DepthwiseConv2D", "Dense"):
            continue
        out = layer.output_shape
        kernel = layer.get_weights()[0]
        if kind == "Dense":
            total += int(kernel.shape[0] * kernel.shape[1])
        elif kind == "Conv2D":
            total += int(out[1] * out[2] * kernel.size)
        else:  # depthwise: one k x k filter per channel
            total += int(out[1] * out[2] * kernel.size)
    return total


def build_int8(arch: str, width: float, depth: int, out: Path) -> tuple[Path, dict]:
    """The variant's Keras model (seed 0), full int8 on 16 random samples; its size facts."""
    from benchmarks.device.calibration import random_calibration
    from edgeped._keras import keras
    from edgeped.convert.converter import convert_ptq_int8
    from edgeped.models.registry import ModelSpec, build_model

    keras.utils.set_random_seed(0)
    model = build_model(ModelSpec(arch, width=width, depth=depth, use_metadata=True, dropout=0.0))
    path = out / f"{variant_name(arch, width, depth)}.tflite"
    path.write_bytes(convert_ptq_int8(model, random_calibration(model, 16)))
    return path, {"parameters": int(model.count_params()), "macs": macs(model)}


def out_path(out: Path | None = None, label: str = "") -> Path:
    """`out`, else today's benchmarks/results/device/arch-cost-<YYYYMMDD>[-<label>].json."""
    return out or harness.result_path("device", SUBJECT, label)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="arch:width:depth,...")
    parser.add_argument("--core", default="a76")
    parser.add_argument("--label", default="", help="name qualifier, e.g. 'vgg'")
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON path (default benchmarks/results/device/arch-cost-<YYYYMMDD>[-<label>].json)",
    )
    args = parser.parse_args(argv)

    from edgeped.targets import BenchOptions, bench_model
    from edgeped.targets.emulated import EmulatedArm64Target

    out = out_path(args.out, args.label)
    record = harness.provenance("arch_cost", argv)
    # Resumable: rows of variants already counted (same core) are kept, the rest counted.
    rows = json.loads(out.read_text())["rows"] if out.is_file() else []
    done = {(r["variant"], r["core"]) for r in rows}
    with tempfile.TemporaryDirectory(prefix="arch-cost-") as tmp:
        for text in args.variants.split(","):
            arch, width, depth = parse_variant(text)
            if (variant_name(arch, width, depth), args.core) in done:
                continue
            path, info = build_int8(arch, width, depth, Path(tmp))
            print(f"{variant_name(arch, width, depth)}: {info}", file=sys.stderr)
            # Emulation on a busy 2-core machine can take many minutes per counted invoke.
            with emu.clear_errors():
                res = bench_model(
                    path,
                    EmulatedArm64Target(core=args.core),
                    BenchOptions(min_runs=1, min_seconds=0, warmup=1, insn_runs=1, timeout_s=3600),
                    parity=False,
                )
            rows.append(
                {
                    "variant": variant_name(arch, width, depth),
                    "architecture": arch,
                    "width": width,
                    "depth": depth,
                    **info,
                    "int8_size_bytes": path.stat().st_size,
                    "core": args.core,
                    "instructions_per_invoke": res.runner["instructions"][
                        "instructions_per_invoke"
                    ],
                }
            )
            print(f"  {rows[-1]['instructions_per_invoke']:,} instructions", file=sys.stderr)
            write_record(out, record, rows)
    write_record(out, record, rows)
    print(render(record))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def write_record(out: Path, record: dict[str, Any], rows: list[dict]) -> list[Path]:
    """Writes the sweep so far (the provenance `record` finished now) and its table."""
    record.update(model_source=MODEL_SOURCE, rows=rows)
    return harness.write_result(out, harness.finish(record), render(record))


def render(record: dict[str, Any]) -> str:
    """The Markdown table of a sweep."""
    lines = [
        f"`{record['command']}` ({record['date_utc']}); {record['model_source']}.",
        "",
        "| variant | params | MMAC | int8 KiB | instructions | core |",
        "|---|---|---|---|---|---|",
    ]
    for r in record["rows"]:
        lines.append(
            f"| {r['variant']} | {r['parameters']:,} | {r['macs'] / 1e6:.2f} | "
            f"{r['int8_size_bytes'] / 1024:.0f} | {r['instructions_per_invoke']:,} | "
            f"{r['core']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
