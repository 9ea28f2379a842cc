"""Pareto plot: int8 test recall (mean, min-max over seeds) against a76 instructions per invoke.

Reads a real-data benchmark JSON (benchmarks.training.bench_real_data) and an
architecture-cost JSON (benchmarks.device.arch_cost), old ones included. Trained variants are
points with seed spread; untrained-only variants of the cost sweep are marked on the cost
axis so the budget's room is visible. Writes
benchmarks/results/training/pareto-<YYYYMMDD>-<dataset>[-TAG].png (or --out).

Usage:
  python -m benchmarks.training.plot_pareto \
      benchmarks/results/training/real-data-20261202-pfd-front.json \
      benchmarks/results/device/arch-cost-20261201.json [more arch-cost JSONs] \
      --dataset pfd --tag front
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import harness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real_data", type=Path)
    parser.add_argument(
        "arch_cost", type=Path, nargs="+", help="benchmarks.device.arch_cost JSON(s)"
    )
    parser.add_argument("--dataset", default="pf")
    parser.add_argument("--budget", type=float, default=1.5e6, help="a76 instructions")
    parser.add_argument("--goal", type=float, default=0.95, help="int8 test recall")
    parser.add_argument("--tag", default="", help="qualifier after the dataset in the default name")
    parser.add_argument(
        "--out",
        type=Path,
        help="the PNG (default: benchmarks/results/training/pareto-<YYYYMMDD>-<dataset>[-TAG].png)",
    )
    args = parser.parse_args(argv)
    out = args.out or harness.result_path("training", "pareto", args.dataset, args.tag, ext="png")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real = json.loads(args.real_data.read_text())
    cost = {"rows": [r for p in args.arch_cost for r in json.loads(p.read_text())["rows"]]}
    fig, (ax, bx) = plt.subplots(
        2, 1, figsize=(7, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for row in real["rows"]:
        insn = row.get("a76_instructions_per_invoke")
        if row["dataset"] != args.dataset or not insn:
            continue
        s = row["summary"]["int8_recall"]
        ax.errorbar(
            [insn / 1e6],
            [s["mean"]],
            yerr=[[s["mean"] - s["min"]], [s["max"] - s["mean"]]],
            fmt="o",
            capsize=3,
        )
        ax.annotate(
            f"{row['variant']} (n={s['n']})",
            (insn / 1e6, s["mean"]),
            textcoords="offset points",
            xytext=(5, 3),
            fontsize=7,
        )
    ax.axhline(args.goal, color="grey", ls="--", lw=1)
    ax.axvline(args.budget / 1e6, color="red", ls=":", lw=1)
    ax.set(
        ylabel="int8 test recall at val threshold\n(mean, min-max over seeds)",
        title=f"Recall vs cortex-a76 cost ({args.dataset}); dashed: goal, dotted: budget",
    )
    for r in cost["rows"]:
        x = r["instructions_per_invoke"] / 1e6
        bx.scatter([x], [r["int8_size_bytes"] / 1024], marker="s", s=14)
        bx.annotate(r["variant"], (x, r["int8_size_bytes"] / 1024), fontsize=6, rotation=30)
    bx.axvline(args.budget / 1e6, color="red", ls=":", lw=1)
    bx.set(
        xlabel="a76 instructions per int8 invoke (millions, emulated, exact)",
        ylabel="int8 KiB",
        yscale="log",
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
