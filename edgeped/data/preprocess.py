"""The rule from a uint8 crop and raw metadata to model inputs (numpy side).

image, one of two rules (the model card names which; a card without a name is "fixed"):
- "fixed": x = (u8 - 128) / 128, in [-1, 127/128]. An int8 model whose input has
  scale 1/128 and zero point 0 therefore takes q = u8 - 128 exactly.
- "standardize": each crop is standardised per colour channel,
  x = clip((u8 - mean_c) / max(std_c, 4) / 2, -2, 2), with mean_c and std_c that crop's
  channel mean and standard deviation. Exposure, fog, low light and white balance mostly
  scale and offset a crop's intensities per channel; this rule takes that out before the
  model sees the crop. The statistics come from exact integer sums and float64
  arithmetic, and the rule is applied as one 256-entry table per channel, so the host
  and every ARM board compute the same tensor bit for bit (the device runner holds the
  twin of `standardize_tables`).
metadata: z = clip((value - mean) / std, -clip, clip), NaN -> z = 0 (the train
mean), and a mask of 1 where the value was present; the model input is
concat(z, mask), 12 floats. mean/std are the train split's, from the manifest.
The TensorFlow twin of this lives in `edgeped.data.pipeline`; a test keeps them equal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeped.data.schema import METADATA_FIELDS, NUM_METADATA

PIXEL_OFFSET = 128.0
PIXEL_SCALE = 128.0
META_INPUT_WIDTH = 2 * NUM_METADATA
IMAGE_RULES = ("fixed", "standardize")
# "standardize": a crop's channel std below this (in u8 levels) is taken as this, so a flat
# wall's sensor noise is not stretched to full contrast; the result is halved and clipped
# so that almost every value lies in [-2, 2].
STD_FLOOR = 4.0
STD_OUT_SCALE = 0.5
STD_OUT_CLIP = 2.0
_LEVELS = np.arange(256, dtype=np.float64)
# The image input range a QAT model's input quantiser is pinned to, per rule: int8 scale
# 1/128 (q = u8 - 128) for "fixed", 1/64 for "standardize" (q = round(64 x)), zero point 0.
IMAGE_INPUT_RANGES = {"fixed": (-1.0, 127.0 / 128.0), "standardize": (-2.0, 127.0 / 64.0)}


def channel_stats(images_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per crop and channel mean and std of (N, H, W, 3) uint8, from exact integer sums.

    Returns float64 arrays (N, 3); the same bits on any machine.
    """
    n = images_u8.shape[0]
    flat = images_u8.reshape(n, -1, images_u8.shape[-1])
    count = flat.shape[1]
    total = flat.sum(axis=1, dtype=np.int64)
    squares = np.einsum("npc,npc->nc", flat, flat, dtype=np.int64)
    mean = total.astype(np.float64) / count
    var = (squares * count - total * total).astype(np.float64) / (float(count) * count)
    return mean, np.sqrt(np.maximum(var, 0.0))


def standardize_tables(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The float32 value of every u8 level per crop and channel: (N, 3, 256)."""
    inv = STD_OUT_SCALE / np.maximum(std, STD_FLOOR)
    x = (_LEVELS[None, None, :] - mean[..., None]) * inv[..., None]
    return np.clip(x, -STD_OUT_CLIP, STD_OUT_CLIP).astype(np.float32)


def apply_tables(images_u8: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Looks every pixel up in its crop's channel table: (N, H, W, 3) of the table's dtype."""
    n, channels = images_u8.shape[0], images_u8.shape[-1]
    offsets = (np.arange(n)[:, None] * channels + np.arange(channels)[None, :]) * 256
    index = images_u8.astype(np.intp) + offsets[:, None, None, :]
    return tables.reshape(-1)[index]


@dataclass(frozen=True)
class Preprocessing:
    """Standardisation parameters that travel with a model (in its model card)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    clip: float = 4.0
    image_rule: str = "fixed"

    def __post_init__(self) -> None:
        if self.image_rule not in IMAGE_RULES:
            raise ValueError(f"image_rule must be one of {IMAGE_RULES}, got {self.image_rule!r}")
        if len(self.mean) != NUM_METADATA or len(self.std) != NUM_METADATA:
            raise ValueError(
                f"mean and std need {NUM_METADATA} values, got {len(self.mean)} and {len(self.std)}"
            )
        if any(not np.isfinite(s) or s <= 0 for s in self.std):
            raise ValueError(f"std values must be finite and > 0, got {self.std}")
        if any(not np.isfinite(m) for m in self.mean):
            raise ValueError(f"mean values must be finite, got {self.mean}")
        if self.clip <= 0:
            raise ValueError(f"clip must be > 0, got {self.clip}")

    @classmethod
    def from_manifest_stats(cls, stats: dict, image_rule: str = "fixed") -> Preprocessing:
        return cls(
            mean=tuple(float(v) for v in stats["mean"]),
            std=tuple(float(v) for v in stats["std"]),
            image_rule=image_rule,
        )

    def image_section(self) -> dict:
        """The card's description of the image rule (what the device runner reads)."""
        section = {
            "layout": "NHWC",
            "channels": "RGB",
            "dtype_in": "uint8",
            "rule": self.image_rule,
        }
        if self.image_rule == "standardize":
            return {
                **section,
                "float_rule": f"per crop and channel c: x = clip((u8 - mean_c) / "
                f"max(std_c, {STD_FLOOR:g}) * {STD_OUT_SCALE:g}, -{STD_OUT_CLIP:g}, "
                f"{STD_OUT_CLIP:g}); mean_c, std_c from exact integer sums, float64",
                "int8_rule": "q = clip(round(x / input_scale) + input_zero_point, -128, 127), "
                "x rounded to float32 first",
                "std_floor": STD_FLOOR,
                "out_scale": STD_OUT_SCALE,
                "out_clip": STD_OUT_CLIP,
            }
        return {
            **section,
            "float_rule": "x = (u8 - 128) / 128",
            "int8_rule": "q = round(x / input_scale) + input_zero_point; "
            "with scale 1/128 and zero point 0 this is q = u8 - 128",
        }

    def to_dict(self) -> dict:
        meta = asdict(self)
        meta.pop("image_rule")
        return {
            "image": self.image_section(),
            "metadata": {
                "fields": list(METADATA_FIELDS),
                **meta,
                "rule": "z = clip((v - mean) / std, -clip, clip); missing (NaN): z = 0, "
                "mask = 0; input = concat(z, mask)",
            },
        }

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        meta = data["metadata"]
        image = data.get("image") or {}
        return cls(
            mean=tuple(meta["mean"]),
            std=tuple(meta["std"]),
            clip=float(meta["clip"]),
            image_rule=str(image.get("rule", "fixed")),
        )

    def image(self, images_u8: np.ndarray) -> np.ndarray:
        """uint8 crops (N, H, W, 3) -> the float32 image input."""
        if self.image_rule == "standardize":
            return apply_tables(images_u8, standardize_tables(*channel_stats(images_u8)))
        return (images_u8.astype(np.float32) - PIXEL_OFFSET) / PIXEL_SCALE

    def metadata(self, metadata: np.ndarray) -> np.ndarray:
        meta = np.asarray(metadata, np.float32)
        present = ~np.isnan(meta)
        z = (meta - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        z = np.where(present, np.clip(z, -self.clip, self.clip), 0.0).astype(np.float32)
        return np.concatenate([z, present.astype(np.float32)], axis=1)
