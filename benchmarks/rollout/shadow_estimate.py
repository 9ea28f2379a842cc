"""How far the label-free (CBPE) recall and FPR estimate is from the truth, window by window.

    python -m benchmarks.rollout.shadow_estimate RUN_DIR [RUN_DIR ...] [--window 500] [--name NAME]

For every model of each evaluated run, the per-crop test scores (test_scores.npz) go
through the calibrator eval fitted on val (metrics.json), the decisions are score >=
the threshold eval chose on val, and the test split is cut into consecutive windows
of --window crops (the split is stored drive by drive, so a window is a few drives, as
a shadow window on the vehicle is). Per window, the estimate (edgeped.rollout.estimate)
is compared with the recall and FPR the labels give. Also run with raw (uncalibrated)
scores, to show what the calibration buys. Writes
benchmarks/results/rollout/shadow-estimate-<YYYYMMDD>-<name>.json (--out: another folder)
and the Markdown table for benchmarks/README.md beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks import harness
from edgeped.evaluate.scores import read_test_scores
from edgeped.rollout.estimate import calibrated, validate_windows

TOPIC, SUBJECT = "rollout", "shadow-estimate"


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


def out_path(name: str, folder: Path | None = None) -> Path:
    """Today's result file for `name`: in benchmarks/results/rollout/, or in `folder`."""
    path = harness.result_path(TOPIC, SUBJECT, name)
    return path if folder is None else Path(folder) / path.name


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--window", type=int, default=500)
    p.add_argument("--name", default="demo", help="what the runs are (the file's qualifier)")
    p.add_argument("--out", type=Path, help="folder [default: benchmarks/results/rollout]")
    args = p.parse_args(argv)
    path = out_path(args.name, args.out)  # a name the scheme cannot hold fails before measuring
    result = harness.provenance("shadow_estimate", argv)
    rows = [row for run in args.runs for row in measure_run(run, args.window)]
    result.update({"window": args.window, "rows": rows})
    harness.finish(result)
    harness.write_result(path, result, table(rows))
    print(table(rows))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
