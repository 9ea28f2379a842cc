"""How far the label-free (CBPE) recall and FPR estimate is from the truth, window by window.

    python -m benchmarks.rollout.shadow_estimate RUN_DIR [RUN_DIR ...] [--window 500] [--name NAME]

For every model of each evaluated run, the per-crop test scores (test_scores.npz) go
through the calibrator eval fitted on val (metrics.json), the decisions are score >=
the threshold eval chose on val, and the test split is cut into consecutive windows
of --window crops (the split is stored drive by drive, so a window is a few drives, as
a shadow window on the vehicle is). Per window, the estimate (edgeped.rollout.estimate)
is compared with the recall and FPR the labels give. Also run with raw (uncalibrated)
scores, to show what the calibration buys. Writes results/shadow-estimate-<name>.json
and prints a Markdown table for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edgeped.evaluate.scores import read_test_scores
from edgeped.provenance import tool_versions
from edgeped.rollout.estimate import calibrated, validate_windows

HERE = Path(__file__).resolve().parent


def measure_run(run: Path, window: int) -> list[dict]:
    metrics = json.loads((run / "metrics.json").read_text())
    scores = read_test_scores(run / metrics.get("test_scores", {}).get("file", "test_scores.npz"))
    labels = np.asarray(scores["label"]).astype(np.int64)
    rows = []
    for name, entry in sorted(metrics["models"].items()):
        key = f"score/{name}"
        if key not in scores:
            continue
        raw = np.asarray(scores[key], np.float64)
        y = (raw >= float(entry["threshold"]["threshold"])).astype(np.int8)
        cal_info = entry.get("calibration") or {}
        cal = cal_info.get("calibrator") if cal_info.get("fitted") else None
        for variant, p in (("calibrated", calibrated(raw, cal)), ("raw", raw)):
            if variant == "calibrated" and cal is None:
                continue
            started = time.perf_counter()
            v = validate_windows(labels, p, y, window=window)
            rows.append(
                {
                    "run": str(run),
                    "model": name,
                    "scores": variant,
                    "test_crops": int(labels.size),
                    "test_pedestrians": int((labels == 1).sum()),
                    "windows": v["recall"]["windows"],
                    "mae_recall": v["recall"]["mae"],
                    "bias_recall": v["recall"]["bias"],
                    "coverage_recall": v["recall"]["interval_coverage"],
                    "windows_fpr": v["fpr"]["windows"],
                    "mae_fpr": v["fpr"]["mae"],
                    "bias_fpr": v["fpr"]["bias"],
                    "coverage_fpr": v["fpr"]["interval_coverage"],
                    "seconds": time.perf_counter() - started,
                    "per_window": v["windows"],
                }
            )
    return rows


def table(rows: list[dict]) -> str:
    out = [
        "| run | model | scores | windows | MAE recall | MAE FPR | bias recall | bias FPR "
        "| 95% interval held (recall / FPR) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {Path(r['run']).name} | {r['model']} | {r['scores']} | {r['windows']} | "
            f"{r['mae_recall']:.3f} | {r['mae_fpr']:.4f} | {r['bias_recall']:+.3f} | "
            f"{r['bias_fpr']:+.4f} | {r['coverage_recall']:.0%} / {r['coverage_fpr']:.0%} |"
        )
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--window", type=int, default=500)
    p.add_argument("--name", default="demo")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args()
    rows = [row for run in args.runs for row in measure_run(run, args.window)]
    result = {
        "kind": "edgeped.bench.shadow_estimate",
        "command": " ".join(["python", "benchmarks/rollout/shadow_estimate.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "host": platform.node(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "loadavg": list(os.getloadavg()),
        },
        "tool_versions": tool_versions(),
        "window": args.window,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"shadow-estimate-{args.name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(table(rows))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
