"""Which int8 model should ship? Shipping rules replayed over finished benchmark runs.

`edgeped eval` ships the int8 model with the highest val recall at its own val threshold
(`edgeped.evaluate.report.shipping_choice`). Between PTQ and QAT that is a contest of
two noisy val recalls, so this script asks what other rules would have shipped, on
test, over every run a real-data benchmark left behind
(`python -m benchmarks.training.bench_real_data --work`): mean test recall and FPR of the
shipped model, and how many runs land over the FPR limit. It reads metrics.json files only;
nothing is trained or run. It prints the table; `--out` also writes it (JSON with the
provenance keys of `benchmarks.harness`, and Markdown), a bare `--out` to
benchmarks/results/training/shipping-rules-<YYYYMMDD>-<the --work folder's name, its dataset>.

    python -m benchmarks.training.shipping_rules --work runs/bench-real/pfd --out
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks import harness
from edgeped.evaluate.report import shipping_choice

QAT, PTQ = "student_qat_int8", "student_ptq_int8"
MARGINS = (2, 4, 6)  # val true positives PTQ must lead QAT by


def load_runs(work: Path) -> list[tuple[str, dict]]:
    """Every distinct run below `work` with a PTQ and a QAT int8 model (symlinks once)."""
    seen, runs = set(), []
    for path in sorted(work.glob("*/s*/metrics.json")):
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        report = json.loads(path.read_text())
        if {QAT, PTQ} <= set(report.get("models", {})):
            runs.append((str(path.parent.relative_to(work)), report))
    return runs


def rules() -> dict[str, Callable[[dict], str]]:
    out: dict[str, Callable[[dict], str]] = {
        "edgeped today (highest val recall)": lambda r: shipping_choice(r)["model"],
        "always QAT": lambda r: QAT,
        "always PTQ": lambda r: PTQ,
    }
    for m in MARGINS:

        def lead(r: dict, m: int = m) -> str:
            tp = {n: r["models"][n]["threshold"]["tp"] for n in (QAT, PTQ)}
            return PTQ if tp[PTQ] - tp[QAT] >= m else QAT

        out[f"QAT unless PTQ leads by >= {m} val positives"] = lead
    return out


def replay(runs: list[tuple[str, dict]], max_fpr: float = 0.01) -> list[dict]:
    rows = []
    for name, rule in rules().items():
        picks = [(rule(report), report) for _, report in runs]
        tests = [report["models"][pick]["test"] for pick, report in picks]
        rows.append(
            {
                "rule": name,
                "runs": len(picks),
                "ptq_shipped": sum(pick == PTQ for pick, _ in picks),
                "test_recall_mean": statistics.mean(t["recall"] for t in tests),
                "test_fpr_mean": statistics.mean(t["fpr"] for t in tests),
                "runs_over_fpr_limit": sum(t["fpr"] > max_fpr for t in tests),
            }
        )
    return rows


def result_record(work: str, runs: list[tuple[str, dict]], rows: list[dict], record: dict) -> dict:
    """The replay as a result: the provenance record (`harness.provenance`) plus the rows."""
    return {**record, "work": work, "runs": [r for r, _ in runs], "rules": rows}


def out_path(out: str, work: Path) -> Path:
    """--out STEM as STEM.json, or (a bare --out) the default name for `work`'s dataset."""
    if out:
        return Path(f"{out}.json")
    return harness.result_path("training", "shipping-rules", work.resolve().name)


def markdown(rows: list[dict], work: str) -> str:
    lines = [
        f"# Shipping rules replayed over {rows[0]['runs']} runs in `{work}`",
        "",
        "| rule | PTQ shipped | test recall mean | test FPR mean | runs over 1% FPR |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['rule']} | {r['ptq_shipped']} | {r['test_recall_mean']:.3f} | "
        f"{100 * r['test_fpr_mean']:.2f}% | {r['runs_over_fpr_limit']} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a bench --work DATASET folder")
    parser.add_argument(
        "--out",
        nargs="?",
        const="",
        metavar="STEM",
        help="write STEM.json and STEM.md as well (a bare --out: "
        "benchmarks/results/training/shipping-rules-<YYYYMMDD>-<--work folder name>)",
    )
    args = parser.parse_args(argv)
    provenance = harness.provenance("shipping_rules", argv)
    runs = load_runs(args.work)
    if not runs:
        print(
            f"error: no run with {QAT} and {PTQ} under {args.work}/VARIANT/sN/metrics.json; "
            "point --work at a dataset folder of bench_real_data's --work",
            file=sys.stderr,
        )
        return 2
    rows = replay(runs)
    text = markdown(rows, str(args.work))
    print(text, end="")
    if args.out is not None:
        record = result_record(str(args.work), runs, rows, harness.finish(provenance))
        harness.write_result(out_path(args.out, args.work), record, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
