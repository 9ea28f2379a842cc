"""Pareto plot: int8 test recall (mean, min-max over seeds) against a76 instructions per invoke.

Reads a real-data benchmark JSON (bench_real_data.py) and an architecture-cost JSON
(arch_cost.py). Trained variants are points with seed spread; untrained-only variants of
the cost sweep are marked on the cost axis so the budget's room is visible.

Usage:
  python -m benchmarks.training.plot_pareto results/real-data-X.json results/arch-cost-X.json \
      [more arch-cost JSONs] --dataset pfd --out results/pareto-X.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real_data", type=Path)
    parser.add_argument("arch_cost", type=Path, nargs="+", help="arch_cost.py JSON(s)")
    parser.add_argument("--dataset", default="pf")
    parser.add_argument("--budget", type=float, default=1.5e6, help="a76 instructions")
    parser.add_argument("--goal", type=float, default=0.95, help="int8 test recall")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
