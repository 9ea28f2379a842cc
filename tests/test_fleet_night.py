"""The fleet renderer's night: headlights on the near subject, legs over head, reflectors, lamps."""

from __future__ import annotations

import numpy as np

from edgeped.data import fleet_render as fr
from edgeped.data import fleet_scene as fs
from edgeped.data.draw import H, W, rect
from edgeped.data.fleet import FleetConfig, generate_drive
from edgeped.data.schema import CropBatch


def _night_shot() -> fs.Shot:
    return fs.Shot("night", "clear", 8.0, 0.0, 25.0, 24.0, 0.003)


def _canvas_with_subject() -> fs.Canvas:
    cv = fs.Canvas.blank()
    cv.img[:] = 0.5
    cv.subject = rect(20, 10, 44, H - 4)
    return cv


def test_headlights_light_the_subject_more_than_what_is_behind_it():
    light, _ = fr.night_light(_canvas_with_subject(), np.random.default_rng(1), _night_shot())
    light = light[..., 0]
    lower_subject = light[100:120, 26:38].mean()
    lower_background = light[100:120, :8].mean()
    assert lower_subject > 1.5 * lower_background


def test_low_beams_light_the_legs_more_than_the_head_and_fall_off_with_distance():
    subject = rect(20, 10, 44, H - 4)
    near, _ = fr.low_beams(subject, 8.0, 20.0, cutoff=0.45 * H)
    assert near[100:124, 26:38].mean() > 3 * near[12:28, 26:38].mean()
    far, _ = fr.low_beams(subject, 32.0, 50.0, cutoff=0.45 * H)
    assert near[110, 32] == np.float32(16 * far[110, 32])  # inverse square: 4x further
    assert fr.beam(2.0) == fr.HEADLIGHT_MAX


def test_reflectors_shine_and_nothing_shines_without_them():
    cv = _canvas_with_subject()
    _, none = fr.night_light(cv, np.random.default_rng(2), _night_shot())
    assert none.max() == 0.0
    cv.mark_reflective(rect(22, 110, 42, 114))
    _, retro = fr.night_light(cv, np.random.default_rng(2), _night_shot())
    assert retro[110:114, 24:40].min() > 0 and retro[:100].max() == 0.0


def test_subject_distance_sets_the_brightness():
    """Over many draws, the subject's light spans near (bright) to far (dark) pedestrians."""
    levels = [
        fr.night_light(_canvas_with_subject(), np.random.default_rng(s), _night_shot())[0][
            110, 32, 0
        ]
        for s in range(60)
    ]
    assert max(levels) > 8 * min(levels)


def test_night_pedestrians_are_visible_and_lit_from_below():
    cfg = FleetConfig(
        drives=24, crops_per_drive=10, positive_rate=0.6, night_rate=1.0, dusk_rate=0.0, seed=5
    )
    batch = CropBatch.concat([generate_drive(cfg, d) for d in range(cfg.drives)])
    pos = batch.images[batch.labels == 1].astype(np.float32)
    centre = pos[:, :, W // 2 - 10 : W // 2 + 10]
    assert centre[:, H // 2 :].mean() > centre[:, : H // 2].mean()  # lamps light heads too
    assert (pos.mean((1, 2, 3)) > 20).mean() > 0.5  # most night pedestrians are not black
