"""Drift: frozen reference bins, PSI/KS/missing-rate checks, shifted fleet windows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import device_module

from edgeped.data.schema import METADATA_FIELDS, CropBatch
from edgeped.rollout.drift import (
    FEATURES,
    DriftConfig,
    WindowData,
    check_drift,
    image_stats,
    psi,
    reference_profile,
)

pytestmark = pytest.mark.slow


def _fleet(drives, seed, **rates):
    from edgeped.data.fleet import FleetConfig, generate_drive

    config = FleetConfig(drives=drives, crops_per_drive=10, seed=seed, workers=1, **rates)
    return CropBatch.concat([generate_drive(config, i) for i in range(config.drives)])


@pytest.fixture(scope="module")
def fleet_reference():
    from edgeped.rollout.replay import batch_window

    w = batch_window(_fleet(160, 1000))
    return reference_profile(w.features, w.tags, {}, {})


def _check(reference, batch, **config):
    from edgeped.rollout.replay import batch_window

    return check_drift(reference, batch_window(batch), DriftConfig(min_window=400, **config))


def test_psi_by_hand_and_frozen_edges():
    assert psi(np.array([0.5, 0.5]), np.array([50, 50])) == pytest.approx(0.0)
    want = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert psi(np.array([0.5, 0.5]), np.array([80, 20])) == pytest.approx(want)
    rng = np.random.default_rng(0)
    feats = np.column_stack([rng.normal(size=(4000, 6)), rng.random((4000, 2))])
    ref = reference_profile(feats, {}, {}, {})
    edges = ref["features"]["speed_mps"]["edges"]
    assert len(edges) == 9 and np.allclose(ref["features"]["speed_mps"]["shares"], 0.1, atol=0.01)
    # A shifted window is binned with the reference's edges, not its own quantiles.
    shifted = feats.copy()
    shifted[:, 0] += 1.0
    report = check_drift(ref, WindowData(shifted), DriftConfig())
    row = report["features"]["speed_mps"]
    assert row["status"] == "alert" and row["psi"] > 0.25 and row["ks_significant"]
    assert report["status"] == "alert" and report["flagged"]["alert"] == ["speed_mps"]
    assert report["features"]["yaw_rate_rps"]["status"] == "ok"


def test_small_windows_are_marked_never_passed():
    rng = np.random.default_rng(1)
    ref = reference_profile(rng.random((3000, 8)), {}, {}, {})
    report = check_drift(ref, WindowData(rng.random((50, 8))), DriftConfig(min_window=500))
    assert report["status"] == "too_small"
    assert all(r["status"] == "too_small" for r in report["features"].values())


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="psi_alert"):
        DriftConfig(psi_warn=0.3, psi_alert=0.2)
    with pytest.raises(ValueError, match="min_window"):
        DriftConfig(min_window=0)


def test_host_image_stats_match_the_device_runner():
    runner = device_module("shadow")
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, (5, 128, 64, 3), dtype=np.uint8)
    host = image_stats(crops)
    device = np.array([runner.image_stats(c, np) for c in crops])
    assert np.allclose(host, device, atol=1e-6)
    assert runner.LUMA == (0.299, 0.587, 0.114)


def test_unshifted_fleet_window_from_another_seed_stays_quiet(fleet_reference):
    report = _check(fleet_reference, _fleet(60, 7))
    assert report["status"] != "alert", report["flagged"]


def test_night_heavy_window_is_flagged_by_light_fields(fleet_reference):
    report = _check(fleet_reference, _fleet(60, 8, night_rate=0.8))
    alerted = set(report["flagged"]["alert"])
    assert report["status"] == "alert"
    assert alerted & {"brightness", "exposure_ms", "analog_gain_db"}
    assert alerted <= {"brightness", "contrast", "exposure_ms", "analog_gain_db", "tod_sin",
                       "tod_cos"}  # fmt: skip
    assert report["features"]["speed_mps"]["status"] != "alert"
    assert "night" in report["slices"]["lighting"]


def test_rain_heavy_window_is_flagged_by_image_and_gain_fields(fleet_reference):
    report = _check(fleet_reference, _fleet(60, 9, rain_rate=0.8))
    # Rain dims the scene (gain up) and veils the crop (contrast down). Time of day is one
    # value per drive, so on 60 drives it can move by chance: it is not asserted either way.
    assert report["status"] == "alert"
    assert set(report["flagged"]["alert"]) & {"contrast", "analog_gain_db", "brightness"}
    assert not set(report["flagged"]["alert"]) & {"speed_mps", "yaw_rate_rps"}


def test_metadata_dropout_raises_every_fields_missing_rate(fleet_reference):
    report = _check(fleet_reference, _fleet(60, 10, metadata_missing_rate=0.3))
    assert set(report["flagged"]["alert"]) == set(METADATA_FIELDS)
    for name in METADATA_FIELDS:
        assert report["features"][name]["missing_change"] > 0.1
    for name in ("brightness", "contrast"):
        assert report["features"][name]["status"] != "alert"


def test_exposure_drift_is_flagged_by_exposure_and_brightness(fleet_reference):
    from edgeped.rollout.replay import shift_exposure

    report = _check(fleet_reference, shift_exposure(_fleet(60, 11), 1.6))
    alerted = set(report["flagged"]["alert"])
    # Time of day is one value per drive: on 60 drives it moves by chance (measured over
    # seeds in benchmarks/rollout/drift_detection.py), so it is left out of the claim here.
    assert {"exposure_ms", "brightness"} <= alerted
    assert alerted - {"tod_sin", "tod_cos"} <= {"exposure_ms", "brightness", "contrast"}


def test_eval_records_a_reference_and_drift_runs_on_a_dataset_and_a_log(
    tiny_run, tiny_dataset, tmp_path
):
    from click.testing import CliRunner

    from edgeped.cli import main

    ref = json.loads((tiny_run / "drift_reference.json").read_text())
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["drift_reference"]["file"] == "drift_reference.json"
    assert set(ref["features"]) == set(FEATURES) and set(ref["scores"]) == set(metrics["models"])
    assert ref["source"]["splits"] == ["train", "val"]
    # Its own data against itself: judged and quiet, exit 0.
    result = CliRunner().invoke(
        main, ["drift", str(tiny_run), str(tiny_dataset), "--out", str(tmp_path / "d"),
               "--min-window", "100"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "d" / "drift.json").read_text())
    assert report["status"] in ("ok", "warn") and (tmp_path / "d" / "drift.png").is_file()
    # A shadow log is a window too, with both models' scores.
    comp = metrics["comparisons"][0]
    out = tmp_path / "shadow"
    result = CliRunner().invoke(
        main, ["shadow", "run", str(tiny_run / f"{comp['float']}.tflite"),
               str(tiny_run / f"{comp['quantized']}.tflite"), "--data", str(tiny_dataset),
               "--limit", "120", "--out", str(out), "--cost-runs", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "flip rate" in result.output and "shadow cost" in result.output
    result = CliRunner().invoke(main, ["drift", str(tiny_run), str(out), "--min-window", "500"])
    assert result.exit_code == 2 and "too small" in result.output
    result = CliRunner().invoke(main, ["drift", str(tiny_run), str(out), "--min-window", "100",
                                       "--json-free"])  # fmt: skip
    assert result.exit_code == 64  # a bad option is a usage error, never a traceback
    report_result = CliRunner().invoke(
        main,
        ["drift", str(tiny_run), str(out), "--min-window", "100", "--out", str(tmp_path / "l")],
    )
    assert report_result.exit_code in (0, 1), report_result.output
    log_report = json.loads((tmp_path / "l" / "drift.json").read_text())
    assert set(log_report["scores"]) == {comp["float"], comp["quantized"]}
    assert log_report["window"]["kind"] == "shadow_log"
