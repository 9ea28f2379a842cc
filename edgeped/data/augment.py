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
        return cls(flip=0.0, shift_px=0, exposure=0.0, night=0.0, rain=0.0, blur=0.0,
                   metadata_dropout=0.0)


def _maybe(tf, p: float, fn, image):
    if p <= 0:
        return image
    return tf.cond(tf.random.uniform([]) < p, lambda: fn(image), lambda: image)


def _night(tf, image):
    u8ish = (image + 1.0) * tf.random.uniform([], 0.3, 0.6) - 1.0
    return u8ish + tf.random.normal(tf.shape(image), stddev=0.06)


def _rain(tf, image):
    gray = tf.reduce_mean(image)
    image = image * 0.75 + gray * 0.25
    seeds = tf.cast(tf.random.uniform(CROP_SHAPE[:2] + (1,)) > 0.992, tf.float32)
    kernel = tf.ones([9, 1, 1, 1]) / 3.0  # vertical streaks, 9 px long
    streaks = tf.nn.depthwise_conv2d(seeds[None], kernel, [1, 1, 1, 1], "SAME")[0]
    return image + 0.5 * streaks


def _blur(tf, image):
    width = tf.random.uniform([], 3, 6, dtype=tf.int32)
    kernel = tf.ones([1, width, 3, 1]) / tf.cast(width, tf.float32)
    return tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "SAME")[0]


def _exposure(tf, image):
    mean = tf.reduce_mean(image)
    contrast = tf.random.uniform([], 0.7, 1.3)
    brightness = tf.random.uniform([], -0.15, 0.15)
    return (image - mean) * contrast + mean + brightness


def augment_image(tf, image, config: AugmentConfig):
    """Applies the enabled augmentations to one normalised HxWxC image."""
    if config.flip:
        image = _maybe(tf, config.flip, tf.image.flip_left_right, image)
    if config.shift_px:
        s = config.shift_px
        padded = tf.pad(image, [[s, s], [s, s], [0, 0]], mode="REFLECT")
        image = tf.image.random_crop(padded, CROP_SHAPE)
    image = _maybe(tf, config.blur, lambda x: _blur(tf, x), image)
    image = _maybe(tf, config.exposure, lambda x: _exposure(tf, x), image)
    image = _maybe(tf, config.night, lambda x: _night(tf, x), image)
    image = _maybe(tf, config.rain, lambda x: _rain(tf, x), image)
    return tf.clip_by_value(image, -1.0, 127.0 / 128.0)
