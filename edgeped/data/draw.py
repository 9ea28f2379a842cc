"""Soft-edged drawing primitives on a 128x64 crop, shared by the synthetic generators.

Every primitive returns a float32 coverage mask in [0, 1] over the whole crop
(anti-aliased by a one-pixel ramp); `paint` alpha-blends a colour through a mask.
Whole-crop masks keep the code vectorised and simple; at 8192 pixels a primitive
costs tens of microseconds.
"""

from __future__ import annotations

import numpy as np

from edgeped.data.schema import CROP_HEIGHT, CROP_WIDTH

H, W = CROP_HEIGHT, CROP_WIDTH
YY, XX = np.mgrid[0:H, 0:W].astype(np.float32)


def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    d = np.sqrt(((XX - cx) / max(rx, 0.5)) ** 2 + ((YY - cy) / max(ry, 0.5)) ** 2)
    return np.clip((1.0 - d) * min(rx, ry) + 0.5, 0.0, 1.0)


def segment(x0: float, y0: float, x1: float, y1: float, width: float) -> np.ndarray:
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy + 1e-6
    t = np.clip(((XX - x0) * dx + (YY - y0) * dy) / length2, 0.0, 1.0)
    dist = np.hypot(XX - (x0 + t * dx), YY - (y0 + t * dy))
    return np.clip(width / 2.0 - dist + 0.5, 0.0, 1.0)


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    mx = np.clip(np.minimum(XX - x0, x1 - XX) + 0.5, 0.0, 1.0)
    my = np.clip(np.minimum(YY - y0, y1 - YY) + 0.5, 0.0, 1.0)
    return mx * my


def ring(cx: float, cy: float, r: float, width: float) -> np.ndarray:
    d = np.hypot(XX - cx, YY - cy)
    return np.clip(width / 2.0 - np.abs(d - r) + 0.5, 0.0, 1.0)


def paint(img: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    """Blends `colour` into `img` through `mask`, in place.

    Only the bounding box of the mask's non-zero pixels is touched: outside it the
    blend is the identity, so the result is bit-identical to blending everywhere.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return
    cols = np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    sub, m = img[box], mask[box][..., None]
    sub *= 1.0 - m
    sub += m * colour


def colour(rng: np.random.Generator, lo: float = 0.05, hi: float = 0.95) -> np.ndarray:
    return rng.uniform(lo, hi, 3).astype(np.float32)


def rain_streak_layers(
    rng: np.random.Generator,
    count: int,
    *,
    streaks: tuple[int, int],
    length: tuple[float, float],
    slant: float,
) -> list[np.ndarray]:
    """`count` masks of rain streaks (a drive's set; crops reuse them shifted).

    Each layer holds `rng.integers(*streaks)` slanted segments of `length` pixels.
    """
    layers = []
    for _ in range(count):
        layer = np.zeros((H, W), np.float32)
        for _ in range(rng.integers(*streaks)):
            x, y = rng.uniform(-10, W), rng.uniform(-20, H)
            n = rng.uniform(*length)
            layer = np.maximum(layer, segment(x, y, x + n * slant, y + n, 1.0))
        layers.append(layer)
    return layers


def box_blur_x(img: np.ndarray, length: float) -> np.ndarray:
    """Horizontal box (motion) blur of `length` pixels of an HxWxC float image.

    A fractional length blends the two neighbouring box kernels; edges repeat.
    """
    k = int(np.floor(length))
    if k < 1:
        return img
    width = img.shape[1]
    frac = length - k
    pad = np.pad(img, ((0, 0), (k + 1, k + 1), (0, 0)), mode="edge")
    c = np.cumsum(pad, axis=1, dtype=np.float32)
    c = np.concatenate([np.zeros_like(c[:, :1]), c], axis=1)
    start = (k + 1) - k // 2
    a = (c[:, start + k : start + k + width] - c[:, start : start + width]) / k
    if frac < 0.05:
        return a
    b = (c[:, start + k + 1 : start + k + 1 + width] - c[:, start : start + width]) / (k + 1)
    return a * (1 - frac) + b * frac
