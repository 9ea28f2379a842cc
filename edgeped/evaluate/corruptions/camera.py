"""What the corruption families share: the camera's gamma and noise model, the metadata
they move, and the kernels and resampling they draw with (numpy only)."""

from __future__ import annotations

import numpy as np

from edgeped.data.schema import CROP_HEIGHT as H
from edgeped.data.schema import CROP_WIDTH as W
from edgeped.data.schema import METADATA_FIELDS

GAMMA = 2.2
SPEED, YAW, EXPOSURE, TOD_SIN, TOD_COS, GAIN = (
    METADATA_FIELDS.index(f)
    for f in ("speed_mps", "yaw_rate_rps", "exposure_ms", "tod_sin", "tod_cos", "analog_gain_db")
)
# Sensor noise model, in linear units of full scale before the analog gain:
# variance = SHOT * signal + READ ** 2, then everything is multiplied by the gain.
SHOT = 0.0008
READ = 0.003
MAX_EXPOSURE_MS = 33.0  # one frame at 30 fps
YY, XX = np.mgrid[0:H, 0:W].astype(np.float32)


def to_linear(u8: np.ndarray) -> np.ndarray:
    return (u8.astype(np.float32) / 255.0) ** GAMMA


def to_u8(lin: np.ndarray) -> np.ndarray:
    return np.clip(np.clip(lin, 0, 1) ** (1 / GAMMA) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def set_reading(meta: np.ndarray, field: int, value: float) -> None:
    if not np.isnan(meta[field]):
        meta[field] = value


def add_gain(meta: np.ndarray, gain_db: float) -> None:
    set_reading(meta, GAIN, float(meta[GAIN]) + gain_db)


def scale_exposure(meta: np.ndarray, factor: float) -> None:
    set_reading(meta, EXPOSURE, min(float(meta[EXPOSURE]) * factor, MAX_EXPOSURE_MS))


def night_clock(meta: np.ndarray, hour: float = 23.0) -> None:
    angle = 2 * np.pi * hour / 24.0
    set_reading(meta, TOD_SIN, float(np.sin(angle)))
    set_reading(meta, TOD_COS, float(np.cos(angle)))


def sensor(lin: np.ndarray, gain_db: float, rng: np.random.Generator) -> np.ndarray:
    """Shot and read noise on the pre-gain signal, then the analog gain, then row banding."""
    gain = np.float32(10 ** (gain_db / 20))
    sigma = np.sqrt(SHOT * np.clip(lin, 0, None) + READ**2).astype(np.float32)
    out = (lin + sigma * rng.standard_normal(lin.shape, dtype=np.float32)) * gain
    if gain_db > 12:  # row banding of a high-gain readout
        out += (rng.standard_normal((H, 1, 1), dtype=np.float32) * READ * 0.5 * gain).astype(
            np.float32
        )
    return out


def convolve(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D convolution of each channel with a small odd kernel (edge padding), by FFT."""
    ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
    pad = np.pad(img, ((ph, ph), (pw, pw), (0, 0)), mode="edge")
    shape = pad.shape[:2]
    spectrum = np.fft.rfft2(pad, axes=(0, 1)) * np.fft.rfft2(kernel, s=shape)[..., None]
    out = np.fft.irfft2(spectrum, s=shape, axes=(0, 1))
    return out[2 * ph : 2 * ph + H, 2 * pw : 2 * pw + W].astype(np.float32)


def disk(radius: float) -> np.ndarray:
    """An anti-aliased disk kernel (sums to 1)."""
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    k = np.clip(radius + 0.5 - np.sqrt(xx**2 + yy**2), 0, 1)
    return (k / k.sum()).astype(np.float32)


def stamp_segment(
    canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, width: float
) -> None:
    """Max-blends an anti-aliased line from (x0, y0) to (x1, y1) into canvas (H, W), in place."""
    m = width / 2 + 1
    r0, r1 = max(int(min(y0, y1) - m), 0), min(int(max(y0, y1) + m) + 1, H)
    c0, c1 = max(int(min(x0, x1) - m), 0), min(int(max(x0, x1) + m) + 1, W)
    if r0 >= r1 or c0 >= c1:
        return
    yy, xx = YY[r0:r1, c0:c1], XX[r0:r1, c0:c1]
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
    d = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))
    np.maximum(canvas[r0:r1, c0:c1], np.clip(width / 2 + 0.5 - d, 0, 1), out=canvas[r0:r1, c0:c1])


def smooth_field(coarse: np.ndarray) -> np.ndarray:
    """A coarse (h, w) grid bilinearly stretched over the crop (H, W)."""
    h, w = coarse.shape
    ys = np.clip((np.arange(H) + 0.5) / H * h - 0.5, 0, h - 1)
    xs = np.clip((np.arange(W) + 0.5) / W * w - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x1] * fx
    bottom = coarse[y1][:, x0] * (1 - fx) + coarse[y1][:, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def sample(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear samples of img (h, w, 3) at float pixel coordinates, edges clamped."""
    h, w = img.shape[:2]
    ys = np.clip(ys, 0, h - 1)
    xs = np.clip(xs, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[..., None], (xs - x0)[..., None]
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)
