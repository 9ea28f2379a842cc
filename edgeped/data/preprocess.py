"""The fixed rule from a uint8 crop and raw metadata to model inputs (numpy side).

image: x = (u8 - 128) / 128, in [-1, 127/128]. An int8 model whose input has
scale 1/128 and zero point 0 therefore takes q = u8 - 128 exactly.
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


@dataclass(frozen=True)
class Preprocessing:
    """Standardisation parameters that travel with a model (in its model card)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    clip: float = 4.0

    def __post_init__(self) -> None:
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
    def from_manifest_stats(cls, stats: dict) -> Preprocessing:
        return cls(
            mean=tuple(float(v) for v in stats["mean"]), std=tuple(float(v) for v in stats["std"])
        )

    def to_dict(self) -> dict:
        return {
            "image": {
                "layout": "NHWC",
                "channels": "RGB",
                "dtype_in": "uint8",
                "float_rule": "x = (u8 - 128) / 128",
                "int8_rule": "q = round(x / input_scale) + input_zero_point; "
                "with scale 1/128 and zero point 0 this is q = u8 - 128",
            },
            "metadata": {
                "fields": list(METADATA_FIELDS),
                **asdict(self),
                "rule": "z = clip((v - mean) / std, -clip, clip); missing (NaN): z = 0, "
                "mask = 0; input = concat(z, mask)",
            },
        }

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        meta = data["metadata"]
        return cls(mean=tuple(meta["mean"]), std=tuple(meta["std"]), clip=float(meta["clip"]))

    def image(self, images_u8: np.ndarray) -> np.ndarray:
        return (images_u8.astype(np.float32) - PIXEL_OFFSET) / PIXEL_SCALE

    def metadata(self, metadata: np.ndarray) -> np.ndarray:
        meta = np.asarray(metadata, np.float32)
        present = ~np.isnan(meta)
        z = (meta - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        z = np.where(present, np.clip(z, -self.clip, self.clip), 0.0).astype(np.float32)
        return np.concatenate([z, present.astype(np.float32)], axis=1)
