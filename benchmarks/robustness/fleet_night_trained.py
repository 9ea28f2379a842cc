"""Night vs day recall of trained models on fleet test splits: the renderer before/after.

For each LABEL=RUN_DIR=DATA_DIR (a run trained, converted and evaluated on that fleet
dataset), reads the run's test scores and val-chosen thresholds and reports, per lighting
slice of the test split: recall at the val threshold and ROC-AUC within the slice, each
with a 95% bootstrap interval over drives (crops of one drive are not independent).

Usage (the same recipe on a fleet set from each renderer version):
  edgeped data synth fleet-after --generator fleet --drives 200 --crops-per-drive 40 \
      --positive-rate 0.3 --night-rate 0.5 --rain-rate 0.1 --fog-rate 0.05 --seed 11
  PYTHONPATH=OLD_CHECKOUT python -m edgeped data synth fleet-before ...   (same options)
  edgeped train run-after --data fleet-after --config configs/demo.toml --seed 0  (+ convert, eval)
  python -m benchmarks.robustness.fleet_night_trained before=run-before=fleet-before \
      after=run-after=fleet-after

Writes benchmarks/results/robustness/fleet-night-trained-<YYYYMMDD>.{json,md} (or --out),
the JSON with the provenance keys of `benchmarks.harness`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks import harness

MODELS = ("student_float32", "student_qat_int8")


def lighting_table(run: Path, data: Path, resamples: int = 1000) -> dict:
    from sklearn.metrics import roc_auc_score

    from edgeped.data.shards import Dataset

    metrics = json.loads((run / "metrics.json").read_text())
    batch = Dataset.open(data).read("test")
    scores = np.load(run / "test_scores.npz", allow_pickle=False)
    if list(scores["crop_id"]) != list(batch.crop_id):
        raise SystemExit(f"{run} was not evaluated on the test split of {data}")
    light, drives, y = np.asarray(batch.lighting), np.asarray(batch.drive_id), scores["label"]
    out = {}
    for name in MODELS:
        p, thr = scores[f"score/{name}"], metrics["models"][name]["threshold"]["threshold"]
        rows = {}
        for value in sorted(set(light)):
            sel = light == value
            rng = np.random.default_rng(0)
            units = np.unique(drives[sel])
            by_drive = {u: np.flatnonzero(sel & (drives == u)) for u in units}
            recalls, aucs = [], []
            for _ in range(resamples):
                idx = np.concatenate([by_drive[u] for u in rng.choice(units, units.size)])
                yy, pp = y[idx], p[idx]
                if yy.sum() and (yy == 0).sum():
                    recalls.append((pp[yy == 1] >= thr).mean())
                    aucs.append(roc_auc_score(yy, pp))
            rows[str(value)] = {
                "pedestrians": int((sel & (y == 1)).sum()),
                "negatives": int((sel & (y == 0)).sum()),
                "drives": int(units.size),
                "recall": float((p[sel & (y == 1)] >= thr).mean()),
                "recall_ci95": [float(np.quantile(recalls, q)) for q in (0.025, 0.975)],
                "roc_auc": float(roc_auc_score(y[sel], p[sel])),
                "roc_auc_ci95": [float(np.quantile(aucs, q)) for q in (0.025, 0.975)],
            }
        test = metrics["models"][name]["test"]
        out[name] = {"threshold": thr, "test_recall": test["recall"], "test_fpr": test["fpr"]}
        out[name]["lighting"] = rows
    return out


def trained_result(tables: dict[str, tuple[str, str, dict]], record: dict) -> tuple[dict, str]:
    """Per renderer label, the lighting table of its run, as a record and Markdown.

    Args:
        tables: label -> (run dir, data dir, `lighting_table` of the run).
        record: the provenance record (`harness.provenance`) the result extends.
    """
    record = {**record, "runs": {}}
    lines = [
        "| renderer | model | lighting | pedestrians / negatives "
        "| recall at val threshold [95% CI] | ROC-AUC in slice [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for label, (run, data, table) in tables.items():
        record["runs"][label] = {"run": run, "data": data, "models": table}
        for name, r in table.items():
            for value, v in r["lighting"].items():
                lo, hi = v["recall_ci95"]
                alo, ahi = v["roc_auc_ci95"]
                lines.append(
                    f"| {label} | {name} | {value} | {v['pedestrians']} / {v['negatives']} "
                    f"({v['drives']} drives) | {v['recall']:.3f} [{lo:.3f}, {hi:.3f}] | "
                    f"{v['roc_auc']:.3f} [{alo:.3f}, {ahi:.3f}] |"
                )
    return record, "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR=DATA_DIR")
    parser.add_argument(
        "--out",
        type=Path,
        help="the JSON, Markdown beside it "
        "(default: benchmarks/results/robustness/fleet-night-trained-<YYYYMMDD>.json)",
    )
    args = parser.parse_args(argv)
    provenance = harness.provenance("fleet_night_trained", argv)
    tables = {}
    for spec in args.runs:
        label, run, data = spec.split("=")
        tables[label] = (run, data, lighting_table(Path(run), Path(data)))
    record, md = trained_result(tables, harness.finish(provenance))
    harness.write_result(
        args.out or harness.result_path("robustness", "fleet-night-trained"), record, md
    )
    print(md, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
