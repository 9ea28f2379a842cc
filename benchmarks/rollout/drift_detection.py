"""Drift detection table: does `edgeped drift` flag each known shift by the intended
fields, and how often does it alarm on unshifted fleet windows from other seeds?

    python -m benchmarks.rollout.drift_detection [--seeds 20] [--drives 100] [--crops-per-drive 20]

The reference is fleet data at the default rates (seed 1000, 400 drives); each window is
a separate fleet draw. Shifts: night-heavy (night_rate 0.7), rain-heavy (rain_rate 0.7),
metadata dropout 30%, and exposure drift (x1.6 exposure: brighter crops, longer
exposure_ms). Writes results/drift-<host>-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from edgeped.data.fleet import FleetConfig, iter_drives
from edgeped.data.schema import METADATA_FIELDS, CropBatch
from edgeped.provenance import tool_versions
from edgeped.rollout.drift import DriftConfig, check_drift, reference_profile
from edgeped.rollout.replay import batch_window, shift_exposure

HERE = Path(__file__).resolve().parent
# What each shift changes, by the physics of the generator (decided before measuring).
INTENDED = {
    "night_heavy": {
        "brightness",
        "contrast",
        "exposure_ms",
        "analog_gain_db",
        "tod_sin",
        "tod_cos",
    },
    "rain_heavy": {"brightness", "contrast", "analog_gain_db", "exposure_ms"},
    "metadata_dropout_30pct": set(METADATA_FIELDS),
    "exposure_drift_x1.6": {"exposure_ms", "brightness", "contrast"},
}


def fleet(drives: int, crops: int, seed: int, **rates) -> CropBatch:
    config = FleetConfig(drives=drives, crops_per_drive=crops, seed=seed, **rates)
    return CropBatch.concat(list(iter_drives(config)))


def judge(name: str, report: dict) -> dict:
    alerted, warned = set(report["flagged"]["alert"]), set(report["flagged"]["warn"])
    intended = INTENDED.get(name, set())
    return {
        "window": name,
        "status": report["status"],
        "alerted": sorted(alerted),
        "warned": sorted(warned),
        "detected_by_intended": bool(alerted & intended) and alerted <= intended,
        "intended": sorted(intended),
        "psi": {k: r["psi"] for k, r in report["features"].items()},
        "missing_change": {k: r["missing_change"] for k, r in report["features"].items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--drives", type=int, default=100)
    p.add_argument("--crops-per-drive", type=int, default=20)
    p.add_argument("--reference-drives", type=int, default=400)
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args()
    started = time.time()
    config = DriftConfig()
    ref_batch = fleet(args.reference_drives, args.crops_per_drive, 1000)
    ref_window = batch_window(ref_batch)
    reference = reference_profile(ref_window.features, ref_window.tags, {}, {})
    rows = []
    shifts = {
        "night_heavy": dict(night_rate=0.7),
        "rain_heavy": dict(rain_rate=0.7),
        "metadata_dropout_30pct": dict(metadata_missing_rate=0.3),
    }
    for i, (name, rates) in enumerate(shifts.items()):
        batch = fleet(args.drives, args.crops_per_drive, 2000 + i, **rates)
        rows.append(judge(name, check_drift(reference, batch_window(batch), config)))
    batch = shift_exposure(fleet(args.drives, args.crops_per_drive, 2100), 1.6)
    rows.append(judge("exposure_drift_x1.6", check_drift(reference, batch_window(batch), config)))
    quiet = []
    for seed in range(1, args.seeds + 1):
        batch = fleet(args.drives, args.crops_per_drive, seed)
        quiet.append(judge(f"unshifted_seed{seed}", check_drift(reference, batch_window(batch))))
    alerts = sum(r["status"] == "alert" for r in quiet)
    warns = sum(r["status"] in ("alert", "warn") for r in quiet)
    from scipy.stats import binomtest

    def ci(k):
        c = binomtest(k, len(quiet)).proportion_ci(0.95, method="wilson")
        return [float(c.low), float(c.high)]

    result = {
        "kind": "edgeped.bench.drift_detection",
        "machine": {"host": platform.node(), "machine": platform.machine(),
                    "python": platform.python_version()},
        "tool_versions": tool_versions(),
        "command": "python -m benchmarks.rollout.drift_detection " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "config": config.to_dict(),
        "window_crops": args.drives * args.crops_per_drive,
        "window_drives": args.drives,
        "reference_crops": len(ref_batch),
        "shifts": rows,
        "unshifted": quiet,
        "false_alarm_rate": {"alert": alerts / len(quiet), "alert_ci95": ci(alerts),
                             "warn_or_alert": warns / len(quiet), "warn_or_alert_ci95": ci(warns),
                             "windows": len(quiet)},
        "seconds": time.time() - started,
    }  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"drift-{platform.node() or 'host'}-{datetime.now(UTC):%Y%m%d}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"Reference {len(ref_batch)} fleet crops (default rates, seed 1000); windows of "
        f"{result['window_crops']} crops from {args.drives} drives.",
        "",
        "| window | status | alerted | warned | detected by intended fields |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['window']} | {r['status']} | {', '.join(r['alerted'])} | "
            f"{', '.join(r['warned'])} | {'yes' if r['detected_by_intended'] else 'NO'} |"
        )
    fa = result["false_alarm_rate"]
    lines += ["", f"Unshifted windows (seeds 1-{args.seeds}): alert on {alerts}/{len(quiet)} "
              f"= {fa['alert']:.0%} [95% Wilson {fa['alert_ci95'][0]:.0%}, "
              f"{fa['alert_ci95'][1]:.0%}]; warn or alert on {warns}/{len(quiet)} "
              f"= {fa['warn_or_alert']:.0%} [{fa['warn_or_alert_ci95'][0]:.0%}, "
              f"{fa['warn_or_alert_ci95'][1]:.0%}]."]  # fmt: skip
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
