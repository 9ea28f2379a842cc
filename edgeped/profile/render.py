"""A profile as Markdown (one row per op) and as a PNG bar chart (matplotlib, headless)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from edgeped.fileio import write_bytes_atomic

if TYPE_CHECKING:
    from edgeped.profile.run import ProfileResult


def _short(where: str) -> str:
    return where.removeprefix("cortex-")


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "-"


def markdown(result: ProfileResult) -> str:
    """The per-op table, the sum check and the flagged ops, as Markdown."""
    rows = result.rows
    measures = result.measures
    counted = measures[0].metric == "instructions"
    kind = "EMULATED " if result.target.get("emulated") else ""
    lines = [
        f"# Per-op profile: {Path(result.model_path).name}",
        "",
        f"{kind}target `{result.target['name']}`; model sha256 `{result.model_sha256[:12]}`, "
        f"{result.total_macs:,} MACs, {len(rows)} ops.",
        "",
    ]
    if counted:
        lines += [
            "Cost of op k = instructions of the model cut after op k minus the model cut "
            "after op k-1 (exact guest instructions, QEMU counting plugin, median of "
            f"{result.options.insn_runs} invokes). Limit: int8 MACs one instruction can do "
            "(a76 `sdot` 16; a53/a72 without `sdot`: `smlal` 8).",
            "",
            "| core | instructions / invoke | MAC/instr | limit | sum of ops / whole |",
            "|---|---:|---:|---:|---:|",
        ]
        for core, s in result.summary().items():
            lines.append(
                f"| {_short(core)} | {s['whole']:,.0f} | {_num(s['mac_per_insn'])} | "
                f"{s['limit_mac_per_insn']:g} | {s['sum_over_whole']:.4f} |"
            )
    else:
        lines += [
            "| target | invoke p50 (us) | sum of ops / whole |",
            "|---|---:|---:|",
        ]
        for where, s in result.summary().items():
            lines.append(f"| {where} | {s['whole']:,.1f} | {s['sum_over_whole']:.4f} |")
        lines += [
            "",
            "Time per op = p50 of the model cut after op k minus p50 of the model cut after "
            "op k-1: noisy on a shared machine (small ops can come out negative) and not held "
            "to the 2% sum check that the exact instruction counts must pass.",
        ]
    lines.append("")
    head = ["#", "op", "class", "input", "output", "MACs"]
    for m in measures:
        w = _short(m.where)
        head += (
            [f"{w} instr", f"{w} MAC/instr", f"{w} share"]
            if counted
            else [
                f"{w} us",
                f"{w} share",
            ]
        )
    head.append("flags")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            str(r["index"]),
            r["kind"],
            r["class"],
            ", ".join(_shape(s) for s in r["input_shapes"]) or "-",
            _shape(r["output_shape"]),
            f"{r['macs']:,}",
        ]
        flags = []
        for m in measures:
            c = r["cost"][m.where]
            if counted:
                cells += [
                    f"{c['instructions']:,.0f}",
                    _num(c["mac_per_insn"]),
                    f"{100 * c['share']:.1f}%",
                ]
            else:
                cells += [f"{c['time_us']:,.1f}", f"{100 * c['share']:.1f}%"]
            flags += [f"{_short(m.where)}: {f}" for f in c["flags"]]
        cells.append("; ".join(flags))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if not result.sums_to_whole:
        lines += [
            "**The per-op costs do not add up to the whole invoke within 2%**: the prefix "
            "models are not comparable with the whole model (see `measures` in the JSON).",
            "",
        ]
    for note in result.notes:
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"


def bar_chart_png(result: ProfileResult, path: str | Path) -> Path:
    """Cost per op (share of the invoke, one bar per core) and MAC/instr against the limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.rows
    measures = result.measures
    counted = measures[0].metric == "instructions"
    labels = [f"{r['index']} {r['kind'].replace('_2D', '')}" for r in rows]
    n, k = len(rows), len(measures)
    width = 0.8 / k
    panels = 2 if counted else 1
    fig, axes = plt.subplots(
        panels, 1, figsize=(max(8, 0.45 * n + 3), 3.4 * panels), squeeze=False, sharex=True
    )
    ax = axes[0][0]
    for j, m in enumerate(measures):
        xs = [i + (j - (k - 1) / 2) * width for i in range(n)]
        ax.bar(xs, [100 * r["cost"][m.where]["share"] for r in rows], width, label=_short(m.where))
    ax.set_ylabel("share of the invoke (%)")
    what = "instructions" if counted else "time"
    ax.set_title(f"{Path(result.model_path).name}: {what} per op")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    if counted:
        ax2 = axes[1][0]
        for j, m in enumerate(measures):
            xs = [i + (j - (k - 1) / 2) * width for i in range(n)]
            vals = [r["cost"][m.where]["mac_per_insn"] or 0.0 for r in rows]
            bars = ax2.bar(xs, vals, width, label=_short(m.where))
            if m.limit:
                ax2.axhline(m.limit, color=bars.patches[0].get_facecolor(), ls="--", lw=0.8)
        ax2.set_ylabel("MAC per instruction")
        ax2.set_title("MAC per instruction (dashed: the core's int8 limit)", fontsize=9)
        ax2.grid(axis="y", alpha=0.3)
    bottom = axes[-1][0]
    bottom.set_xticks(range(n))
    bottom.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)


def save(result: ProfileResult, stem: str | Path) -> list[Path]:
    """Writes STEM.json, STEM.md and STEM.png (the chart); returns the paths."""
    from edgeped.fileio import write_json_atomic, write_text_atomic

    stem = Path(stem)
    paths = [stem.with_suffix(".json"), stem.with_suffix(".md"), stem.with_suffix(".png")]
    write_json_atomic(paths[0], result.to_dict())
    write_text_atomic(paths[1], markdown(result))
    bar_chart_png(result, paths[2])
    return paths
