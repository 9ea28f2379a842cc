"""The families added beside the first ten (docs/robustness.md, "The extended suite")."""

from __future__ import annotations

import numpy as np

# The first ten register first: the suite's order is theirs, then these.
import edgeped.evaluate.corruptions.original  # noqa: F401
from edgeped.evaluate.corruptions.camera import (
    SPEED,
    XX,
    YY,
    H,
    W,
    add_gain,
    convolve,
    disk,
    sample,
    sensor,
    stamp_segment,
)
from edgeped.evaluate.corruptions.registry import corruption, table


@corruption(
    "sensor_noise",
    models="a high analog gain at normal brightness (a small aperture, a cheap sensor, heat): "
    "shot and read noise amplified, the picture otherwise intact",
    metadata="analog_gain_db += gain_db",
    related_augmentation="noise (gain 0-18 dB at normal exposure); dark",
    augment_keys=("noise", "dark"),
    severities=table(gain_db=(6.0, 10.0, 14.0, 18.0, 22.0)),
)
def _sensor_noise(lin, meta, rng, p):
    add_gain(meta, p["gain_db"])
    gain = np.float32(10 ** (p["gain_db"] / 20))
    return sensor(lin / gain, p["gain_db"], rng)


@corruption(
    "contrast",
    models="flat light or a dirty windscreen: contrast falls evenly towards the crop's mean",
    related_augmentation="tone (gamma 0.5-2, black/white level shift); exposure; haze",
    augment_keys=("tone", "exposure", "haze"),
    severities=table(contrast=(0.7, 0.55, 0.4, 0.3, 0.2)),
)
def _contrast(lin, meta, rng, p):
    level = float(lin.mean())
    return lin * p["contrast"] + level * (1 - p["contrast"])


@corruption(
    "snow",
    models="falling snow: bright flakes streaked by speed, a brighter and flatter scene",
    related_augmentation="speckle (bright or dark flakes over a hazier scene)",
    augment_keys=("speckle",),
    severities=table(
        flakes=(40, 80, 130, 190, 260),
        flake_px=(1.0, 1.3, 1.6, 2.0, 2.4),
        brighten=(0.05, 0.1, 0.15, 0.2, 0.25),
        contrast=(0.9, 0.82, 0.74, 0.66, 0.58),
    ),
)
def _snow(lin, meta, rng, p):
    level = float(lin.mean())
    out = lin * p["contrast"] + (level + p["brighten"]) * (1 - p["contrast"]) + p["brighten"] * 0.5
    speed = 10.0 if np.isnan(meta[SPEED]) else float(meta[SPEED])
    drift = 0.05 * speed  # flakes streak sideways with the car's speed
    flakes = np.zeros((H, W), np.float32)
    for _ in range(p["flakes"]):
        x, y = rng.uniform(-4, W + 4), rng.uniform(-4, H + 4)
        size = p["flake_px"] * rng.uniform(0.6, 1.4)
        stamp_segment(flakes, x, y, x + drift * size, y + size, size)
    return out * (1 - flakes[..., None]) + flakes[..., None] * rng.uniform(0.75, 1.0)


@corruption(
    "near_ir",
    models="a near-infrared or monochrome night mode: colour gone, red-heavy brightness "
    "(skin and foliage bright)",
    severities=table(mix=(0.25, 0.5, 0.75, 1.0, 1.0), red_weight=(0.5, 0.5, 0.6, 0.7, 0.85)),
)
def _near_ir(lin, meta, rng, p):
    r = p["red_weight"]
    weights = np.array([r, (1 - r) * 0.75, (1 - r) * 0.25], np.float32)
    mono = (lin @ weights)[..., None]
    return lin * (1 - p["mix"]) + np.repeat(mono, 3, axis=2) * p["mix"]


@corruption(
    "misalign",
    models="a loose proposal box: the first stage's box shifted and scaled against the person",
    related_augmentation="shift_px (+/-4 px framing jitter); zoom (x1.0-1.25); reframe "
    "(shift <= 20%, scale x/÷ 1.3)",
    augment_keys=("shift_px", "zoom", "reframe"),
    severities=table(
        shift=(0.05, 0.1, 0.15, 0.2, 0.25),
        scale=(0.05, 0.1, 0.15, 0.2, 0.3),
    ),
)
def _misalign(lin, meta, rng, p):
    angle = rng.uniform(0, 2 * np.pi)
    dy, dx = p["shift"] * H * np.sin(angle), p["shift"] * W * np.cos(angle)
    zoom = float(np.exp(rng.choice([-1.0, 1.0]) * np.log1p(p["scale"])))  # box x or / (1+s)
    ys = (YY - H / 2 + 0.5) / zoom + H / 2 - 0.5 + dy
    xs = (XX - W / 2 + 0.5) / zoom + W / 2 - 0.5 + dx
    return sample(lin, ys, xs)


@corruption(
    "pixelate",
    models="a far pedestrian: the crop upsampled from fewer pixels than the model's input",
    severities=table(factor=(1.5, 2.0, 2.5, 3.0, 4.0)),
)
def _pixelate(lin, meta, rng, p):
    f = p["factor"]
    h, w = max(int(round(H / f)), 2), max(int(round(W / f)), 2)
    # Anti-aliased down to (h, w) as a camera's optics and resize would, then bilinear back.
    soft = convolve(lin, disk(f / 2))
    sy = (np.arange(h, dtype=np.float32) + 0.5) * H / h - 0.5
    sx = (np.arange(w, dtype=np.float32) + 0.5) * W / w - 0.5
    yy, xx = np.meshgrid(sy, sx, indexing="ij")
    small = sample(soft, yy, xx)
    ys = (YY + 0.5) * h / H - 0.5
    xs = (XX + 0.5) * w / W - 0.5
    return sample(small, ys, xs)
