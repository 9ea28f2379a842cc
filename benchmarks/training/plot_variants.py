"""Plots MAC/instr against instructions per crop (a76) for bench_variants results.

  python -m benchmarks.training.plot_variants benchmarks/results/device/variants-20261201.json \
      [benchmarks/results/device/variants-20261201-round2.json ...]

The goal region (>= 8 MAC/instr, <= 1.5 M instructions per crop) is shaded. Writes
benchmarks/results/device/variants-<YYYYMMDD>[-TAG].png beside the results it plots (or --out).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import harness

GOAL_MAC_PER_INSTR = 8.0
GOAL_INSTR_PER_CROP = 1.5e6


def points(results: list[dict]) -> dict[str, tuple[float, float, float]]:
    """name -> (a76 instructions, a76 MAC/instr, MACs); later files win on equal names."""
    out = {}
    for result in results:
        for row in result["rows"]:
            ins = row["instructions"]["cortex-a76"]
            out[row["variant"]["name"]] = (ins, row["macs"] / ins, row["macs"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--tag", default="", help="qualifier of the default name")
    ap.add_argument(
        "--out",
        type=Path,
        help="the PNG (default: benchmarks/results/device/variants-<YYYYMMDD>[-TAG].png)",
    )
    args = ap.parse_args(argv)
    out = args.out or harness.result_path("device", "variants", args.tag, ext="png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = points([json.loads(p.read_text()) for p in args.results])
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    ax.fill_between(
        [0, GOAL_INSTR_PER_CROP / 1e6],
        GOAL_MAC_PER_INSTR,
        16,
        color="tab:green",
        alpha=0.15,
        label="goal: >= 8 MAC/instr, <= 1.5 M instr",
    )
    ax.axhline(16, color="grey", linestyle=":", linewidth=1)
    ax.text(0.05, 15.4, "int8 sdot limit (16 MAC/instr)", color="grey", fontsize=8)
    items = sorted(pts.items(), key=lambda kv: -kv[1][1])

    def crowded(x, y):
        return sum(abs(x - ox / 1e6) < 0.3 and abs(y - oy) < 0.8 for ox, oy, _ in pts.values()) > 1

    rank = 0
    for name, (ins, mpi, macs) in items:
        x = ins / 1e6
        ax.scatter(
            x, mpi, s=20 + macs / 2.5e5, zorder=3, color="tab:red" if name == "base" else "tab:blue"
        )
        label = f"{name} ({macs / 1e6:.1f} MMAC)"
        if crowded(x, mpi):
            # Near-coincident points: labels in a column to the right, with leader lines.
            ax.annotate(
                label,
                (x, mpi),
                fontsize=7,
                xytext=(70, 40 - 12 * rank),
                textcoords="offset points",
                arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.6},
            )
            rank += 1
        else:
            ax.annotate(label, (x, mpi), fontsize=7, xytext=(6, 3), textcoords="offset points")
    ax.set_xlabel("a76 instructions per crop (millions, LiteRT int8, batch 1)")
    ax.set_ylabel("MAC per instruction (a76)")
    ax.set_xlim(0, max(p[0] for p in pts.values()) / 1e6 * 1.35)
    ax.set_ylim(0, 16.5)
    ax.set_title("Student variants against the sdot limit (emulated cortex-a76)")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    fig.savefig(tmp, format="png")
    tmp.replace(out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
