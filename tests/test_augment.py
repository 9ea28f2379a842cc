"""The occlusion and zoom augmentations: what they change, what they leave alone."""

import numpy as np
import pytest

from edgeped._keras import tf
from edgeped.data.augment import AugmentConfig, augment_image
from edgeped.data.schema import CROP_SHAPE

ONLY = dict(flip=0.0, shift_px=0, exposure=0.0, night=0.0, rain=0.0, blur=0.0)


def _image():
    """A smooth, non-symmetric ramp, so a crop-and-resize shows where it looked."""
    rows = np.linspace(-1.0, 0.9, CROP_SHAPE[0], dtype=np.float32)[:, None, None]
    cols = np.linspace(-0.5, 0.5, CROP_SHAPE[1], dtype=np.float32)[None, :, None]
    return np.broadcast_to(rows * 0.7 + cols * 0.3, CROP_SHAPE).astype(np.float32).copy()


def _run(config, image, seed):
    return augment_image(tf, tf.constant(image), config, tf.constant(seed, tf.int64)).numpy()


@pytest.mark.parametrize("seed", [(0, 1), (7, 3), (123, 9)])
def test_occlude_replaces_one_block_of_the_crop(seed):
    image = _image()
    out = _run(AugmentConfig(**ONLY, occlude=1.0), image, seed)
    changed = np.any(out != image, axis=2)
    area = changed.mean()
    assert 0.08 <= area <= 0.37  # 10-36% of the crop (a few noise pixels may match)
    rows, cols = np.nonzero(changed)
    box = changed[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert box.mean() > 0.97  # one rectangle, not scattered pixels
    assert out.min() >= -1.0 and out.max() <= 127 / 128


@pytest.mark.parametrize("seed", [(0, 1), (7, 3), (123, 9)])
def test_zoom_enlarges_a_part_of_the_crop(seed):
    image = _image()
    out = _run(AugmentConfig(**ONLY, zoom=1.0), image, seed)
    assert out.shape == CROP_SHAPE
    # Zooming in x1.0-1.25 spreads a ramp over more pixels (a gentler slope per pixel,
    # 0.8-1.0 of it) and never reaches outside its range.
    slope_in = np.diff(image[:, 0, 0]).mean()
    slope_out = np.diff(out[:, 0, 0]).mean()
    # (These seeds draw zooms above x1.01, so an identity would fail here.)
    assert 0.799 <= slope_out / slope_in <= 0.99
    assert out.min() >= image.min() - 1e-6 and out.max() <= image.max() + 1e-6


def test_zoom_and_occlude_are_off_by_default_and_leave_other_draws_alone():
    image = _image()
    base = AugmentConfig()
    assert base.zoom == 0.0 and base.occlude == 0.0
    seed = (5, 5)
    plain = _run(base, image, seed)
    # Probability 0 for both is the same stream as the config without them.
    np.testing.assert_array_equal(plain, _run(AugmentConfig(zoom=0.0, occlude=0.0), image, seed))
    # Turning occlusion on changes only the block it pastes: flip and shift draw what
    # they drew before (exposure and rain, which use the crop's mean, are left off here).
    geometric = dict(flip=1.0, shift_px=4, exposure=0.0, night=0.0, rain=0.0, blur=0.0)
    moved = _run(AugmentConfig(**geometric), image, seed)
    assert not np.array_equal(moved, image)
    occluded = _run(AugmentConfig(**geometric, occlude=1.0), image, seed)
    same = np.all(occluded == moved, axis=2)
    assert 0.6 <= same.mean() < 1.0


def test_occlude_and_zoom_reject_probabilities_outside_zero_one():
    for name in ("zoom", "occlude"):
        with pytest.raises(ValueError, match=f"augment.{name}"):
            AugmentConfig(**{name: 1.5})


@pytest.mark.parametrize("seed", [(0, 1), (7, 3), (123, 9)])
def test_light_varies_the_light_smoothly_across_the_crop(seed):
    # A flat mid-grey crop: any structure in the output is the light field's (and noise's).
    image = np.full(CROP_SHAPE, 0.2, np.float32)
    out = _run(AugmentConfig(**ONLY, light=1.0), image, seed)
    assert out.shape == CROP_SHAPE and out.min() >= -1.0 and out.max() <= 127 / 128
    # Averaged over 16x16 blocks (noise gone), the crop is uneven: lit and dark parts.
    blocks = out.mean(axis=2).reshape(8, 16, 4, 16).mean(axis=(1, 3))
    assert blocks.max() - blocks.min() > 0.05
    # ... and smooth: neighbouring blocks differ far less than the extremes.
    steps = np.abs(np.diff(blocks, axis=0)).max()
    assert steps < 0.6 * (blocks.max() - blocks.min())
    # The light only falls: never above the auto-gain's recovery of the brightest part.
    assert out.mean() <= image.mean() + 0.05


@pytest.mark.parametrize("seed", [(0, 1), (7, 3), (123, 9)])
def test_speckle_scatters_small_particles_over_a_hazier_scene(seed):
    image = _image()
    out = _run(AugmentConfig(**ONLY, speckle=1.0), image, seed)
    assert out.shape == CROP_SHAPE and out.min() >= -1.0 and out.max() <= 127 / 128
    # The scene's haze is one linear map (contrast x0.6-1, towards a brighter level); the
    # particles are the pixels off that map, a small share of the crop in many small pieces.
    haze = np.median(np.diff(out[:, :, 0], axis=0) / np.diff(image[:, :, 0], axis=0))
    assert 0.6 - 0.02 <= haze <= 1.0 + 1e-3
    level = np.median(out[..., 0] - haze * image[..., 0])
    off = np.abs(out[..., 0] - (haze * image[..., 0] + level)) > 0.05
    assert 0.003 <= off.mean() <= 0.5
    from scipy import ndimage

    labels, count = ndimage.label(off)
    assert count >= 5
    sizes = np.bincount(labels.ravel())[1:]
    # Flakes of 1-3 px (some overlap into clusters), never one block like an occluder.
    assert np.median(sizes) <= 30 and sizes.max() <= 0.05 * off.size


@pytest.mark.parametrize("seed", [(0, 1), (7, 3), (123, 9)])
def test_reframe_moves_and_rescales_the_box_within_its_limits(seed):
    image = _image()
    out = _run(AugmentConfig(**ONLY, reframe=1.0), image, seed)
    assert out.shape == CROP_SHAPE
    assert not np.allclose(out, image)
    # The ramp's slope per row changes by the box's scale (x/÷ 1.3 at most); the edge
    # repeat (mirror) keeps every value inside the crop's range.
    slope_in = np.diff(image[:, 32, 0]).mean()
    rows = np.diff(out[:, 32, 0])
    central = np.median(rows) / slope_in
    assert 1 / 1.3 - 0.02 <= abs(central) <= 1.3 + 0.02
    assert out.min() >= image.min() - 1e-6 and out.max() <= image.max() + 1e-6


def test_local_augmentations_are_off_by_default_and_leave_other_draws_alone():
    image = _image()
    base = AugmentConfig()
    assert base.light == base.speckle == base.reframe == 0.0
    seed = (4, 2)
    np.testing.assert_array_equal(
        _run(base, image, seed),
        _run(AugmentConfig(light=0.0, speckle=0.0, reframe=0.0), image, seed),
    )
    for name in ("light", "speckle", "reframe"):
        with pytest.raises(ValueError, match=f"augment.{name}"):
            AugmentConfig(**{name: -0.1})


def _linear(image):
    return ((np.clip(image, -1.0, 1.0) + 1.0) * 0.5) ** 2.2


@pytest.mark.parametrize("seed", [(0, 1), (7, 3), (123, 9)])
def test_haze_pulls_the_crop_towards_one_airlight_by_a_smooth_transmission(seed):
    image = _image()
    out = _run(AugmentConfig(**ONLY, haze=1.0), image, seed)
    assert out.shape == CROP_SHAPE and out.min() >= -1.0 and out.max() <= 127 / 128
    lin_in, lin_out = _linear(image), _linear(out)
    # Contrast is lost: the spread of linear values shrinks to 10-95% (x/÷ e^0.4 patches).
    ratio = lin_out[..., 1].std() / lin_in[..., 1].std()
    assert 0.1 * np.exp(-0.4) - 0.02 <= ratio <= 0.95 ** np.exp(-0.4) + 0.02
    # Per pixel out = lin * t + air * (1 - t), the same t and airlight for any crop of the
    # same mean: the ramp upside down gives t = (out_a - out_b) / (lin_a - lin_b) per pixel.
    flipped = image[::-1].copy()
    lin_b, lin_bout = (
        _linear(flipped),
        _linear(_run(AugmentConfig(**ONLY, haze=1.0), flipped, seed)),
    )
    apart = np.abs(lin_in - lin_b) > 0.05
    t = (lin_out - lin_bout)[apart] / (lin_in - lin_b)[apart]
    assert (t > 0).all() and (t < 1).all()
    t_map = np.where(apart, (lin_out - lin_bout) / np.where(apart, lin_in - lin_b, 1.0), np.nan)
    # Smooth: from one row to the next t changes by a few percent at most (patches span the crop).
    steps = np.abs(np.diff(t_map[..., 1], axis=0))
    assert np.nanmax(steps) < 0.05 and np.nanmax(t_map) - np.nanmin(t_map) < 0.9


@pytest.mark.parametrize("seed", [(0, 1), (7, 3), (123, 9)])
def test_cast_scales_red_and_blue_against_green_in_linear_light(seed):
    image = np.full(CROP_SHAPE, -0.3, np.float32)  # mid-grey, no channel clipped by a 1.7 gain
    image[64:, :, :] = -0.6
    out = _run(AugmentConfig(**ONLY, cast=1.0), image, seed)
    lin_in, lin_out = _linear(image), _linear(out)
    np.testing.assert_allclose(lin_out[..., 1], lin_in[..., 1], rtol=1e-4)  # green kept
    gains = (lin_out / lin_in).reshape(-1, 3)
    # One gain per channel over the whole crop, within x/÷ 1.7, and not the identity.
    np.testing.assert_allclose(gains, np.broadcast_to(gains[0], gains.shape), rtol=1e-3)
    assert ((gains[0] >= 1 / 1.7 - 1e-3) & (gains[0] <= 1.7 + 1e-3)).all()
    assert abs(gains[0, 0] - 1) + abs(gains[0, 2] - 1) > 1e-3


def test_haze_and_cast_are_off_by_default_and_leave_other_draws_alone():
    image = _image()
    base = AugmentConfig()
    assert base.haze == base.cast == 0.0
    seed = (4, 2)
    np.testing.assert_array_equal(
        _run(base, image, seed), _run(AugmentConfig(haze=0.0, cast=0.0), image, seed)
    )
    # On, the haze changes the crop but not the other augmentations' draws: with the
    # photometric ones off, the flip and shift move the ramp alike with or without it.
    geometry = dict(flip=0.5, shift_px=4, exposure=0.0, night=0.0, rain=0.0, blur=0.0)
    plain = _run(AugmentConfig(**geometry), image, seed)
    hazed = _run(AugmentConfig(**geometry, haze=1.0), image, seed)
    assert not np.allclose(plain, hazed)
    # The haze is monotonic per pixel: the order of values (where the ramp went) is kept.
    order = np.argsort(plain[..., 1].ravel(), kind="stable")
    assert np.corrcoef(plain[..., 1].ravel()[order], hazed[..., 1].ravel()[order])[0, 1] > 0.9
    for name in ("haze", "cast"):
        with pytest.raises(ValueError, match=f"augment.{name}"):
            AugmentConfig(**{name: 1.5})
