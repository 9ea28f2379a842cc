"""Training-time augmentations (TensorFlow), each aimed at a shift the fleet shows.

They work on the normalised image x = (u8 - 128) / 128 and clip back into
[-1, 127/128], so the int8 input rule (q = u8 - 128) still covers every value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgeped.data.schema import CROP_SHAPE

_JITTER_PX = 4


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

    def __post_init__(self) -> None:
        for name in ("flip", "exposure", "night", "rain", "blur", "metadata_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1], got {value}")
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
    image = _maybe(tf, config.blur, lambda x, k: _blur(tf, x, k), image, blur)
    image = _maybe(tf, config.exposure, lambda x, k: _exposure(tf, x, k), image, exposure)
    image = _maybe(tf, config.night, lambda x, k: _night(tf, x, k), image, night)
    image = _maybe(tf, config.rain, lambda x, k: _rain(tf, x, k), image, rain)
    return tf.clip_by_value(image, -1.0, 127.0 / 128.0)
