"""Pareto plot: int8 test recall (mean, min-max over seeds) against a76 instructions per invoke.

Reads a real-data benchmark JSON (benchmarks.training.bench_real_data) and an
architecture-cost JSON (benchmarks.device.arch_cost), old ones included. Trained variants are
points with seed spread; untrained-only variants of the cost sweep are marked on the cost
axis so the budget's room is visible. Writes
benchmarks/results/training/pareto-<YYYYMMDD>-<dataset>[-TAG].png (or --out).

With `--robustness STUDY.json` (benchmarks.robustness.robustness_tables study over the same
runs) the PNG gains a panel of recall under shift against instructions, and a table of every
trained variant (cost, MAC per instruction, quality and robustness over seeds, which goals it
meets) is written beside the PNG as .json and .md.

Usage:
  python -m benchmarks.training.plot_pareto \
      benchmarks/results/training/real-data-20261202-pfd-front.json \
      benchmarks/results/device/arch-cost-20261201.json [more arch-cost JSONs] \
      --dataset pfd --tag front
  python -m benchmarks.training.plot_pareto \
      benchmarks/results/training/real-data-20261207-pfd-vgg-sweep.json \
      benchmarks/results/device/arch-cost-20261207-vgg-sweep.json \
      --robustness benchmarks/results/robustness/study-20261207-pfd-vgg-sweep.json \
      --dataset pfd --tag vgg-sweep --goal 0.92
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import harness

# The goals a shipped student is held to (docs/optimization.md, docs/robustness.md).
MAC_PER_INSTRUCTION_GOAL = 8.0
RECALL_GOAL = 0.92  # at FPR <= 1%
ROBUSTNESS_GOAL = 0.90  # mean corrupted recall / clean recall


def _runs(paths) -> frozenset[str]:
    return frozenset(str(Path(p).resolve()) for p in paths)


def trained_rows(real: dict, cost_rows: list[dict], study: dict, dataset: str, budget: float):
    """One row per trained variant of `dataset` with an instruction count: its cost (MACs from
    the arch-cost rows of the same architecture, width and depth), quality over seeds, and the
    robustness study's figures of the same runs (matched by run folder).

    Raises:
        SystemExit: a variant's runs are not in the study, or its MACs not in the cost rows.
    """
    by_runs = {
        _runs(r["run"] for r in v["runs"]): (label, v["summary"])
        for label, v in study["variants"].items()
    }
    rows = []
    for row in real["rows"]:
        insn = row.get("a76_instructions_per_invoke")
        if row["dataset"] != dataset or not insn:
            continue
        st = row["student"]
        arch = (st["architecture"], float(st["width"]), int(st.get("depth", 1)))
        macs = next(
            (
                c["macs"]
                for c in cost_rows
                if (c["architecture"], float(c["width"]), int(c["depth"])) == arch
            ),
            None,
        )
        if macs is None:
            raise SystemExit(f"{row['variant']}: no arch-cost row for {arch}; run arch_cost on it")
        runs = _runs(r["run"] for r in row["runs"])
        if runs not in by_runs:
            raise SystemExit(
                f"{row['variant']}: its runs are not a variant of the robustness study; "
                "run robustness_tables study on the same runs"
            )
        label, rob = by_runs[runs]
        s = row["summary"]
        at_fpr = s["diagnostic_recall_at_test_fpr_threshold"]
        out = {
            "variant": row["variant"],
            "study_label": label,
            "seeds": s["int8_recall"]["n"],
            "architecture": st["architecture"],
            "width": st["width"],
            "a76_instructions_per_invoke": insn,
            "macs": macs,
            "mac_per_instruction": macs / insn,
            "parameters": row["parameters"],
            "int8_size_bytes": row["size_bytes"],
            "int8_recall": s["int8_recall"],
            "int8_fpr": s["int8_fpr"],
            "int8_auc_pr": s["int8_auc_pr"],
            "recall_at_test_fpr_1pct": at_fpr,
            "robustness": {
                k: rob[k]
                for k in (
                    "recall_ratio",
                    "held_out_ratio",
                    "worst_mild_ratio",
                    "mean_corrupted_fpr",
                )
            },
        }
        out["meets"] = {
            "cost": insn <= budget and out["mac_per_instruction"] >= MAC_PER_INSTRUCTION_GOAL,
            "quality": at_fpr["mean"] >= RECALL_GOAL,
            "robustness": rob["recall_ratio"]["mean"] >= ROBUSTNESS_GOAL,
        }
        rows.append(out)
    return sorted(rows, key=lambda r: r["a76_instructions_per_invoke"])


def trained_markdown(rows: list[dict], record: dict) -> str:
    def spread(sp, pct=False):
        f = (lambda v: f"{100 * v:.2f}%") if pct else (lambda v: f"{v:.3f}")
        return f"{f(sp['mean'])} ({f(sp['min'])}-{f(sp['max'])})"

    md = [
        "# Trained Pareto table: cost against quality and robustness",
        "",
        f"Command: `{record['command']}` ({record['date_utc']}). Per variant, the shipped int8 "
        "model of each seed; mean (min-max) over seeds. Instructions: exact emulated "
        "cortex-a76 count of one int8 invoke. Recall and FPR on test at the clean-val "
        "threshold; recall at test FPR 1% is the ranking figure; robustness over the full "
        "suite (every family, severities 1-5). Goals: <= "
        f"{record['budget'] / 1e6:g} M instructions at >= {MAC_PER_INSTRUCTION_GOAL:g} MAC "
        f"per instruction; recall >= {RECALL_GOAL} at FPR <= 1%; mean corrupted recall >= "
        f"{ROBUSTNESS_GOAL} x clean.",
        "",
        "| variant | seeds | a76 instr | MMAC | MAC/instr | params | recall (val thr) | FPR "
        "| recall at FPR 1% | AUC-PR | corrupted / clean | held-out / clean "
        "| worst sev<=3 / clean | corrupted FPR | meets |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        rob = r["robustness"]
        met = [k for k, v in r["meets"].items() if v]
        md.append(
            f"| {r['variant']} | {r['seeds']} | {r['a76_instructions_per_invoke']:,} | "
            f"{r['macs'] / 1e6:.2f} | {r['mac_per_instruction']:.2f} | {r['parameters']:,} | "
            f"{spread(r['int8_recall'])} | {spread(r['int8_fpr'], pct=True)} | "
            f"{spread(r['recall_at_test_fpr_1pct'])} | {spread(r['int8_auc_pr'])} | "
            f"{spread(rob['recall_ratio'])} | {spread(rob['held_out_ratio'])} | "
            f"{spread(rob['worst_mild_ratio'])} | {spread(rob['mean_corrupted_fpr'], pct=True)} | "
            f"{', '.join(met) or 'none'} |"
        )
    return "\n".join(md) + "\n"


def _point(axis, instructions: int, spread: dict, label: str, colour: str, marker: str) -> None:
    """One variant: its mean over seeds with the min-max bar, labelled, at its cost."""
    x, mean = instructions / 1e6, spread["mean"]
    axis.errorbar(
        [x],
        [mean],
        yerr=[[mean - spread["min"]], [spread["max"] - mean]],
        fmt=marker,
        capsize=3,
        color=colour,
    )
    axis.annotate(label, (x, mean), textcoords="offset points", xytext=(5, 3), fontsize=7)


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
        "--robustness",
        type=Path,
        help="robustness_tables study JSON over the same runs: adds the recall-under-shift "
        "panel and writes the trained table (.json, .md) beside the PNG",
    )
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
    # One colour per trained variant, the same in every panel.
    colour = {row["variant"]: f"C{i % 10}" for i, row in enumerate(real["rows"])}
    rows = None
    if args.robustness:
        record = harness.provenance("pareto", argv)
        record["budget"] = args.budget
        study = json.loads(args.robustness.read_text())
        rows = trained_rows(real, cost["rows"], study, args.dataset, args.budget)
        if not rows:
            raise SystemExit(f"no trained variant of {args.dataset} with an instruction count")
        record["rows"] = rows
    if rows:
        fig, (ax, rx, bx) = plt.subplots(
            3, 1, figsize=(7, 8.5), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]}
        )
        for r in rows:
            _point(
                rx,
                r["a76_instructions_per_invoke"],
                r["robustness"]["recall_ratio"],
                f"{r['variant']} ({r['mac_per_instruction']:.1f} MAC/instr)",
                colour[r["variant"]],
                "s",
            )
        rx.axhline(ROBUSTNESS_GOAL, color="grey", ls="--", lw=1)
        rx.axvline(args.budget / 1e6, color="red", ls=":", lw=1)
        rx.set(ylabel="mean corrupted recall\n/ clean (full suite)")
    else:
        fig, (ax, bx) = plt.subplots(
            2, 1, figsize=(7, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
    for row in real["rows"]:
        insn = row.get("a76_instructions_per_invoke")
        if row["dataset"] != args.dataset or not insn:
            continue
        s = row["summary"]["int8_recall"]
        _point(ax, insn, s, f"{row['variant']} (n={s['n']})", colour[row["variant"]], "o")
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
    if rows:
        harness.finish(record)
        md = trained_markdown(rows, record)
        harness.write_result(out.with_suffix(".json"), record, md)
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
