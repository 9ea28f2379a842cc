"""Proposal windows from annotated boxes: positives, jittered copies, near misses, background.

Boxes and windows are (x0, y0, x1, y1) floats in frame pixels. The rules (what the
tests hold every window to):

- positive window: the person box grown by `margin` of its height above and below
  (default 0.15, so the person fills 1/1.3 = 77% of the crop height, as the
  synthetic sets do), width = height / 2 (the 2:1 crop), same centre. Boxes shorter
  than `min_height` give no positive; they still count as people for the rules below.
- jitter copy: the positive window with its centre moved by N(0, jitter_shift x
  height) and its size scaled by exp(N(0, jitter_scale)), kept only if its IoU with
  the positive window is >= `jitter_min_iou` (0.6), like a proposal that is a bit off.
- near-miss negative: a window whose highest IoU with any person's positive window is
  inside the band [0.1, 0.3] and that holds at most half (`coverage` <= 0.5) of any
  person box. Below 0.1 it is ordinary background; at 0.3 and above, the usual
  detection rule starts to call it a match (0.5 is "the same person"), so 0.3 keeps
  a margin from any window a detector would count as a hit.
- background negative: highest IoU with every person window <= 0.05, coverage
  of every person box <= 0.1, and at most 15% of the window's own area inside
  person boxes (`fill`), so an annotated person is never more than a sliver of it,
  whether the window is larger than the person or a close-up of a part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class WindowRules:
    margin: float = 0.15
    min_height: float = 50.0
    jitter_shift: float = 0.04
    jitter_scale: float = 0.08
    jitter_min_iou: float = 0.6
    near_miss_iou: tuple[float, float] = (0.1, 0.3)
    near_miss_max_coverage: float = 0.5
    background_max_iou: float = 0.05
    background_max_coverage: float = 0.1
    background_max_fill: float = 0.15

    def __post_init__(self) -> None:
        if not 0 <= self.margin <= 1:
            raise ValueError(f"margin must be in [0, 1], got {self.margin}")
        if self.min_height < 8:
            raise ValueError(f"min_height must be >= 8 pixels, got {self.min_height}")
        lo, hi = self.near_miss_iou
        if not 0 < lo < hi < 0.5:
            raise ValueError(
                f"near_miss_iou must be (lo, hi) with 0 < lo < hi < 0.5, got {self.near_miss_iou}"
            )
        if not 0 < self.jitter_min_iou <= 1:
            raise ValueError(f"jitter_min_iou must be in (0, 1], got {self.jitter_min_iou}")
        for name in (
            "near_miss_max_coverage",
            "background_max_iou",
            "background_max_coverage",
            "background_max_fill",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


def iou(a: Box, b: np.ndarray) -> np.ndarray:
    """IoU of box `a` with each row of `b` (N, 4)."""
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = iw * ih
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def coverage(window: Box, boxes: np.ndarray) -> np.ndarray:
    """Share of each box's area (rows of `boxes`) that lies inside `window`."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(window[2], b[:, 2]) - np.maximum(window[0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(window[3], b[:, 3]) - np.maximum(window[1], b[:, 1]), 0, None)
    return iw * ih / np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-9)


def fill(window: Box, boxes: np.ndarray) -> float:
    """Share of the window's area inside the union of `boxes` (rasterised on a 32x16 grid)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if b.size == 0:
        return 0.0
    x0, y0, x1, y1 = window
    xs = x0 + (np.arange(16) + 0.5) * (x1 - x0) / 16
    ys = y0 + (np.arange(32) + 0.5) * (y1 - y0) / 32
    inside = (
        (xs[None, None, :] >= b[:, 0, None, None])
        & (xs[None, None, :] < b[:, 2, None, None])
        & (ys[None, :, None] >= b[:, 1, None, None])
        & (ys[None, :, None] < b[:, 3, None, None])
    )
    return float(inside.any(axis=0).mean())


def window_from_box(box: Box, margin: float) -> Box:
    """The 2:1 (height:width) positive window around a person box."""
    x0, y0, x1, y1 = box
    h = (y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (cx - h / 4, cy - h / 2, cx + h / 4, cy + h / 2)


def _window(cx: float, cy: float, h: float) -> Box:
    return (cx - h / 4, cy - h / 2, cx + h / 4, cy + h / 2)


def jitter_windows(
    box: Box, rules: WindowRules, rng: np.random.Generator, copies: int, max_tries: int = 50
) -> list[Box]:
    """Up to `copies` proposal-noise copies of a positive window (IoU >= jitter_min_iou)."""
    base = window_from_box(box, rules.margin)
    h = base[3] - base[1]
    cx, cy = (base[0] + base[2]) / 2, (base[1] + base[3]) / 2
    out: list[Box] = []
    for _ in range(max_tries):
        if len(out) >= copies:
            break
        w = _window(
            cx + rng.normal(0, rules.jitter_shift * h),
            cy + rng.normal(0, rules.jitter_shift * h),
            h * float(np.exp(rng.normal(0, rules.jitter_scale))),
        )
        if iou(w, np.array([base]))[0] >= rules.jitter_min_iou:
            out.append(w)
    return out


def is_near_miss(
    window: Box, person_windows: np.ndarray, person_boxes: np.ndarray, rules: WindowRules
) -> bool:
    lo, hi = rules.near_miss_iou
    best = iou(window, person_windows).max(initial=0.0)
    return bool(
        lo <= best <= hi
        and coverage(window, person_boxes).max(initial=0.0) <= rules.near_miss_max_coverage
    )


def is_background(
    window: Box, person_windows: np.ndarray, person_boxes: np.ndarray, rules: WindowRules
) -> bool:
    return bool(
        iou(window, person_windows).max(initial=0.0) <= rules.background_max_iou
        and coverage(window, person_boxes).max(initial=0.0) <= rules.background_max_coverage
        and fill(window, person_boxes) <= rules.background_max_fill
    )


def near_miss_windows(
    box: Box,
    person_boxes: np.ndarray,
    rules: WindowRules,
    rng: np.random.Generator,
    count: int,
    frame_size: tuple[int, int],
    max_tries: int = 200,
) -> list[Box]:
    """Up to `count` windows beside, above/below or at the wrong scale of one person.

    Every window returned satisfies `is_near_miss` against ALL people in the frame
    and keeps its centre inside the frame.
    """
    person_windows = np.array([window_from_box(b, rules.margin) for b in person_boxes]).reshape(
        -1, 4
    )
    base = window_from_box(box, rules.margin)
    h = base[3] - base[1]
    cx, cy = (base[0] + base[2]) / 2, (base[1] + base[3]) / 2
    width, height = frame_size
    out: list[Box] = []
    for _ in range(max_tries):
        if len(out) >= count:
            break
        scale = float(np.exp(rng.uniform(-0.7, 0.7)))
        dx = rng.choice([-1, 1]) * rng.uniform(0.2, 0.75) * h / 2
        dy = rng.normal(0, 0.2) * h
        w = _window(cx + dx, cy + dy, h * scale)
        wcx, wcy = (w[0] + w[2]) / 2, (w[1] + w[3]) / 2
        if not (0 <= wcx < width and 0 <= wcy < height):
            continue
        if is_near_miss(w, person_windows, person_boxes, rules):
            out.append(w)
    return out


def background_windows(
    person_boxes: np.ndarray,
    rules: WindowRules,
    rng: np.random.Generator,
    count: int,
    frame_size: tuple[int, int],
    heights: tuple[float, float],
    max_tries: int = 400,
) -> list[Box]:
    """Up to `count` windows inside the frame that avoid every person (`is_background`)."""
    person_windows = np.array([window_from_box(b, rules.margin) for b in person_boxes]).reshape(
        -1, 4
    )
    width, height = frame_size
    lo, hi = heights
    hi = min(hi, float(height), 2.0 * width)
    out: list[Box] = []
    if hi < lo:
        return out
    for _ in range(max_tries):
        if len(out) >= count:
            break
        h = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        x0, y0 = rng.uniform(0, width - h / 2), rng.uniform(0, height - h)
        w = (x0, y0, x0 + h / 2, y0 + h)
        if is_background(w, person_windows, person_boxes, rules):
            out.append(w)
    return out


def extract_crop(frame: np.ndarray, window: Box, size: tuple[int, int] = (64, 128)) -> np.ndarray:
    """Resamples a window of an (H, W, 3) uint8 frame to a (128, 64, 3) crop.

    Parts of the window outside the frame repeat the edge pixels (as a camera
    pipeline pads a proposal at the image border). Downscaling is antialiased.
    """
    from PIL import Image

    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = window
    ix0, iy0 = int(np.floor(x0)), int(np.floor(y0))
    ix1, iy1 = int(np.ceil(x1)), int(np.ceil(y1))
    sub = frame[max(iy0, 0) : min(iy1, fh), max(ix0, 0) : min(ix1, fw)]
    if sub.size == 0:
        raise ValueError(f"window {window} lies outside the {fw}x{fh} frame")
    pad = ((max(0, -iy0), max(0, iy1 - fh)), (max(0, -ix0), max(0, ix1 - fw)), (0, 0))
    if any(p for pair in pad for p in pair):
        sub = np.pad(sub, pad, mode="edge")
    image = Image.fromarray(np.ascontiguousarray(sub))
    out = image.resize(
        size, Image.Resampling.BILINEAR, box=(x0 - ix0, y0 - iy0, x1 - ix0, y1 - iy0)
    )
    return np.asarray(out, np.uint8)
