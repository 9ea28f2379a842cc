"""Drift detection table: does `edgeped drift` flag each known shift by the intended
fields, and how often does it alarm on unshifted fleet windows from other seeds?

    python -m benchmarks.rollout.drift_detection [--seeds 20] [--drives 100] [--crops-per-drive 20]

The reference is fleet data at the default rates (seed 1000, 400 drives); each window is
a separate fleet draw. Shifts: night-heavy (night_rate 0.7), rain-heavy (rain_rate 0.7),
metadata dropout 30%, and exposure drift (x1.6 exposure: brighter crops, longer
exposure_ms). Writes benchmarks/results/rollout/drift-<YYYYMMDD>.json and .md beside
(--out: another folder).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks import harness
from edgeped.data.fleet import FleetConfig, render_shard
from edgeped.data.generators import iter_drives
from edgeped.data.schema import METADATA_FIELDS, CropBatch
from edgeped.rollout.drift import DriftConfig, check_drift, reference_profile
from edgeped.rollout.replay import batch_window, shift_exposure

TOPIC, SUBJECT = "rollout", "drift"
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


def _render_drives(config: dict, drives: list[int]) -> CropBatch:
    return render_shard((config, drives))


def fleet(drives: int, crops: int, seed: int, **rates) -> CropBatch:
    config = FleetConfig(drives=drives, crops_per_drive=crops, seed=seed, **rates)
    # Chunks of 8 drives over one worker per core, as the fleet's own iterator did.
    return CropBatch.concat(list(iter_drives(_render_drives, config, 8)))


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


def false_alarms(quiet: list[dict]) -> dict[str, Any]:
    """Alert and warn-or-alert rates over the unshifted windows, with 95% Wilson intervals."""
    from scipy.stats import binomtest

    alerts = sum(r["status"] == "alert" for r in quiet)
    warns = sum(r["status"] in ("alert", "warn") for r in quiet)

    def ci(k):
        c = binomtest(k, len(quiet)).proportion_ci(0.95, method="wilson")
        return [float(c.low), float(c.high)]

    return {"alert": alerts / len(quiet), "alert_ci95": ci(alerts),
            "warn_or_alert": warns / len(quiet), "warn_or_alert_ci95": ci(warns),
            "windows": len(quiet)}  # fmt: skip


def render(result: dict[str, Any]) -> str:
    """The Markdown table of one result (written beside its JSON)."""
    lines = [
        f"Reference {result['reference_crops']} fleet crops (default rates, seed 1000); windows "
        f"of {result['window_crops']} crops from {result['window_drives']} drives.",
        "",
        "| window | status | alerted | warned | detected by intended fields |",
        "|---|---|---|---|---|",
    ]
    for r in result["shifts"]:
        lines.append(
            f"| {r['window']} | {r['status']} | {', '.join(r['alerted'])} | "
            f"{', '.join(r['warned'])} | {'yes' if r['detected_by_intended'] else 'NO'} |"
        )
    fa, n = result["false_alarm_rate"], result["false_alarm_rate"]["windows"]
    alerts, warns = round(fa["alert"] * n), round(fa["warn_or_alert"] * n)
    lines += ["", f"Unshifted windows (seeds 1-{n}): alert on {alerts}/{n} "
              f"= {fa['alert']:.0%} [95% Wilson {fa['alert_ci95'][0]:.0%}, "
              f"{fa['alert_ci95'][1]:.0%}]; warn or alert on {warns}/{n} "
              f"= {fa['warn_or_alert']:.0%} [{fa['warn_or_alert_ci95'][0]:.0%}, "
              f"{fa['warn_or_alert_ci95'][1]:.0%}]."]  # fmt: skip
    return "\n".join(lines) + "\n"


def out_path(folder: Path | None = None) -> Path:
    """Today's result file: in benchmarks/results/rollout/, or in `folder` under the same name."""
    path = harness.result_path(TOPIC, SUBJECT)
    return path if folder is None else Path(folder) / path.name


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--drives", type=int, default=100)
    p.add_argument("--crops-per-drive", type=int, default=20)
    p.add_argument("--reference-drives", type=int, default=400)
    p.add_argument("--out", type=Path, help="folder [default: benchmarks/results/rollout]")
    args = p.parse_args(argv)
    record = harness.provenance("drift_detection", argv, packages=("scipy",))
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
    record.update(
        {
            "config": config.to_dict(),
            "window_crops": args.drives * args.crops_per_drive,
            "window_drives": args.drives,
            "reference_crops": len(ref_batch),
            "shifts": rows,
            "unshifted": quiet,
            "false_alarm_rate": false_alarms(quiet),
            "seconds": time.time() - started,
        }
    )
    harness.finish(record)
    markdown = render(record)
    harness.write_result(out_path(args.out), record, markdown)
    print(markdown, end="")


if __name__ == "__main__":
    main()
