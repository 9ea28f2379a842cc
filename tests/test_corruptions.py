"""The corruption suite: determinism per crop, graded severities, metadata that moves, docs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edgeped.errors import EdgepedError
from edgeped.evaluate import corruptions as c

NAMES = list(c.CORRUPTIONS)


def _crops(n: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth, structured crops (random pixels would hide blur and compression)."""
    yy, xx = np.mgrid[0:128, 0:64]
    images = []
    for k in range(n):
        base = 110 + 60 * np.sin(xx / (4 + k)) * np.cos(yy / (7 + k))
        person = ((np.abs(xx - 32) < 10) & (yy > 20)).astype(float) * (40 + 10 * k)
        rgb = np.stack([base + person, base * 0.9, base * 0.8 - person], -1)
        images.append(np.clip(rgb, 0, 255).astype(np.uint8))
    meta = np.tile(np.array([10.0, 0.01, 8.0, 0.5, 0.5, 3.0], np.float32), (n, 1))
    meta[0, :] = np.nan
    return np.stack(images), meta, np.array([f"d0-{i}" for i in range(n)])


def test_suite_covers_what_a_vehicle_camera_sees():
    first = {
        "low_light",
        "headlight",
        "rain",
        "fog",
        "motion_blur",
        "defocus",
        "glare",
        "jpeg",
        "occlusion",
        "white_balance",
    }
    extended = {"sensor_noise", "contrast", "snow", "near_ir", "misalign", "pixelate"}
    assert set(NAMES) == first | extended
    assert set(c.ORIGINAL_FAMILIES) == first and NAMES[: len(first)] == list(c.ORIGINAL_FAMILIES)
    for spec in c.CORRUPTIONS.values():
        assert len(spec.severities) == 5 and spec.models


def test_family_split_follows_the_recipe_augmentations():
    from edgeped.data.augment import AugmentConfig

    off = c.family_split(AugmentConfig.off().to_dict())
    assert off["trained"] == [] and off["held_out"] == NAMES
    split = c.family_split({"blur": 0.2, "dark": 0.3, "shift_px": 4, "occlude": 0.0})
    assert split["trained"] == ["low_light", "motion_blur", "sensor_noise", "misalign"]
    assert "occlusion" in split["held_out"] and "fog" in split["held_out"]
    assert set(split["trained"]) | set(split["held_out"]) == set(NAMES)
    # The local-structure augmentations count for the families they imitate.
    local = c.family_split({"light": 0.2, "speckle": 0.2, "reframe": 0.25})
    assert local["trained"] == ["low_light", "headlight", "rain", "snow", "misalign"]
    # Contrast lost towards an airlight trains fog (and contrast); a colour cast white balance.
    lens = c.family_split({"haze": 0.15, "cast": 0.1})
    assert lens["trained"] == ["fog", "white_balance", "contrast"]
    assert {"defocus", "jpeg", "near_ir", "pixelate"} <= set(lens["held_out"])
    # Every key a family names is a real [augment] key, so no family is held out by a typo.
    keys = set(AugmentConfig().to_dict())
    for spec in c.CORRUPTIONS.values():
        assert set(spec.augment_keys) <= keys, spec.name


def test_jpeg_is_pillows_codec_at_the_stated_quality():
    import io

    from PIL import Image

    images, meta, _ = _crops(1)
    for s in (1, 5):
        quality = c.CORRUPTIONS["jpeg"].params(s)["quality"]
        out, _ = c.corrupt(images[0], meta[0], "x", "jpeg", s)
        buffer = io.BytesIO()
        Image.fromarray(c.to_u8(c.to_linear(images[0]))).save(buffer, "JPEG", quality=quality)
        expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        # One more trip through linear light and back (the suite's frame) moves no level.
        np.testing.assert_array_equal(out, c.to_u8(c.to_linear(expected)))


def test_new_families_change_the_crop_as_described():
    images, meta, ids = _crops()
    mono, _ = c.corrupt_batch(images, meta, ids, "near_ir", 5)
    assert np.abs(mono[..., 0].astype(int) - mono[..., 1]).max() <= 1  # colour gone
    flat, _ = c.corrupt_batch(images, meta, ids, "contrast", 5)
    assert flat.std() < 0.5 * images.std()
    noisy, noisy_meta = c.corrupt_batch(images, meta, ids, "sensor_noise", 5)
    assert abs(float(noisy.mean()) - float(images.mean())) < 8  # brightness kept
    assert noisy_meta[1, c.GAIN] == pytest.approx(meta[1, c.GAIN] + 22.0)
    moved, _ = c.corrupt_batch(images, meta, ids, "misalign", 5)
    assert not np.array_equal(moved, images)
    small, _ = c.corrupt_batch(images, meta, ids, "pixelate", 5)
    # Fewer distinct rows of detail: the high-frequency energy falls.
    assert (
        np.abs(np.diff(small.astype(float), axis=1)).mean()
        < np.abs(np.diff(images.astype(float), axis=1)).mean()
    )
    snowy, _ = c.corrupt_batch(images, meta, ids, "snow", 5)
    assert snowy.mean() > images.mean()


@pytest.mark.parametrize("name", NAMES)
def test_same_crop_same_bytes_in_any_batch(name):
    images, meta, ids = _crops()
    whole, whole_meta = c.corrupt_batch(images, meta, ids, name, 3)
    rev, rev_meta = c.corrupt_batch(images[::-1], meta[::-1], ids[::-1], name, 3)
    np.testing.assert_array_equal(whole, rev[::-1])
    np.testing.assert_array_equal(whole_meta, rev_meta[::-1])
    one, _ = c.corrupt(images[2], meta[2], ids[2], name, 3)
    np.testing.assert_array_equal(one, whole[2])
    assert whole.dtype == np.uint8 and whole.shape == images.shape


DETERMINISTIC = ("defocus", "jpeg", "contrast", "near_ir", "pixelate")


@pytest.mark.parametrize("name", [n for n in NAMES if n not in DETERMINISTIC])
def test_draws_depend_on_crop_id_and_seed(name):
    images, meta, _ = _crops(1)
    a, _ = c.corrupt(images[0], meta[0], "crop-a", name, 4)
    b, _ = c.corrupt(images[0], meta[0], "crop-b", name, 4)
    s, _ = c.corrupt(images[0], meta[0], "crop-a", name, 4, seed=1)
    assert not np.array_equal(a, b) and not np.array_equal(a, s)


@pytest.mark.parametrize("name", NAMES)
def test_severity_grades_the_damage(name):
    images, meta, ids = _crops()
    damage = []
    for s in c.SEVERITIES:
        out, _ = c.corrupt_batch(images, meta, ids, name, s)
        damage.append(np.abs(out.astype(float) - images).mean())
    assert damage[0] > 0.5, damage
    assert all(b > a for a, b in zip(damage, damage[1:], strict=False)), damage


def test_metadata_moves_with_the_corruption():
    images, meta, ids = _crops(2)
    before = meta.copy()
    _, low = c.corrupt_batch(images, meta, ids, "low_light", 5)
    np.testing.assert_array_equal(meta, before)  # the input is not changed
    p = c.CORRUPTIONS["low_light"].params(5)
    assert low[1, c.GAIN] == pytest.approx(before[1, c.GAIN] + p["gain_db"])
    assert low[1, c.EXPOSURE] == pytest.approx(before[1, c.EXPOSURE] * p["exposure_factor"])
    assert np.isnan(low[0]).all()  # a missing reading stays missing
    _, night = c.corrupt_batch(images, meta, ids, "headlight", 2)
    hour = (np.degrees(np.arctan2(night[1, c.TOD_SIN], night[1, c.TOD_COS])) / 15) % 24
    assert hour == pytest.approx(23.0, abs=1e-3)
    _, moving = c.corrupt_batch(images, meta, ids, "motion_blur", 4)
    p = c.CORRUPTIONS["motion_blur"].params(4)
    assert c.motion_blur_px(moving[1, c.SPEED], moving[1, c.EXPOSURE]) == pytest.approx(
        p["blur_px"]
    )
    _, bright = c.corrupt_batch(images, meta, ids, "glare", 5)
    assert bright[1, c.EXPOSURE] == pytest.approx(
        min(before[1, c.EXPOSURE] * 5.5, c.MAX_EXPOSURE_MS)
    )
    unchanged = ("fog", "defocus", "jpeg", "occlusion", "white_balance", "rain", "contrast")
    for name in (*unchanged, "near_ir", "misalign", "pixelate"):
        _, same = c.corrupt_batch(images, meta, ids, name, 5)
        np.testing.assert_array_equal(same, before)


def test_darkness_and_glare_go_the_right_way():
    images, meta, ids = _crops()
    means = [c.corrupt_batch(images, meta, ids, "low_light", s)[0].mean() for s in (1, 5)]
    assert images.mean() > means[0] > means[1]
    glare = [c.corrupt_batch(images, meta, ids, "glare", s)[0].mean() for s in (1, 5)]
    assert images.mean() < glare[0] < glare[1]
    head, _ = c.corrupt_batch(images, meta, ids, "headlight", 3)
    assert head[:, 96:].mean() > 2 * head[:, :32].mean()  # lower body lit, head dark


def test_occlusion_covers_about_the_stated_share():
    images, meta, _ = _crops(1)
    flat = np.full_like(images[0], 255)
    for s in (1, 5):
        covered = c.CORRUPTIONS["occlusion"].params(s)["covered"]
        shares = []
        for k in range(20):
            out, _ = c.corrupt(flat, meta[0], f"c{k}", "occlusion", s)
            shares.append((np.abs(out.astype(int) - 255).max(-1) > 3).mean())
        assert np.mean(shares) == pytest.approx(covered, abs=0.06)


def test_bad_requests_are_clear_errors():
    images, meta, _ = _crops(1)
    with pytest.raises(EdgepedError, match="severity"):
        c.corrupt(images[0], meta[0], "x", "fog", 6)
    with pytest.raises(EdgepedError, match="unknown corruption"):
        c.corrupt(images[0], meta[0], "x", "hail", 1)
    with pytest.raises(EdgepedError, match="uint8"):
        c.corrupt(images[0].astype(np.float32), meta[0], "x", "fog", 1)
    assert c.parse_corruptions("all") == tuple(NAMES)
    assert c.parse_corruptions("fog, rain,fog") == ("fog", "rain")
    for bad in ("", "fog,hail"):
        with pytest.raises(EdgepedError, match="fix:"):
            c.parse_corruptions(bad)


def test_docs_show_the_parameter_tables_the_code_uses():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "robustness.md").read_text()
    block = re.search(
        r"<!-- parameter tables: begin -->\n(.*)<!-- parameter tables: end -->", doc, re.S
    )
    assert block, "docs/robustness.md lost its parameter-table markers"
    assert block.group(1) == c.parameter_table_markdown()
