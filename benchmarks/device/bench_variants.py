"""MAC per instruction of student architecture variants on emulated ARM cores.

Builds each variant in Keras (here, not in edgeped.models: the shipped architecture stays
the training code's), converts it to full-int8 TFLite calibrated on real train crops, and
counts LiteRT instructions per invoke on cortex-a53/a72/a76, plus per-op-class instructions
on a76 from prefix models. Instruction counts depend on the graph and quantisation, not on
trained weights, so the variants are untrained; their recall is not measured here.

  python -m benchmarks.device.bench_variants --data DATA_DIR [--only base,wide2] [--label round2]
Writes benchmarks/results/device/variants-<YYYYMMDD>[-<label>].json (--out: another path) and
the Markdown tables beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.device import emu
from benchmarks.device import graphcost as gc

SUBJECT = "variants"

# The shipped student: (pointwise filters, stride) per depthwise-separable block.
BASE_BLOCKS = ((32, 1), (48, 2), (64, 2), (96, 2), (128, 2), (128, 1))


@dataclass(frozen=True)
class Variant:
    """One architecture choice; every field's default is the shipped student."""

    name: str
    what: str
    stem: str = (
        "conv3x3s2"  # conv3x3s2 | patch4 (4x4 stride-4 conv) | s2d2 (space-to-depth 2 + 1x1)
    )
    stem_filters: int = 16
    # (filters, stride) = depthwise 3x3 + pointwise 1x1; (filters, stride, "conv") = one 3x3
    # conv; (filters, stride, "pw") = the 1x1 conv alone
    blocks: tuple[tuple, ...] = BASE_BLOCKS
    meta: str = "branch"  # branch (Dense 16 + concat) | direct (concat raw 12) | none
    hidden: int = 32
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stem not in ("conv3x3s2", "patch4", "s2d2"):
            raise ValueError(f"stem must be conv3x3s2, patch4 or s2d2, got {self.stem!r}")
        if self.meta not in ("branch", "direct", "none"):
            raise ValueError(f"meta must be branch, direct or none, got {self.meta!r}")


def _scaled(blocks, k: float):
    return tuple((int(round(b[0] * k / 16)) * 16, *b[1:]) for b in blocks)


VARIANTS = [
    Variant("base", "the shipped student (width 1.0)"),
    Variant(
        "c32",
        "every pointwise width a multiple of 32 (48->64, 96->128)",
        blocks=((32, 1), (64, 2), (64, 2), (128, 2), (128, 2), (128, 1)),
    ),
    Variant(
        "no_b0",
        "fewer narrow layers: the full-resolution 16->32 block dropped, stem 32",
        stem_filters=32,
        blocks=BASE_BLOCKS[1:],
    ),
    Variant(
        "b0_s2",
        "fewer narrow layers: the first block downsamples (64x32 -> 32x16)",
        blocks=((32, 2), (48, 1), (64, 2), (96, 2), (128, 2), (128, 1)),
    ),
    Variant(
        "stem_patch4",
        "cheaper stem: 4x4 stride-4 conv to 32x16, first two blocks stride 1",
        stem="patch4",
        blocks=((32, 1), (48, 1), (64, 2), (96, 2), (128, 2), (128, 1)),
    ),
    Variant(
        "stem_s2d", "cheaper stem: space-to-depth 2 (12 ch) + 1x1 conv, no 3x3 stem", stem="s2d2"
    ),
    Variant(
        "meta_direct",
        "fused metadata: raw 12 inputs concatenated into the head, no meta Dense",
        meta="direct",
    ),
    Variant("no_meta", "image only: no metadata branch, no concat", meta="none"),
    Variant(
        "fused_b0",
        "the full-resolution depthwise block as one 3x3 conv 16->32, stride 2 "
        "(replaces b0 and b1's downsampling)",
        blocks=((32, 2, "conv"), (48, 1), (64, 2), (96, 2), (128, 2), (128, 1)),
    ),
    Variant(
        "fused_b0_b1",
        "the first two blocks as 3x3 convs (16->32 s2, 32->48 s1)",
        blocks=((32, 2, "conv"), (48, 1, "conv"), (64, 2), (96, 2), (128, 2), (128, 1)),
    ),
    Variant(
        "wide1.5",
        "every width x1.5 (multiples of 16)",
        stem_filters=32,
        blocks=_scaled(BASE_BLOCKS, 1.5),
        hidden=48,
    ),
    Variant(
        "wide2", "every width x2", stem_filters=32, blocks=_scaled(BASE_BLOCKS, 2.0), hidden=64
    ),
    Variant(
        "wide2_b0_s2_direct",
        "x2 widths, first block stride 2, fused metadata",
        stem_filters=32,
        blocks=_scaled(((32, 2), (48, 1), (64, 2), (96, 2), (128, 2), (128, 1)), 2.0),
        meta="direct",
        hidden=64,
    ),
    Variant(
        "wide2_fused_b0_direct",
        "x2 widths, first block a 3x3 conv s2, fused metadata",
        stem_filters=32,
        blocks=_scaled(((32, 2, "conv"), (48, 1), (64, 2), (96, 2), (128, 2), (128, 1)), 2.0),
        meta="direct",
        hidden=64,
    ),
    Variant(
        "wide2_fused_b0_direct_stem16",
        "as wide2_fused_b0_direct with the stem at 16",
        blocks=_scaled(((32, 2, "conv"), (48, 1), (64, 2), (96, 2), (128, 2), (128, 1)), 2.0),
        meta="direct",
        hidden=64,
    ),
    Variant(
        "wide1.5_fused_b0_direct_stem16",
        "x1.5 widths, stem 16, first block a 3x3 conv s2, fused metadata",
        blocks=_scaled(((32, 2, "conv"), (48, 1), (64, 2), (96, 2), (128, 2), (128, 1)), 1.5),
        meta="direct",
        hidden=48,
    ),
    Variant(
        "wide2_fused_b0_pw_b1_direct_stem16",
        "as wide2_fused_b0_direct_stem16 with the 32x16 block's depthwise dropped (1x1 only)",
        blocks=_scaled(((32, 2, "conv"), (48, 1, "pw"), (64, 2), (96, 2), (128, 2), (128, 1)), 2.0),
        meta="direct",
        hidden=64,
    ),
    Variant(
        "wide3_fused_b0_direct",
        "x3 widths, first block a 3x3 conv s2, fused metadata",
        stem_filters=32,
        blocks=_scaled(((32, 2, "conv"), (48, 1), (64, 2), (96, 2), (128, 2), (128, 1)), 3.0),
        meta="direct",
        hidden=64,
    ),
]


def build(v: Variant):
    from edgeped._keras import keras

    L = keras.layers
    image = keras.Input((128, 64, 3), name="image")
    meta = None if v.meta == "none" else keras.Input((12,), name="meta")
    if v.stem == "conv3x3s2":
        x = L.Conv2D(v.stem_filters, 3, strides=2, padding="same", use_bias=False)(image)
    elif v.stem == "patch4":
        x = L.Conv2D(v.stem_filters, 4, strides=4, padding="valid", use_bias=False)(image)
    else:
        x = L.Lambda(lambda t: __import__("tensorflow").nn.space_to_depth(t, 2))(image)
        x = L.Conv2D(v.stem_filters, 1, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    for block in v.blocks:
        filters, stride = block[0], block[1]
        if len(block) > 2 and block[2] == "pw":
            # A pointwise-only block: the 1x1 conv without its depthwise 3x3.
            x = L.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
            x = L.BatchNormalization()(x)
            x = L.ReLU(6.0)(x)
            continue
        if len(block) > 2 and block[2] == "conv":
            # A "fused" block: one regular 3x3 conv instead of depthwise + pointwise.
            x = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
            x = L.BatchNormalization()(x)
            x = L.ReLU(6.0)(x)
            continue
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU(6.0)(x)
        x = L.Conv2D(filters, 1, use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU(6.0)(x)
    x = L.GlobalAveragePooling2D()(x)
    if v.meta == "branch":
        x = L.Concatenate()([x, L.Dense(16, activation="relu")(meta)])
    elif v.meta == "direct":
        x = L.Concatenate()([x, meta])
    x = L.Dense(v.hidden, activation="relu")(x)
    score = L.Dense(1, activation="sigmoid", name="score")(x)
    return keras.Model([image] if meta is None else [image, meta], score, name=v.name)


def convert_int8(model, images, metas) -> bytes:
    """Full-int8 TFLite (int8 I/O) calibrated on preprocessed real crops."""
    import numpy as np

    from edgeped.convert.converter import CalibrationData, convert_ptq_int8

    image = (images.astype(np.float32) - 128.0) / 128.0
    return convert_ptq_int8(model, CalibrationData(image=image, meta=metas))


def out_path(out: Path | None = None, label: str = "") -> Path:
    """`out`, else today's benchmarks/results/device/variants-<YYYYMMDD>[-<label>].json."""
    return out or harness.result_path("device", SUBJECT, label)


def calibration(data: Path, n: int):
    """n real train crops: uint8 images and the 12-wide standardised meta input."""
    import numpy as np

    from edgeped.data.preprocess import Preprocessing
    from edgeped.data.shards import Dataset

    ds = Dataset.open(data)
    batch = next(ds.iter_batches("train", batch_records=n))
    stats = json.loads((data / "manifest.json").read_text()).get("metadata_stats")
    prep = Preprocessing.from_manifest_stats(stats) if stats else None
    meta = batch.metadata.astype(np.float32)
    if prep is not None:
        meta = prep.metadata(meta)
    else:
        present = ~np.isnan(meta)
        meta = np.concatenate([np.nan_to_num(meta), present], axis=1).astype(np.float32)
    return batch.images[:n], meta[:n].astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="dataset for calibration crops")
    ap.add_argument("--emu", default=None)
    ap.add_argument("--only", default="", help="comma-separated variant names")
    ap.add_argument("--calibration", type=int, default=64)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--label", default="", help="name qualifier, e.g. 'round2'")
    ap.add_argument(
        "--out",
        type=Path,
        help="JSON path (default benchmarks/results/device/variants-<YYYYMMDD>[-<label>].json)",
    )
    args = ap.parse_args(argv)
    board = emu.board(args.emu)
    chosen = [v for v in VARIANTS if not args.only or v.name in args.only.split(",")]
    if not chosen:
        raise SystemExit(
            f"error: no variant named {args.only}\nfix: use names from {[v.name for v in VARIANTS]}"
        )
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeped-variants-"))
    work.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr)  # noqa: E731
    from edgeped._keras import keras

    result = harness.provenance("variants", argv)
    images, metas = calibration(args.data, args.calibration)
    rows = []
    for v in chosen:
        log(f"building {v.name}")
        keras.utils.set_random_seed(0)
        model = build(v)
        data = convert_int8(model, images, metas)
        path = work / f"{v.name}.tflite"
        path.write_bytes(data)
        ops = gc.graph_ops(data)
        prefixes = []
        for k in range(1, len(ops) + 1):
            p = work / f"{v.name}_prefix_{k:02d}.tflite"
            p.write_bytes(gc.prefix_model(data, k))
            prefixes.append(p)
        rows.append(
            {
                "variant": asdict(v),
                "file": path.name,
                "size_bytes": len(data),
                "params": int(model.count_params()),
                "macs": gc.total_macs(data),
                "ops": [o.to_dict() for o in ops],
                "path": str(path),
                "prefixes": [str(p) for p in prefixes],
                "float_ops": sorted({o.kind for o in ops if o.kind in ("DEQUANTIZE", "QUANTIZE")}),
            }
        )
    counts = {}
    for core in emu.CORES:
        jobs = [{"name": r["variant"]["name"], "model": r["path"], "runs": 3} for r in rows]
        if core == "cortex-a76":
            jobs += [
                {"name": f"{r['variant']['name']}/prefix_{i + 1}", "model": p, "runs": 1}
                for r in rows
                for i, p in enumerate(r["prefixes"])
            ]
        log(f"counting on {core}: {len(jobs)} jobs")
        with emu.clear_errors():
            res = emu.count(board, core, "litert", jobs)
        counts[core] = {j["name"]: j["instructions_per_invoke"] for j in res["results"]}
        env = res["environment"]
    for r in rows:
        name = r["variant"]["name"]
        r["instructions"] = {c: counts[c][name] for c in emu.CORES}
        r["mac_per_instr"] = {c: r["macs"] / counts[c][name] for c in emu.CORES}
        prefix = [counts["cortex-a76"][f"{name}/prefix_{i + 1}"] for i in range(len(r["ops"]))]
        deltas = gc.per_op_deltas(prefix)
        ops = [
            gc.GraphOp(
                o["index"], o["kind"], o["class"], o["output"], tuple(o["output_shape"]), o["macs"]
            )
            for o in r["ops"]
        ]
        r["a76_by_class"] = gc.by_class(ops, deltas)
        r["a76_per_op"] = deltas
        del r["path"], r["prefixes"]
    result.update(emulated=env, calibration_crops=int(len(images)), rows=rows)
    out = out_path(args.out, args.label)
    harness.write_result(out, harness.finish(result), render(result))
    print(out)
    return 0


def render(result: dict[str, Any]) -> str:
    """The Markdown tables of a result."""
    base = next((r for r in result["rows"] if r["variant"]["name"] == "base"), result["rows"][0])
    lines = [
        "# MAC per instruction of student variants (LiteRT int8, XNNPACK)",
        "",
        f"Command: `{result['command']}` ({result['date_utc']}). Untrained weights, "
        f"full-int8 PTQ on {result['calibration_crops']} real train crops. Emulated "
        f"aarch64 Python {result['emulated'].get('python')}, numpy "
        f"{result['emulated'].get('numpy')}, ai-edge-litert "
        f"{result['emulated'].get('runtime_version')}. Goal: >= 8 MAC/instr on a76 and "
        "<= 1.5 M instructions per crop.",
        "",
        "| variant | what | MACs | params | a53 | a72 | a76 | a76 vs base | MAC/instr "
        "a53 / a72 / a76 | a76 share: stem / dw / pw / head+meta+fuse |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        ins = r["instructions"]
        mpi = r["mac_per_instr"]
        cls = r["a76_by_class"]
        tot = sum(c["cost"] for c in cls.values())

        def share(*names, cls=cls, tot=tot):
            return sum(cls.get(n, {}).get("cost", 0) for n in names) / tot

        lines.append(
            f"| {r['variant']['name']} | {r['variant']['what']} | {r['macs'] / 1e6:.2f} M | "
            f"{r['params']:,} | "
            + " | ".join(f"{ins[c] / 1e6:.3f} M" for c in emu.CORES)
            + f" | {ins['cortex-a76'] / base['instructions']['cortex-a76']:.3f} | "
            + " / ".join(f"{mpi[c]:.2f}" for c in emu.CORES)
            + f" | {share('stem') * 100:.0f}% / {share('depthwise') * 100:.0f}% / "
            f"{share('pointwise', 'conv') * 100:.0f}% / "
            f"{share('head', 'meta', 'fuse', 'pool', 'io', 'other') * 100:.0f}% |"
        )
    lines += [
        "",
        "MAC/instr per op class on a76:",
        "",
        "| variant | stem | depthwise | pointwise | head+meta |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        cls = r["a76_by_class"]

        def mpi(*names, cls=cls):
            macs = sum(cls.get(n, {}).get("macs", 0) for n in names)
            cost = sum(cls.get(n, {}).get("cost", 0) for n in names)
            return f"{macs / cost:.2f}" if cost > 0 and macs else "-"

        lines.append(
            f"| {r['variant']['name']} | {mpi('stem')} | {mpi('depthwise')} | "
            f"{mpi('pointwise', 'conv')} | {mpi('head', 'meta')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
