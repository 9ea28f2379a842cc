"""The suite's former numpy JPEG (encode and decode), kept to compare codecs once.

YCbCr with 4:2:0 chroma, the Annex K quantisation tables of ITU-T T.81 scaled by
libjpeg's quality rule, 8x8 DCT blocks; no entropy coding (it is lossless). A test
keeps it within a few grey levels of Pillow's codec at the same quality.
"""

from __future__ import annotations

import numpy as np

from edgeped.data.schema import CROP_HEIGHT as H
from edgeped.data.schema import CROP_WIDTH as W

# JPEG luminance and chrominance quantisation tables (ITU-T T.81, Annex K).
_Q_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    np.float32,
)
_Q_CHROMA = np.full((8, 8), 99, np.float32)
_Q_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]
_DCT = np.array(
    [
        [
            (np.sqrt(1 / 8) if k == 0 else 0.5) * np.cos((2 * n + 1) * k * np.pi / 16)
            for n in range(8)
        ]
        for k in range(8)
    ],
    np.float32,
)


def _quant_table(base: np.ndarray, quality: int) -> np.ndarray:
    """The libjpeg quality scaling of a base table."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((base * scale + 50) / 100), 1, 255).astype(np.float32)


def _jpeg_plane(plane: np.ndarray, table: np.ndarray) -> np.ndarray:
    """8x8 DCT, quantise, dequantise, inverse DCT of one plane (sides divisible by 8)."""
    h, w = plane.shape
    blocks = plane.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3) - 128.0
    coef = _DCT @ blocks @ _DCT.T
    coef = np.round(coef / table) * table
    back = _DCT.T @ coef @ _DCT + 128.0
    return back.transpose(0, 2, 1, 3).reshape(h, w)


def jpeg_roundtrip(rgb_u8: np.ndarray, quality: int) -> np.ndarray:
    """Baseline JPEG (YCbCr, 4:2:0 chroma, Annex K tables) encode+decode in numpy."""
    x = rgb_u8.astype(np.float32)
    y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    cb = 128 - 0.168736 * x[..., 0] - 0.331264 * x[..., 1] + 0.5 * x[..., 2]
    cr = 128 + 0.5 * x[..., 0] - 0.418688 * x[..., 1] - 0.081312 * x[..., 2]
    y = _jpeg_plane(y, _quant_table(_Q_LUMA, quality))
    chroma = []
    for c in (cb, cr):
        small = c.reshape(H // 2, 2, W // 2, 2).mean(axis=(1, 3))
        small = np.pad(small, ((0, (-small.shape[0]) % 8), (0, (-small.shape[1]) % 8)), "edge")
        small = _jpeg_plane(small, _quant_table(_Q_CHROMA, quality))[: H // 2, : W // 2]
        chroma.append(np.repeat(np.repeat(small, 2, 0), 2, 1))
    cb, cr = chroma
    rgb = np.stack(
        [
            y + 1.402 * (cr - 128),
            y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
            y + 1.772 * (cb - 128),
        ],
        axis=-1,
    )
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
