"""Record one evaluated run directory as a benchmark result: metrics per model, slices,
float-vs-int8 comparisons, training stages, versions, and the commands that made it.

    python -m benchmarks.training.record_run RUN_DIR \
        benchmarks/results/training/<subject>-<YYYYMMDD>[-<qualifier>...].json \
        --description "what the run is" --command "edgeped train ..." --command "edgeped eval ..."

Reads RUN_DIR/metrics.json and RUN_DIR/train_log.json (both written by edgeped). The record
carries the provenance keys of `benchmarks.harness` (the `command` is this recording's; the
commands that made the run are `commands`, the versions that trained it `run_tool_versions`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import harness


def summarise(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    log = json.loads((run / "train_log.json").read_text())
    models = {}
    for name, entry in metrics["models"].items():
        slices = entry["test_slices"]
        models[name] = {
            "size_kib": round(entry["model"]["size_bytes"] / 1024, 1),
            "test_recall": entry["test"]["recall"],
            "test_fpr": entry["test"]["fpr"],
            "auc_pr": entry["test"]["auc_pr"],
            "roc_auc": entry["test"]["roc_auc"],
            "recall_ci95_by_drive": entry["test_ci95"]["by_drive_bootstrap"]["recall"],
            "slices": {
                f"{dim}={value}": {
                    k: s.get(k) for k in ("positives", "negatives", "recall", "fpr", "judged")
                }
                for dim in slices
                for value, s in slices[dim].items()
            },
        }
    return {
        "dataset": metrics["dataset"],
        "train_stages": [
            {
                "name": s["name"],
                "epochs": s["epochs"],
                "seconds": round(s["seconds"], 1),
                "best_val_auc_pr": s["best_val_auc_pr"],
            }
            for s in log["stages"]
        ],
        "run_tool_versions": metrics["tool_versions"],
        "models": models,
        "comparisons": metrics["comparisons"],
    }


def result_record(description: str, commands: list[str], summary: dict, record: dict) -> dict:
    """The run's summary as a result, extending the provenance record `record`."""
    return {**record, "description": description, "commands": commands, **summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an evaluated run directory")
    parser.add_argument(
        "out",
        type=Path,
        help="the results JSON to write (benchmarks/results/<topic>/<subject>-<YYYYMMDD>...)",
    )
    parser.add_argument("--description", required=True)
    parser.add_argument(
        "--command", action="append", default=[], help="a command that made the run (repeatable)"
    )
    args = parser.parse_args(argv)
    provenance = harness.provenance("run", argv)
    summary = summarise(args.run)
    record = result_record(args.description, args.command, summary, harness.finish(provenance))
    harness.write_result(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
