"""The quantisation report as Markdown: layers ranked by error, variants side by side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeped.evaluate.quant_debug import QuantDebugResult


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _f(v, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown(result: QuantDebugResult, max_layers: int = 20) -> str:
    """Ranked layers (RMSE in quantisation steps) and the effect of each variant."""
    o = result.options
    inp = result.inputs
    lines = [
        f"# Quantisation report: {result.run_dir}",
        "",
        f"Float parent `{result.float_checkpoint}`; per-layer error of its full-int8 conversion "
        f"(TFLite QuantizationDebugger: every op's int8 output against its float output) on "
        f"{inp.get('debug_crops')} val crops, calibrated on {inp.get('calibration_crops')} train "
        "crops. RMSE/scale is the error in quantisation steps (0.29 = rounding alone).",
        "",
        "| rank | op | output tensor | elements | RMSE | max abs error | scale | RMSE/scale |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for i, e in enumerate(result.layers[:max_layers], 1):
        lines.append(
            f"| {i} | {e.op} | `{e.tensor[:60]}` | {e.elements:,} | {e.rmse:.5f} | "
            f"{e.max_abs_error:.5f} | {e.scale:.5f} | {e.rmse_over_scale:.3f} |"
        )
    base = next((v for v in result.variants if v.kind == "int8"), None)
    core = inp.get("core") or "-"
    lines += [
        "",
        f"Variants: threshold chosen on val at FPR <= {o.max_fpr:.0%}, applied to test "
        f"({inp.get('val_crops')} val / {inp.get('test_crops')} test crops); instructions per "
        f"invoke on emulated {core}.",
        "",
        "| variant | size | val recall | test recall | test FPR | test AUC-PR | instructions "
        "| vs int8 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in result.variants:
        ratio = (
            f"{v.instructions / base.instructions:.2f}x"
            if base and base.instructions and v.instructions
            else "-"
        )
        insn = f"{v.instructions:,}" if v.instructions else "-"
        lines.append(
            f"| {v.name} | {v.size_bytes / 1024:.1f} KiB | {_f(v.val['recall'], 3)} | "
            f"{_f(v.test['recall'], 3)} | {_pct(v.test['fpr'])} | {_f(v.test['auc_pr'])} | "
            f"{insn} | {ratio} |"
        )
    lines += [
        "",
        "- A float layer runs between a DEQUANTIZE and a QUANTIZE: XNNPACK runs it in fp32, "
        "so its instructions grow by the MAC ratio of fp32 to int8 kernels.",
        "- 16x8 has no XNNPACK kernels: the whole model runs on LiteRT's reference kernels.",
        "- `edgeped quant-debug RUN --keep-float TENSOR` (repeatable) or `--int16` converts "
        "the variant you choose next to the run.",
    ]
    return "\n".join(lines) + "\n"


def save(result: QuantDebugResult, stem: str | Path) -> list[Path]:
    """Writes STEM.json and STEM.md; returns the paths."""
    from edgeped.fileio import write_json_atomic, write_text_atomic

    stem = Path(stem)
    paths = [stem.with_suffix(".json"), stem.with_suffix(".md")]
    write_json_atomic(paths[0], result.to_dict())
    write_text_atomic(paths[1], markdown(result))
    return paths
