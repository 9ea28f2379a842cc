"""Training-time augmentations (TensorFlow), each aimed at a shift the fleet shows.

They work on the normalised image x = (u8 - 128) / 128 and clip back into
[-1, 127/128], so the int8 input rule (q = u8 - 128) still covers every value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from edgeped.data.schema import CROP_SHAPE

_JITTER_PX = 4


MAX_CONSISTENCY = 100.0  # past this the consistency term drowns the labels
# What the consistency term compares the augmented view with (AugmentConfig.consistency_anchor).
CONSISTENCY_ANCHORS = ("augmented", "clean")


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (0 disables) and ranges of each augmentation."""

    flip: float = 0.5
    shift_px: int = _JITTER_PX
    exposure: float = 1.0  # brightness/contrast jitter
    night: float = 0.1  # darken x0.3-0.6 and add sensor noise
    rain: float = 0.1  # contrast loss plus vertical streaks
    blur: float = 0.15  # horizontal motion blur (3-5 px)
    metadata_dropout: float = 0.1  # whole-record dropout, as from a sensor outage
    zoom: float = 0.0  # zoom in x1.0-1.25: a tighter box cuts off the head or the feet
    occlude: float = 0.0  # a noise block over 10-35% of the crop, as a pole or a car in front
    # Camera-physics families for shift robustness (see docs/robustness.md, which suite
    # families each one is related to; the others are held out of training):
    dark: float = 0.0  # light x0.01-0.5 in linear units, shot + read noise, auto-gain
    noise: float = 0.0  # sensor noise at normal exposure (gain 0-18 dB), chroma + luma
    tone: float = 0.0  # a random tone curve (gamma 0.5-2) and a black/white level shift
    mix: float = 0.0  # AugMix-style: blend the augmented crop with the clean one (w ~ U(0, 1))
    # Local structure the whole-crop statistics cannot undo:
    light: float = (
        0.0  # uneven light: a smooth random field x0.02-1 (lamps, beams, shade), gain, noise
    )
    speckle: float = 0.0  # particles: 20-250 bright or dark flakes and drops, a hazier scene
    reframe: float = 0.0  # a loose box: shifted up to 20% and scaled x/÷ up to 1.3, edges repeated
    # What lies between the scene and the pixel values:
    haze: float = 0.0  # contrast lost towards an airlight, patchy (fog, haze, a dirty windscreen)
    cast: float = 0.0  # a colour cast: red and blue gains x/÷ up to 1.7 against green (AWB error)
    # Not a probability: the weight of the Jensen-Shannon consistency loss between the scores
    # of two independent augmented views of each crop (AugMix, Hendrycks et al. 2020, which
    # uses 12); 0 = off. Training steps cost about twice as much with it on.
    consistency: float = 0.0
    # "augmented": the second view is another augmented draw, the label teaches the first
    # (AugMix without its clean view). "clean": the second view is the crop unaugmented, the
    # label teaches both and the term pulls the augmented score towards the clean one's, which
    # it does not move (no gradient through the clean side of the term).
    consistency_anchor: str = "augmented"

    def __post_init__(self) -> None:
        for name in (
            "flip",
            "exposure",
            "night",
            "rain",
            "blur",
            "metadata_dropout",
            "zoom",
            "occlude",
            "dark",
            "noise",
            "tone",
            "mix",
            "light",
            "speckle",
            "reframe",
            "haze",
            "cast",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {value}")
        if not 0.0 <= self.consistency <= MAX_CONSISTENCY:
            raise ValueError(
                f"augment.consistency must be in [0, {MAX_CONSISTENCY:g}], got {self.consistency}"
            )
        if self.consistency_anchor not in CONSISTENCY_ANCHORS:
            raise ValueError(
                f"augment.consistency_anchor must be one of {CONSISTENCY_ANCHORS}, "
                f"got {self.consistency_anchor!r}"
            )
        if not 0 <= self.shift_px <= 16:
            raise ValueError(f"augment.shift_px must be in [0, 16], got {self.shift_px}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def off(cls) -> AugmentConfig:
        return cls(
            flip=0.0, shift_px=0, exposure=0.0, night=0.0, rain=0.0, blur=0.0, metadata_dropout=0.0
        )


def _split(tf, seed, n: int):
    """n independent stateless seeds (shape [2]) derived from one."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=n))


def _maybe(tf, p: float, fn, image, seed):
    """fn(image, seed) with probability p; the coin and fn draw from separate seeds."""
    if p <= 0:
        return image
    coin, inner = _split(tf, seed, 2)
    return tf.cond(
        tf.random.stateless_uniform([], coin) < p, lambda: fn(image, inner), lambda: image
    )


def _night(tf, image, seed):
    gain_seed, noise_seed = _split(tf, seed, 2)
    u8ish = (image + 1.0) * tf.random.stateless_uniform([], gain_seed, 0.3, 0.6) - 1.0
    return u8ish + tf.random.stateless_normal(tf.shape(image), noise_seed, stddev=0.06)


def _rain(tf, image, seed):
    gray = tf.reduce_mean(image)
    image = image * 0.75 + gray * 0.25
    drops = tf.cast(tf.random.stateless_uniform(CROP_SHAPE[:2] + (1,), seed) > 0.992, tf.float32)
    kernel = tf.ones([9, 1, 1, 1]) / 3.0  # vertical streaks, 9 px long
    streaks = tf.nn.depthwise_conv2d(drops[None], kernel, [1, 1, 1, 1], "SAME")[0]
    return image + 0.5 * streaks


def _blur(tf, image, seed):
    width = tf.random.stateless_uniform([], seed, 3, 6, dtype=tf.int32)
    kernel = tf.ones([1, width, 3, 1]) / tf.cast(width, tf.float32)
    return tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "SAME")[0]


_ZOOM_MAX = 1.25
# Occluder side lengths as fractions of the crop's (height, width): 10-35% of its area.
_OCCLUDE_H, _OCCLUDE_W = (0.25, 0.6), (0.4, 0.6)


def _zoom(tf, image, seed):
    """Crops a box 1/1.0-1/1.25 the crop's size at a random place and resizes it back."""
    scale_seed, place_seed = _split(tf, seed, 2)
    side = 1.0 / tf.random.stateless_uniform([], scale_seed, 1.0, _ZOOM_MAX)
    y0, x0 = tf.unstack(tf.random.stateless_uniform([2], place_seed) * (1.0 - side))
    box = tf.stack([y0, x0, y0 + side, x0 + side])[None]
    return tf.image.crop_and_resize(image[None], box, [0], CROP_SHAPE[:2])[0]


def _occlude(tf, image, seed):
    """Pastes a block of uniform noise (random erasing) at a random place."""
    size_seed, place_seed, fill_seed = _split(tf, seed, 3)
    height, width = CROP_SHAPE[0], CROP_SHAPE[1]
    lo = tf.constant([_OCCLUDE_H[0], _OCCLUDE_W[0]])
    hi = tf.constant([_OCCLUDE_H[1], _OCCLUDE_W[1]])
    frac = lo + (hi - lo) * tf.random.stateless_uniform([2], size_seed)
    size = tf.cast(frac * tf.constant([height, width], tf.float32), tf.int32)
    room = tf.constant([height, width]) - size + 1
    corner = tf.cast(
        tf.random.stateless_uniform([2], place_seed) * tf.cast(room, tf.float32), tf.int32
    )
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = (
        (rows >= corner[0])
        & (rows < corner[0] + size[0])
        & (cols >= corner[1])
        & (cols < corner[1] + size[1])
    )
    noise = tf.random.stateless_uniform(tf.shape(image), fill_seed, -1.0, 1.0)
    # Half the occluders are flat (a painted pole, a car door), half textured.
    flat_seed = tf.random.experimental.stateless_fold_in(fill_seed, 1)
    tone = tf.random.stateless_uniform([3], tf.random.experimental.stateless_fold_in(fill_seed, 2))
    flat = tf.random.stateless_uniform([], flat_seed) < 0.5
    fill = tf.where(flat, tf.ones_like(image) * (tone * 1.5 - 1.0), noise)
    return tf.where(inside[:, :, None], fill, image)


_GAMMA = 2.2


def _to_linear(tf, image):
    return tf.pow(tf.clip_by_value((image + 1.0) * 0.5, 0.0, 1.0), _GAMMA)


def _from_linear(tf, lin):
    return tf.pow(tf.clip_by_value(lin, 0.0, 1.0), 1.0 / _GAMMA) * 2.0 - 1.0


def _log_uniform(tf, seed, lo: float, hi: float):
    return tf.exp(tf.random.stateless_uniform([], seed, math.log(lo), math.log(hi)))


def _sensor_noise(tf, lin, gain, seed):
    """Shot and read noise on a pre-gain linear signal, then the analog gain."""
    sigma = tf.sqrt(0.0008 * tf.maximum(lin, 0.0) + 0.003**2)
    return (lin + sigma * tf.random.stateless_normal(tf.shape(lin), seed)) * gain


def _dark(tf, image, seed):
    """Too little light: the signal falls, noise stays, the camera's gain brings it back up."""
    light_seed, gain_seed, noise_seed = _split(tf, seed, 3)
    light = _log_uniform(tf, light_seed, 0.01, 0.5)
    # The auto-gain recovers between none and all of the lost light.
    gain = tf.pow(1.0 / light, tf.random.stateless_uniform([], gain_seed, 0.0, 1.0))
    return _from_linear(tf, _sensor_noise(tf, _to_linear(tf, image) * light, gain, noise_seed))


def _noise(tf, image, seed):
    """High-gain sensor noise at normal exposure: the signal is kept, the noise is amplified."""
    gain_seed, noise_seed = _split(tf, seed, 2)
    gain = tf.pow(10.0, tf.random.stateless_uniform([], gain_seed, 0.0, 18.0) / 20.0)
    lin = _to_linear(tf, image) / gain
    return _from_linear(tf, _sensor_noise(tf, lin, gain, noise_seed))


def _tone(tf, image, seed):
    """A random tone curve: gamma 0.5-2 on [0, 1], then a black and white level shift."""
    gamma_seed, black_seed, white_seed = _split(tf, seed, 3)
    gamma = _log_uniform(tf, gamma_seed, 0.5, 2.0)
    unit = tf.pow(tf.clip_by_value((image + 1.0) * 0.5, 0.0, 1.0), gamma)
    black = tf.random.stateless_uniform([], black_seed, -0.1, 0.3)
    white = tf.random.stateless_uniform([], white_seed, 0.7, 1.1)
    return (black + unit * (white - black)) * 2.0 - 1.0


def _smooth_field(tf, seed, log_low: float, log_high: float):
    """A 3x2 grid of levels log-uniform in [e^log_low, e^log_high], stretched bilinearly over
    the crop (HxWx1). The resize keeps its corners flat; it still varies smoothly."""
    coarse = tf.exp(tf.random.stateless_uniform([1, 3, 2, 1], seed, log_low, log_high))
    return tf.image.resize(coarse, CROP_SHAPE[:2], method="bilinear")[0]


def _light(tf, image, seed):
    """Uneven light: a smooth random illumination field, then auto-gain and sensor noise.

    The field is a 3x2 grid of log-uniform light levels (0.02-1) stretched bilinearly over
    the crop: a lit lower body and a dark head, a lamp on one side, a shadow across. The
    camera's gain then recovers between none and all of the brightest part's loss.
    """
    grid_seed, gain_seed, noise_seed = _split(tf, seed, 3)
    field = _smooth_field(tf, grid_seed, math.log(0.02), math.log(1.0))
    peak = tf.reduce_max(field)
    gain = tf.pow(1.0 / peak, tf.random.stateless_uniform([], gain_seed, 0.0, 1.0))
    return _from_linear(tf, _sensor_noise(tf, _to_linear(tf, image) * field, gain, noise_seed))


_SPECKLE_MAX = 250


def _speckle(tf, image, seed):
    """Particles in front of the lens (flakes, drops, dust): small blobs over a hazier scene.

    20-250 particles of 1-3 px, each a short dash at a random angle, all bright (snow,
    lit drops) or all dark (dirt), with the scene's contrast lowered x0.6-1 towards a
    brighter level.
    """
    count_seed, place_seed, size_seed, tone_seed, haze_seed, kind_seed = _split(tf, seed, 6)
    height, width = CROP_SHAPE[0], CROP_SHAPE[1]
    count = tf.random.stateless_uniform([], count_seed, 20, _SPECKLE_MAX + 1, dtype=tf.int32)
    centres = tf.random.stateless_uniform([_SPECKLE_MAX, 2], place_seed) * tf.constant(
        [height, width], tf.float32
    )
    radius = tf.random.stateless_uniform([_SPECKLE_MAX], size_seed, 0.5, 1.5)
    live = tf.cast(tf.range(_SPECKLE_MAX) < count, tf.float32)
    rows = tf.range(height, dtype=tf.float32)[:, None, None]
    cols = tf.range(width, dtype=tf.float32)[None, :, None]
    # Dashes twice as tall as wide (flakes falling, drops running).
    d2 = ((rows - centres[:, 0]) / 2.0) ** 2 + (cols - centres[:, 1]) ** 2
    cover = tf.reduce_max(tf.clip_by_value(radius + 0.5 - tf.sqrt(d2), 0.0, 1.0) * live, axis=-1)
    haze = tf.random.stateless_uniform([], haze_seed, 0.6, 1.0)
    level = tf.reduce_mean(image)
    scene = image * haze + (level + 0.3) * (1.0 - haze)
    bright = tf.random.stateless_uniform([], kind_seed) < 0.75
    tone = tf.where(
        bright,
        tf.random.stateless_uniform([], tone_seed, 0.5, 1.0),
        tf.random.stateless_uniform([], tone_seed, -1.0, -0.6),
    )
    return scene * (1.0 - cover[:, :, None]) + tone * cover[:, :, None]


_REFRAME_SHIFT, _REFRAME_SCALE = 0.2, 1.3


def _reframe(tf, image, seed):
    """A loose proposal box: shifted by up to 20% of each side, scaled x or / up to 1.3.

    Pixels the box takes from outside the crop repeat its edge (the suite's rule).
    """
    shift_seed, scale_seed = _split(tf, seed, 2)
    pad_y, pad_x = CROP_SHAPE[0], CROP_SHAPE[1]
    padded = tf.pad(image, [[pad_y, pad_y], [pad_x, pad_x], [0, 0]], mode="SYMMETRIC")
    zoom = tf.exp(
        tf.random.stateless_uniform(
            [], scale_seed, -math.log(_REFRAME_SCALE), math.log(_REFRAME_SCALE)
        )
    )
    dy, dx = tf.unstack(
        tf.random.stateless_uniform([2], shift_seed, -_REFRAME_SHIFT, _REFRAME_SHIFT)
    )
    # The box in the crop's unit coordinates, then in the padded image's (3x the crop).
    half = 0.5 / zoom
    y0, x0 = 0.5 + dy - half, 0.5 + dx - half
    box = (tf.stack([y0, x0, y0 + 2 * half, x0 + 2 * half]) + 1.0) / 3.0
    return tf.image.crop_and_resize(padded[None], box[None], [0], CROP_SHAPE[:2])[0]


_HAZE_KEEP = (0.1, 0.95)  # the share of the scene's contrast that survives, before the patches
_HAZE_PATCH = 0.4  # optical depth varies x/÷ up to e^0.4 over a 3x2 grid


def _haze(tf, image, seed):
    """Contrast lost towards an airlight: fog, haze, smoke, a dirty or misted windscreen.

    In linear light, out = lin * t + air * (1 - t): the transmission t keeps 10-95% of the
    contrast, its optical depth varying smoothly over the crop (patchy fog, a smear on the
    glass); the airlight is a grey-ish level between the crop's mean and well above it.
    """
    keep_seed, patch_seed, air_seed, tint_seed = _split(tf, seed, 4)
    keep = tf.random.stateless_uniform([], keep_seed, _HAZE_KEEP[0], _HAZE_KEEP[1])
    depth = -tf.math.log(keep) * _smooth_field(tf, patch_seed, -_HAZE_PATCH, _HAZE_PATCH)
    t = tf.exp(-depth)
    lin = _to_linear(tf, image)
    level = tf.reduce_mean(lin) * tf.random.stateless_uniform([], air_seed, 0.8, 2.5)
    air = tf.clip_by_value(tf.maximum(level, 0.2), 0.0, 1.0) * tf.random.stateless_uniform(
        [3], tint_seed, 0.92, 1.08
    )
    return _from_linear(tf, lin * t + air * (1.0 - t))


_CAST_MAX = 1.7


def _cast(tf, image, seed):
    """A white-balance error: red and blue gains, each x/÷ up to 1.7, against green."""
    gains = tf.exp(
        tf.random.stateless_uniform([2], seed, -math.log(_CAST_MAX), math.log(_CAST_MAX))
    )
    return _from_linear(tf, _to_linear(tf, image) * tf.stack([gains[0], 1.0, gains[1]]))


def _exposure(tf, image, seed):
    contrast_seed, brightness_seed = _split(tf, seed, 2)
    mean = tf.reduce_mean(image)
    contrast = tf.random.stateless_uniform([], contrast_seed, 0.7, 1.3)
    brightness = tf.random.stateless_uniform([], brightness_seed, -0.15, 0.15)
    return (image - mean) * contrast + mean + brightness


def augment_image(tf, image, config: AugmentConfig, seed):
    """Applies the enabled augmentations to one normalised HxWxC image.

    Every draw is stateless and derived from ``seed`` (an int64 tensor of shape [2],
    one per record), so a parallel map gives the same images on every run.
    """
    flip, shift, blur, exposure, night, rain = _split(tf, seed, 6)
    if config.flip:
        image = _maybe(tf, config.flip, lambda x, _: tf.image.flip_left_right(x), image, flip)
    if config.shift_px:
        s = config.shift_px
        padded = tf.pad(image, [[s, s], [s, s], [0, 0]], mode="REFLECT")
        image = tf.image.stateless_random_crop(padded, CROP_SHAPE, seed=shift)
    if config.zoom or config.occlude:
        # Seeds of their own, so turning these on leaves every other draw as it was.
        zoom, occlude = _split(tf, tf.random.experimental.stateless_fold_in(seed, 8), 2)
        image = _maybe(tf, config.zoom, lambda x, k: _zoom(tf, x, k), image, zoom)
        image = _maybe(tf, config.occlude, lambda x, k: _occlude(tf, x, k), image, occlude)
    if config.reframe:
        reframe = tf.random.experimental.stateless_fold_in(seed, 11)
        image = _maybe(tf, config.reframe, lambda x, k: _reframe(tf, x, k), image, reframe)
    image = _maybe(tf, config.blur, lambda x, k: _blur(tf, x, k), image, blur)
    image = _maybe(tf, config.exposure, lambda x, k: _exposure(tf, x, k), image, exposure)
    image = _maybe(tf, config.night, lambda x, k: _night(tf, x, k), image, night)
    image = _maybe(tf, config.rain, lambda x, k: _rain(tf, x, k), image, rain)
    if config.haze or config.cast:
        # The haze is in the scene, before the sensor's noise; the cast is the camera's own
        # colour processing, after it. Streams of their own, as below.
        haze, cast = _split(tf, tf.random.experimental.stateless_fold_in(seed, 12), 2)
        image = _maybe(tf, config.haze, lambda x, k: _haze(tf, x, k), image, haze)
    if config.dark or config.noise or config.tone or config.mix:
        # Streams of their own again: the draws above stay as they were with these off.
        dark, noise, tone, mix, weight = _split(
            tf, tf.random.experimental.stateless_fold_in(seed, 9), 5
        )
        before = image
        image = _maybe(tf, config.tone, lambda x, k: _tone(tf, x, k), image, tone)
        image = _maybe(tf, config.dark, lambda x, k: _dark(tf, x, k), image, dark)
        image = _maybe(tf, config.noise, lambda x, k: _noise(tf, x, k), image, noise)
        if config.mix:
            w = tf.random.stateless_uniform([], weight)
            image = _maybe(tf, config.mix, lambda x, _: w * x + (1.0 - w) * before, image, mix)
    if config.light or config.speckle:
        light, speckle = _split(tf, tf.random.experimental.stateless_fold_in(seed, 10), 2)
        image = _maybe(tf, config.light, lambda x, k: _light(tf, x, k), image, light)
        image = _maybe(tf, config.speckle, lambda x, k: _speckle(tf, x, k), image, speckle)
    if config.cast:
        image = _maybe(tf, config.cast, lambda x, k: _cast(tf, x, k), image, cast)
    return tf.clip_by_value(image, -1.0, 127.0 / 128.0)
