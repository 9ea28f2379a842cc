"""Architecture cost sweep: parameters, MACs, int8 size and cortex-a76 instructions per invoke.

For each student-family variant (architecture, width, depth) it builds the Keras model with
untrained weights, converts it to full int8 (post-training quantisation on random data:
cost depends on the graph, not the weights; trained models were measured within 0.01% of
untrained ones, see README), and counts guest instructions per invoke on the emulated
arm64 board (exact, repeatable). Writes benchmarks/results/arch-cost-<host>-<date>.json.

Usage:
  python -m benchmarks.device.arch_cost                                  # the default sweep
  python -m benchmarks.device.arch_cost --variants student:1.0:1,mobilenet:1.0:1 --core a76
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
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
    import numpy as np

    from edgeped._keras import keras, tf
    from edgeped.models.registry import ModelSpec, build_model

    keras.utils.set_random_seed(0)
    model = build_model(ModelSpec(arch, width=width, depth=depth, use_metadata=True, dropout=0.0))
    names = [t.name.split(":")[0] for t in model.inputs]
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(16):
            yield {
                n: rng.uniform(-1, 1, (1, *s)).astype(np.float32)
                for n, s in zip(names, shapes, strict=True)
            }

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = out / f"{variant_name(arch, width, depth)}.tflite"
    path.write_bytes(converter.convert())
    return path, {"parameters": int(model.count_params()), "macs": macs(model)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="arch:width:depth,...")
    parser.add_argument("--core", default="a76")
    parser.add_argument("--out", type=Path, help="JSON path (default results/arch-cost-...)")
    args = parser.parse_args(argv)

    from edgeped.targets import BenchOptions, bench_model
    from edgeped.targets.emulated import EmulatedArm64Target

    stamp = dt.datetime.now(dt.UTC)
    out = args.out or HERE / "results" / f"arch-cost-{platform.node()}-{stamp:%Y%m%d}.json"
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
            write_record(out, rows)
    write_record(out, rows)
    print("| variant | params | MMAC | int8 KiB | a76 instructions |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['parameters']:,} | {r['macs'] / 1e6:.2f} | "
            f"{r['int8_size_bytes'] / 1024:.0f} | {r['instructions_per_invoke']:,} |"
        )
    print(f"wrote {out}", file=sys.stderr)
    return 0


def write_record(out: Path, rows: list[dict]) -> None:
    from edgeped.fileio import write_json_atomic
    from edgeped.provenance import tool_versions

    stamp = dt.datetime.now(dt.UTC)
    record = {
        "kind": "edgeped.benchmark.arch_cost",
        "schema_version": 1,
        "date_utc": stamp.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model_source": "untrained weights, PTQ int8 on random data, int8 I/O, with metadata",
        "loadavg": list(os.getloadavg()),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "tool_versions": tool_versions(),
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, record)


if __name__ == "__main__":
    sys.exit(main())
