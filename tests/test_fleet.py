import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeped.cli import main
from edgeped.data import fleet_render as fr
from edgeped.data import fleet_scene as fs
from edgeped.data.fleet import (
    HARD_KINDS,
    FleetConfig,
    _drop_metadata,
    drive_conditions,
    generate_drive,
    regenerate,
    write_fleet,
)
from edgeped.data.schema import CropBatch
from edgeped.data.shards import Dataset
from edgeped.errors import EdgepedError


def test_any_crop_regenerates_from_its_id_alone(tmp_path):
    cfg = FleetConfig(
        drives=6, crops_per_drive=8, positive_rate=0.3, rain_rate=0.5, seed=11, workers=1
    )
    write_fleet(str(tmp_path / "ds"), cfg, shard_records=16, split_fractions=(0.5, 0.25, 0.25))
    ds = Dataset.open(tmp_path / "ds")
    stored = FleetConfig.from_dict(ds.manifest["source"]["config"])
    for split in ("train", "val", "test"):
        if ds.count(split) == 0:
            continue
        batch = ds.read(split)
        for i in (0, len(batch) - 1):
            again = regenerate(batch.crop_id[i], stored)
            np.testing.assert_array_equal(again.images[0], batch.images[i])
            np.testing.assert_array_equal(again.metadata[0], batch.metadata[i])
            assert again.labels[0] == batch.labels[i]
            assert again.hard_negative[0] == batch.hard_negative[i]


def test_output_does_not_depend_on_worker_count(tmp_path):
    shas = []
    for workers in (1, 2):
        cfg = FleetConfig(drives=6, crops_per_drive=5, seed=2, workers=workers)
        m = write_fleet(str(tmp_path / f"w{workers}"), cfg, shard_records=10)
        shas.append([s["sha256"] for split in m["splits"].values() for s in split["shards"]])
    assert shas[0] == shas[1]


@pytest.mark.parametrize(
    "bad_id, match",
    [
        ("syn0-d000001-c0001", "not a fleet crop id"),
        ("fleet9-d000001-c0001", "seed 9"),
        ("fleet0-d000099-c0001", "outside this config"),
    ],
)
def test_regenerate_rejects_foreign_ids(bad_id, match):
    with pytest.raises(EdgepedError, match=match):
        regenerate(bad_id, FleetConfig(drives=10, crops_per_drive=5, seed=0))


def test_every_near_miss_kind_is_drawn():
    cfg = FleetConfig(
        drives=8,
        crops_per_drive=40,
        positive_rate=0.0,
        hard_negative_rate=1.0,
        construction_rate=0.3,
        seed=1,
    )
    kinds = set(np.concatenate([generate_drive(cfg, d).hard_negative for d in range(cfg.drives)]))
    assert kinds == set(HARD_KINDS)


def _canvas() -> fs.Canvas:
    cv = fs.Canvas.blank()
    fs.background(cv, np.random.default_rng(0), "urban", "day")
    return cv


def _shot(**kw) -> fs.Shot:
    base = dict(
        lighting="day",
        weather="clear",
        speed_mps=0.0,
        yaw_rate_rps=0.0,
        exposure_ms=4.0,
        gain_db=0.0,
        radiance=1.0,
    )
    return fs.Shot(**{**base, **kw})


def _grad_x(img: np.ndarray) -> float:
    return float(np.abs(np.diff(img.astype(np.float32), axis=1)).mean())


def test_speed_and_exposure_blur_the_image_as_the_metadata_says():
    rng = lambda: np.random.default_rng(5)  # noqa: E731
    sharp = fr.render(_canvas(), rng(), _shot(), None)
    fast = fr.render(
        _canvas(),
        rng(),
        _shot(speed_mps=20.0, exposure_ms=30.0, gain_db=0.0, radiance=4.0 / 30.0),
        None,
    )
    assert fr.blur_px(_shot(speed_mps=20.0, exposure_ms=30.0)) > 10
    assert _grad_x(fast) < 0.6 * _grad_x(sharp)


def test_gain_sets_noise_and_night_is_darker():
    cv = fs.Canvas.blank()
    cv.img[:] = 0.5
    low = fr.render(cv, np.random.default_rng(0), _shot(gain_db=0.0), None)
    high = fr.render(
        cv, np.random.default_rng(0), _shot(gain_db=24.0, exposure_ms=4.0 / 15.85), None
    )
    assert high.std() > 5 * low.std()
    cfg = FleetConfig(drives=60, crops_per_drive=6, night_rate=0.5, dusk_rate=0.0, seed=4)
    batch = CropBatch.concat([generate_drive(cfg, d) for d in range(cfg.drives)])
    night, day = batch.lighting == "night", batch.lighting == "day"
    assert batch.images[night].mean() < 0.6 * batch.images[day].mean()
    for col in (2, 5):  # exposure_ms, analog_gain_db
        assert np.nanmean(batch.metadata[night, col]) > 3 * np.nanmean(batch.metadata[day, col])


def test_dropouts_are_whole_record_and_per_field_at_the_set_rate():
    cfg = FleetConfig(metadata_missing_rate=0.08, whole_record_dropout_share=0.5)
    rng = np.random.default_rng(0)
    meta = np.ones((20000, 6), np.float32)
    for row in meta:
        _drop_metadata(rng, row, cfg)
    nan = np.isnan(meta)
    assert nan.any(axis=1).mean() == pytest.approx(0.08, abs=0.008)
    assert nan.all(axis=1).mean() == pytest.approx(0.04, abs=0.006)
    partial = nan.any(axis=1) & ~nan.all(axis=1)
    assert partial.mean() > 0.03


def test_conditions_follow_the_configured_mix():
    cfg = FleetConfig(
        drives=2000,
        night_rate=0.3,
        dusk_rate=0.1,
        rain_rate=0.2,
        fog_rate=0.1,
        construction_rate=0.1,
    )
    draws = [
        drive_conditions(FleetConfig(**{**cfg.to_dict(), "rain_rate": 0.0}), d) for d in range(2000)
    ]
    lighting = np.array([d.lighting for d in draws])
    assert (lighting == "night").mean() == pytest.approx(0.3, abs=0.04)
    assert (np.array([d.scene for d in draws]) == "construction").mean() == pytest.approx(
        0.1, abs=0.03
    )
    assert (np.array([d.weather for d in draws]) == "fog").mean() == pytest.approx(0.1, abs=0.03)


@pytest.mark.parametrize(
    "bad",
    [
        dict(positive_rate=1.5),
        dict(drives=0),
        dict(rain_rate=0.7, fog_rate=0.5),
        dict(difficulty=-0.1),
        dict(crops_per_drive=10_000),
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        FleetConfig(**bad)


def test_config_round_trips_through_json():
    cfg = FleetConfig(drives=7, difficulty=0.8, fog_rate=0.2, seed=3)
    assert FleetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match=r"unknown key\(s\) \[.drivez.\]"):
        FleetConfig.from_dict({"drivez": 3})


def test_cli_synth_fleet_and_v1_only_options(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "data",
            "synth",
            str(tmp_path / "f"),
            "--generator",
            "fleet",
            "--drives",
            "4",
            "--crops-per-drive",
            "5",
            "--workers",
            "1",
            "--night-rate",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert manifest["source"]["generator"] == "edgeped.synthetic.fleet"
    assert manifest["source"]["config"]["night_rate"] == 0.5 and manifest["records"] == 20
    result = runner.invoke(main, ["data", "synth", str(tmp_path / "v"), "--fog-rate", "0.2"])
    assert result.exit_code == 64 and "--generator fleet" in result.output
