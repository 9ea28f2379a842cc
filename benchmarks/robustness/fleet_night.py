"""How visible the fleet generator's night pedestrians are: a fixed linear probe, day vs night.

Renders fleet drives at night only and at day only (same seeds, difficulty, rates),
then trains the same small linear classifier (logistic regression on 32x16 grey
crops) on half the drives and scores the other half. Its held-out AUC-PR and recall
at FPR <= 5% say how much pedestrian signal the renderer leaves in the pixels; the
image statistics say where the light is. Run once per renderer version:

    python -m benchmarks.robustness.fleet_night --label after
    # the renderer before the change, from a checkout of that commit:
    PYTHONPATH=OLD_CHECKOUT python -m benchmarks.robustness.fleet_night --label before

Each run adds (or replaces) its label, with its command and edgeped version, in the output
JSON (default benchmarks/results/robustness/fleet-night-<YYYYMMDD>-probe.json), whose
provenance keys (`benchmarks.harness`) are the latest run's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import harness


def render(lighting: str, drives: int, seed: int):
    from edgeped.data.fleet import FleetConfig, generate_drive
    from edgeped.data.schema import CropBatch

    cfg = FleetConfig(
        drives=drives,
        crops_per_drive=40,
        positive_rate=0.3,
        night_rate=1.0 if lighting == "night" else 0.0,
        dusk_rate=0.0,
        seed=seed,
        workers=1,
    )
    return CropBatch.concat([generate_drive(cfg, d) for d in range(drives)])


def probe(batch, seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, roc_curve

    grey = batch.images.astype(np.float32).mean(-1)
    x = grey.reshape(len(grey), 32, 4, 16, 4).mean((2, 4)).reshape(len(grey), -1) / 255.0
    x = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-3)  # per-crop contrast
    drive_no = np.array([int(d.split("-d")[1]) for d in batch.drive_id])
    train, test = drive_no % 2 == 0, drive_no % 2 == 1
    y = batch.labels
    model = LogisticRegression(C=0.05, max_iter=2000).fit(x[train], y[train])
    s = model.decision_function(x[test])
    fpr, tpr, _ = roc_curve(y[test], s)
    rng = np.random.default_rng(seed)
    drives = np.unique(drive_no[test])
    aps = []
    for _ in range(200):
        pick = np.concatenate(
            [np.flatnonzero(drive_no[test] == d) for d in rng.choice(drives, len(drives))]
        )
        if 0 < y[test][pick].sum() < len(pick):
            aps.append(average_precision_score(y[test][pick], s[pick]))
    return {
        "test_crops": int(test.sum()),
        "test_pedestrians": int(y[test].sum()),
        "auc_pr": float(average_precision_score(y[test], s)),
        "auc_pr_ci95_by_drive": [float(np.percentile(aps, 2.5)), float(np.percentile(aps, 97.5))],
        "recall_at_fpr_5pct": float(tpr[fpr <= 0.05].max()),
    }


def stats(batch) -> dict:
    pos = batch.images[batch.labels == 1].astype(np.float32)
    neg = batch.images[batch.labels == 0].astype(np.float32)
    centre = pos[:, :, 22:42]
    return {
        "pedestrian_crop_mean_u8": float(pos.mean()),
        "background_crop_mean_u8": float(neg.mean()),
        "pedestrian_centre_lower_half_mean_u8": float(centre[:, 64:].mean()),
        "pedestrian_centre_upper_half_mean_u8": float(centre[:, :64].mean()),
        "pedestrian_crops_mostly_black_share": float((pos.mean((1, 2, 3)) < 20).mean()),
    }


def probe_record(previous: dict | None, label: str, entry: dict, record: dict) -> dict:
    """The result after one run: `previous` result's runs, `label` set to `entry`, and the
    provenance record `record` (the keys of `benchmarks.harness`) of this run on top."""
    runs = dict((previous or {}).get("runs", {}))
    runs[label] = entry
    return {**record, "description": __doc__.splitlines()[0], "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="which renderer this is, e.g. before/after")
    parser.add_argument(
        "--out",
        type=Path,
        help="the JSON (default: benchmarks/results/robustness/fleet-night-<YYYYMMDD>-probe.json)",
    )
    parser.add_argument("--drives", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    import edgeped

    out = args.out or harness.result_path("robustness", "fleet-night", "probe")
    provenance = harness.provenance("fleet_night", argv)
    entry = {"drives_per_lighting": args.drives, "crops_per_drive": 40, "seed": args.seed}
    start = time.time()
    for lighting in ("night", "day"):
        batch = render(lighting, args.drives, args.seed)
        entry[lighting] = {"crops": len(batch), **stats(batch), "probe": probe(batch, args.seed)}
    entry["seconds"] = round(time.time() - start, 1)
    # The labels come from different checkouts: each keeps the command and version it ran.
    entry["command"] = provenance["command"]
    entry["edgeped_version"] = getattr(edgeped, "__version__", "unknown")
    previous = json.loads(out.read_text()) if out.exists() else None
    harness.write_result(out, probe_record(previous, args.label, entry, harness.finish(provenance)))
    print(json.dumps(entry, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
