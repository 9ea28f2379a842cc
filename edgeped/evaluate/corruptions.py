"""Common corruptions of a vehicle camera, graded in 5 severities (numpy only).

Each corruption turns a uint8 RGB crop and its six metadata values into a corrupted
crop and the metadata the camera would have recorded for it: more gain in low light,
a longer exposure when over-exposed, night time under headlights, the speed that
explains a motion blur. A metadata value that was missing (NaN) stays missing: a
corruption never invents a sensor reading the record lacked.

Every draw comes from a random stream seeded by (suite seed, corruption, severity,
crop id), so a crop is corrupted the same way in any batch, order or process.
Photometric work happens on linear light (`u8 / 255` to the power 2.2) and goes
back through the same gamma. The parameter of every severity is data
(`Corruption.severities`); `docs/robustness.md` shows them as tables, and a test
keeps the two equal.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeped.data.draw import box_blur_x
from edgeped.data.schema import CROP_HEIGHT as H
from edgeped.data.schema import CROP_WIDTH as W
from edgeped.data.schema import METADATA_FIELDS
from edgeped.errors import EdgepedError

SEVERITIES = (1, 2, 3, 4, 5)
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
_YY, _XX = np.mgrid[0:H, 0:W].astype(np.float32)

Apply = Callable[[np.ndarray, np.ndarray, np.random.Generator, dict[str, Any]], np.ndarray]


@dataclass(frozen=True)
class Corruption:
    """One corruption: what it models, its parameters per severity, and the code."""

    name: str
    models: str  # one line: what a vehicle camera sees that this imitates
    metadata: str  # how the metadata moves ("" = it does not)
    severities: tuple[dict[str, Any], ...]  # severity s uses severities[s - 1]
    related_augmentation: str  # the training augmentation closest to it ("" = none)
    apply: Apply  # (linear image HxWx3 float32, metadata (6,), rng, params) -> linear image
    # The [augment] keys whose training augmentation imitates this shift: with any of them
    # on, the family counts as trained on, otherwise as held out (see `family_split`).
    augment_keys: tuple[str, ...] = ()

    def params(self, severity: int) -> dict[str, Any]:
        if severity not in SEVERITIES:
            raise EdgepedError(
                f"severity {severity!r} is not one of {SEVERITIES}", "use a severity from 1 to 5"
            )
        return self.severities[severity - 1]


CORRUPTIONS: dict[str, Corruption] = {}


def corruption(
    name: str,
    *,
    models: str,
    severities: tuple[dict[str, Any], ...],
    metadata: str = "",
    related_augmentation: str = "",
    augment_keys: tuple[str, ...] = (),
) -> Callable[[Apply], Apply]:
    """Registers a corruption under `name` with its 5 severity parameter sets."""

    def register(fn: Apply) -> Apply:
        if name in CORRUPTIONS:
            raise ValueError(f"corruption {name!r} is already registered")
        if len(severities) != len(SEVERITIES):
            raise ValueError(f"corruption {name!r} needs {len(SEVERITIES)} severities")
        CORRUPTIONS[name] = Corruption(
            name, models, metadata, severities, related_augmentation, fn, augment_keys
        )
        return fn

    return register


def _table(**columns: tuple) -> tuple[dict[str, Any], ...]:
    """Columns of parameter values (one per severity) -> one dict per severity."""
    return tuple(
        dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)
    )


# --- shared pieces ---------------------------------------------------------------------


def _set(meta: np.ndarray, field: int, value: float) -> None:
    if not np.isnan(meta[field]):
        meta[field] = value


def _add_gain(meta: np.ndarray, gain_db: float) -> None:
    _set(meta, GAIN, float(meta[GAIN]) + gain_db)


def _scale_exposure(meta: np.ndarray, factor: float) -> None:
    _set(meta, EXPOSURE, min(float(meta[EXPOSURE]) * factor, MAX_EXPOSURE_MS))


def _night_clock(meta: np.ndarray, hour: float = 23.0) -> None:
    angle = 2 * np.pi * hour / 24.0
    _set(meta, TOD_SIN, float(np.sin(angle)))
    _set(meta, TOD_COS, float(np.cos(angle)))


def _sensor(lin: np.ndarray, gain_db: float, rng: np.random.Generator) -> np.ndarray:
    """Shot and read noise on the pre-gain signal, then the analog gain, then row banding."""
    gain = np.float32(10 ** (gain_db / 20))
    sigma = np.sqrt(SHOT * np.clip(lin, 0, None) + READ**2).astype(np.float32)
    out = (lin + sigma * rng.standard_normal(lin.shape, dtype=np.float32)) * gain
    if gain_db > 12:  # row banding of a high-gain readout
        out += (rng.standard_normal((H, 1, 1), dtype=np.float32) * READ * 0.5 * gain).astype(
            np.float32
        )
    return out


def _convolve(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D convolution of each channel with a small odd kernel (edge padding), by FFT."""
    ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
    pad = np.pad(img, ((ph, ph), (pw, pw), (0, 0)), mode="edge")
    shape = pad.shape[:2]
    spectrum = np.fft.rfft2(pad, axes=(0, 1)) * np.fft.rfft2(kernel, s=shape)[..., None]
    out = np.fft.irfft2(spectrum, s=shape, axes=(0, 1))
    return out[2 * ph : 2 * ph + H, 2 * pw : 2 * pw + W].astype(np.float32)


def _disk(radius: float) -> np.ndarray:
    """An anti-aliased disk kernel (sums to 1)."""
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    k = np.clip(radius + 0.5 - np.sqrt(xx**2 + yy**2), 0, 1)
    return (k / k.sum()).astype(np.float32)


def _stamp_segment(
    canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, width: float
) -> None:
    """Max-blends an anti-aliased line from (x0, y0) to (x1, y1) into canvas (H, W), in place."""
    m = width / 2 + 1
    r0, r1 = max(int(min(y0, y1) - m), 0), min(int(max(y0, y1) + m) + 1, H)
    c0, c1 = max(int(min(x0, x1) - m), 0), min(int(max(x0, x1) + m) + 1, W)
    if r0 >= r1 or c0 >= c1:
        return
    yy, xx = _YY[r0:r1, c0:c1], _XX[r0:r1, c0:c1]
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
    d = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))
    np.maximum(canvas[r0:r1, c0:c1], np.clip(width / 2 + 0.5 - d, 0, 1), out=canvas[r0:r1, c0:c1])


def _smooth_field(coarse: np.ndarray) -> np.ndarray:
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


# --- the suite -------------------------------------------------------------------------


@corruption(
    "low_light",
    models="too little light: the camera raises analog gain, so the crop is dark and noisy",
    metadata="analog_gain_db += gain_db; exposure_ms x exposure_factor (capped at 33 ms)",
    related_augmentation="night (darken x0.3-0.6 + noise); dark (light x0.01-0.5 + noise); "
    "light (uneven light)",
    augment_keys=("night", "dark", "light"),
    severities=_table(
        light=(0.3, 0.12, 0.05, 0.02, 0.008),
        gain_db=(3.0, 6.0, 9.0, 12.0, 15.0),
        exposure_factor=(1.2, 1.4, 1.6, 1.8, 2.0),
    ),
)
def _low_light(lin, meta, rng, p):
    _add_gain(meta, p["gain_db"])
    _scale_exposure(meta, p["exposure_factor"])
    return _sensor(lin * (p["light"] * p["exposure_factor"]), p["gain_db"], rng)


@corruption(
    "headlight",
    models="night lit by the ego headlights: bright lower body, dark head, vignetting, noise",
    metadata="time of day -> 23:00; analog_gain_db += gain_db; exposure_ms x 2 (capped at 33 ms)",
    related_augmentation="night (darken x0.3-0.6 + noise); light (a smooth random light field, "
    "gain, noise)",
    augment_keys=("night", "light"),
    severities=_table(
        ambient=(0.12, 0.07, 0.04, 0.025, 0.015),
        beam=(0.7, 0.5, 0.35, 0.25, 0.18),
        beam_top=(0.25, 0.35, 0.45, 0.55, 0.62),
        vignette=(0.2, 0.3, 0.4, 0.5, 0.6),
        gain_db=(6.0, 9.0, 12.0, 15.0, 18.0),
    ),
)
def _headlight(lin, meta, rng, p):
    _night_clock(meta)
    _add_gain(meta, p["gain_db"])
    _scale_exposure(meta, 2.0)
    top = p["beam_top"] * H + rng.uniform(-6, 6)
    beam = np.clip((_YY - top) / max(H - top, 1.0), 0, 1) ** 0.7
    cx = W / 2 + rng.uniform(-0.25, 0.25) * W  # the beam's centre moves with the crop's position
    r2 = ((_XX - cx) / (W * 0.9)) ** 2 + ((_YY - H * 0.75) / (H * 0.9)) ** 2
    light = (p["ambient"] + p["beam"] * beam) * np.clip(1 - p["vignette"] * r2, 0.05, 1)
    amp = 10 ** (-p["gain_db"] / 20) * 2.0  # auto-exposure aims the lit part at mid-grey
    return _sensor(lin * (light * amp)[..., None].astype(np.float32), p["gain_db"], rng)


@corruption(
    "rain",
    models="rain: streaks slanted by speed, lens drops that blur and brighten, lower contrast",
    related_augmentation="rain (contrast loss + vertical streaks); speckle (flakes and drops)",
    augment_keys=("rain", "speckle"),
    severities=_table(
        streaks=(15, 30, 50, 75, 110),
        streak_brightness=(0.15, 0.2, 0.25, 0.3, 0.35),
        drops=(0, 1, 2, 3, 5),
        drop_radius_px=(4.0, 5.0, 6.0, 7.0, 9.0),
        contrast=(0.92, 0.86, 0.8, 0.72, 0.64),
    ),
)
def _rain(lin, meta, rng, p):
    level = float(lin.mean())
    out = lin * p["contrast"] + level * (1 - p["contrast"])
    speed = 10.0 if np.isnan(meta[SPEED]) else float(meta[SPEED])
    slant = 0.15 + 0.03 * speed  # the fleet renderer's rule
    streaks = np.zeros((H, W), np.float32)
    for _ in range(p["streaks"]):
        x, y, length = rng.uniform(-10, W), rng.uniform(-20, H), rng.uniform(6, 18)
        _stamp_segment(streaks, x, y, x + length * slant, y + length, 1.0)
    out = out + streaks[..., None] * (p["streak_brightness"] * (0.5 + level))
    blurred = _convolve(out, _disk(3.0)) if p["drops"] else out
    for _ in range(p["drops"]):
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        r = p["drop_radius_px"] * rng.uniform(0.7, 1.3)
        drop = np.clip(r + 0.5 - np.hypot(_XX - cx, _YY - cy), 0, 1)[..., None]
        out = out * (1 - drop) + drop * (blurred * 0.7 + 0.3 * level * 1.2)
    return out


@corruption(
    "fog",
    models="fog/haze: contrast falls with distance (higher in the crop is farther) to airlight",
    related_augmentation="",
    severities=_table(
        density=(0.35, 0.6, 0.9, 1.3, 1.8),
        airlight=(0.75, 0.75, 0.78, 0.8, 0.82),
    ),
)
def _fog(lin, meta, rng, p):
    patch = _smooth_field(rng.uniform(0.8, 1.2, (4, 2)))  # patchy density
    depth = (1.3 - 0.6 * _YY / H) * patch
    t = np.exp(-p["density"] * depth)[..., None]
    air = p["airlight"] * max(float(lin.mean()) * 1.5, 0.3)
    return lin * t + air * (1 - t)


def motion_blur_px(speed_mps: float, exposure_ms: float) -> float:
    """Blur length in crop pixels from ego speed and exposure (the fleet renderer's rule)."""
    return 0.02 * speed_mps * exposure_ms


@corruption(
    "motion_blur",
    models="ego motion during the exposure: horizontal blur of speed x exposure",
    metadata="speed_mps and exposure_ms set to the values whose blur this is "
    "(blur_px = 0.02 x speed x exposure)",
    related_augmentation="blur (horizontal 3-5 px)",
    augment_keys=("blur",),
    severities=_table(
        blur_px=(2.0, 4.0, 6.0, 9.0, 13.0),
        exposure_ms=(10.0, 12.0, 14.0, 16.0, 20.0),
    ),
)
def _motion_blur(lin, meta, rng, p):
    speed = p["blur_px"] / (0.02 * p["exposure_ms"])
    _set(meta, SPEED, speed)
    _set(meta, EXPOSURE, p["exposure_ms"])
    return box_blur_x(lin, motion_blur_px(speed, p["exposure_ms"]) * rng.uniform(0.9, 1.1))


@corruption(
    "defocus",
    models="out of focus or a dirty lens: a disk blur",
    severities=_table(radius_px=(1.0, 1.5, 2.0, 3.0, 4.0)),
)
def _defocus(lin, meta, rng, p):
    return _convolve(lin, _disk(p["radius_px"]))


@corruption(
    "glare",
    models="over-exposure after a tunnel or into low sun: clipped highlights and veiling glare",
    metadata="exposure_ms x exposure (capped at 33 ms)",
    related_augmentation="exposure (brightness +/-0.15, contrast x0.7-1.3)",
    augment_keys=("exposure",),
    severities=_table(
        exposure=(1.6, 2.2, 3.0, 4.0, 5.5),
        glare=(0.1, 0.2, 0.3, 0.45, 0.6),
    ),
)
def _glare(lin, meta, rng, p):
    _scale_exposure(meta, p["exposure"])
    gx, gy = rng.uniform(-0.2, 1.2) * W, rng.uniform(-0.2, 0.5) * H
    veil = np.exp(-np.hypot(_XX - gx, _YY - gy) / (0.6 * H))[..., None]
    tint = np.array([1.0, 0.97, 0.9], np.float32)
    return lin * p["exposure"] + p["glare"] * veil * tint


@corruption(
    "jpeg",
    models="compression on the camera link or in a recorder: 8x8 blocks, ringing, chroma bleed "
    "(Pillow's libjpeg codec, 4:2:0)",
    severities=_table(quality=(30, 18, 12, 8, 5)),
)
def _jpeg(lin, meta, rng, p):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(to_u8(lin)).save(buffer, format="JPEG", quality=int(p["quality"]))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return to_linear(np.asarray(decoded.convert("RGB"), np.uint8))


@corruption(
    "occlusion",
    models="partial occlusion by a pole in front or a car edge across the lower body",
    related_augmentation="occlude (a flat or noise block over 10-35% of the crop)",
    augment_keys=("occlude",),
    severities=_table(covered=(0.1, 0.17, 0.25, 0.33, 0.42)),
)
def _occlusion(lin, meta, rng, p):
    out = lin.copy()
    tone = rng.uniform(0.02, 0.5) * rng.uniform(0.8, 1.2, 3).astype(np.float32)
    shade = 0.85 + 0.3 * rng.random()
    if rng.random() < 0.5:  # pole: a vertical bar near the centre, shaded across its width
        width = p["covered"] * W
        x0 = W / 2 + rng.normal(0, 6) - width / 2
        mask = np.clip(np.minimum(_XX - x0 + 0.5, x0 + width - _XX + 0.5), 0, 1)
        across = 1 - 0.3 * np.abs((_XX - x0) / max(width, 1) - 0.5)
        colour = tone * (across * shade)[..., None]
    else:  # car edge: a band from the bottom with a rounded top corner and a darker sill
        top = H * (1 - p["covered"])
        corner = rng.uniform(-0.3, 1.3) * W
        curve = 6 * np.exp(-(((_XX - corner) / 10) ** 2))
        mask = np.clip(_YY - (top + curve) + 0.5, 0, 1)
        colour = tone * np.where(_YY > top + 0.8 * (H - top), 0.5, shade)[..., None]
    mask = mask[..., None].astype(np.float32)
    return out * (1 - mask) + colour.astype(np.float32) * mask


@corruption(
    "white_balance",
    models="white-balance error under sodium, LED or overcast light: a colour cast",
    severities=_table(shift=(0.1, 0.2, 0.3, 0.45, 0.6)),
)
def _white_balance(lin, meta, rng, p):
    s = p["shift"] * rng.uniform(0.85, 1.15)
    warm = rng.random() < 0.5
    gains = np.array([1 + s, 1.0, 1 - 0.7 * s] if warm else [1 - 0.6 * s, 1.0, 1 + s], np.float32)
    return lin * gains


# --- shifts added beside the first ten (docs/robustness.md, "The extended suite") --------


def _sample(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
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


@corruption(
    "sensor_noise",
    models="a high analog gain at normal brightness (a small aperture, a cheap sensor, heat): "
    "shot and read noise amplified, the picture otherwise intact",
    metadata="analog_gain_db += gain_db",
    related_augmentation="noise (gain 0-18 dB at normal exposure); dark",
    augment_keys=("noise", "dark"),
    severities=_table(gain_db=(6.0, 10.0, 14.0, 18.0, 22.0)),
)
def _sensor_noise(lin, meta, rng, p):
    _add_gain(meta, p["gain_db"])
    gain = np.float32(10 ** (p["gain_db"] / 20))
    return _sensor(lin / gain, p["gain_db"], rng)


@corruption(
    "contrast",
    models="flat light or a dirty windscreen: contrast falls evenly towards the crop's mean",
    related_augmentation="tone (gamma 0.5-2, black/white level shift); exposure",
    augment_keys=("tone", "exposure"),
    severities=_table(contrast=(0.7, 0.55, 0.4, 0.3, 0.2)),
)
def _contrast(lin, meta, rng, p):
    level = float(lin.mean())
    return lin * p["contrast"] + level * (1 - p["contrast"])


@corruption(
    "snow",
    models="falling snow: bright flakes streaked by speed, a brighter and flatter scene",
    related_augmentation="speckle (bright or dark flakes over a hazier scene)",
    augment_keys=("speckle",),
    severities=_table(
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
        _stamp_segment(flakes, x, y, x + drift * size, y + size, size)
    return out * (1 - flakes[..., None]) + flakes[..., None] * rng.uniform(0.75, 1.0)


@corruption(
    "near_ir",
    models="a near-infrared or monochrome night mode: colour gone, red-heavy brightness "
    "(skin and foliage bright)",
    severities=_table(mix=(0.25, 0.5, 0.75, 1.0, 1.0), red_weight=(0.5, 0.5, 0.6, 0.7, 0.85)),
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
    severities=_table(
        shift=(0.05, 0.1, 0.15, 0.2, 0.25),
        scale=(0.05, 0.1, 0.15, 0.2, 0.3),
    ),
)
def _misalign(lin, meta, rng, p):
    angle = rng.uniform(0, 2 * np.pi)
    dy, dx = p["shift"] * H * np.sin(angle), p["shift"] * W * np.cos(angle)
    zoom = float(np.exp(rng.choice([-1.0, 1.0]) * np.log1p(p["scale"])))  # box x or / (1+s)
    ys = (_YY - H / 2 + 0.5) / zoom + H / 2 - 0.5 + dy
    xs = (_XX - W / 2 + 0.5) / zoom + W / 2 - 0.5 + dx
    return _sample(lin, ys, xs)


@corruption(
    "pixelate",
    models="a far pedestrian: the crop upsampled from fewer pixels than the model's input",
    severities=_table(factor=(1.5, 2.0, 2.5, 3.0, 4.0)),
)
def _pixelate(lin, meta, rng, p):
    f = p["factor"]
    h, w = max(int(round(H / f)), 2), max(int(round(W / f)), 2)
    # Anti-aliased down to (h, w) as a camera's optics and resize would, then bilinear back.
    soft = _convolve(lin, _disk(f / 2))
    sy = (np.arange(h, dtype=np.float32) + 0.5) * H / h - 0.5
    sx = (np.arange(w, dtype=np.float32) + 0.5) * W / w - 0.5
    yy, xx = np.meshgrid(sy, sx, indexing="ij")
    small = _sample(soft, yy, xx)
    ys = (_YY + 0.5) * h / H - 0.5
    xs = (_XX + 0.5) * w / W - 0.5
    return _sample(small, ys, xs)


# --- the public surface ----------------------------------------------------------------


# The first ten families: their severity tables are fixed so figures before and after a
# change compare; the families after them extend the suite.
ORIGINAL_FAMILIES = (
    "low_light",
    "headlight",
    "rain",
    "fog",
    "motion_blur",
    "defocus",
    "glare",
    "jpeg",
    "occlusion",
    "white_balance",
)


def family_split(augment: dict[str, Any], names: tuple[str, ...] | None = None) -> dict:
    """Which families a recipe trained on and which it held out.

    A family counts as trained on when any augmentation in its `augment_keys` is on
    (a probability or pixel count above 0) in the run's [augment] table; the held-out
    families measure robustness to shifts the model never saw imitated.
    """
    names = tuple(CORRUPTIONS) if names is None else names
    trained = [
        n for n in names if any(float(augment.get(k) or 0) > 0 for k in CORRUPTIONS[n].augment_keys)
    ]
    return {"trained": trained, "held_out": [n for n in names if n not in trained]}


def to_linear(u8: np.ndarray) -> np.ndarray:
    return (u8.astype(np.float32) / 255.0) ** GAMMA


def to_u8(lin: np.ndarray) -> np.ndarray:
    return np.clip(np.clip(lin, 0, 1) ** (1 / GAMMA) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def crop_rng(crop_id: str, name: str, severity: int, seed: int = 0) -> np.random.Generator:
    """The random stream of one crop under one corruption and severity."""
    digest = hashlib.sha256(f"{seed}|{name}|{severity}|{crop_id}".encode()).digest()
    return np.random.default_rng(np.frombuffer(digest[:16], dtype=np.uint32).tolist())


def parse_corruptions(spec: str) -> tuple[str, ...]:
    """`all` or a comma list of corruption names -> the names, in order, without repeats.

    Raises:
        EdgepedError: an empty list or an unknown name.
    """
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    if names == ("all",):
        return tuple(CORRUPTIONS)
    if not names:
        raise EdgepedError(
            "no corruption named", f"pass all or a comma list of: {', '.join(CORRUPTIONS)}"
        )
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown:
        raise EdgepedError(
            f"unknown corruption(s) {', '.join(unknown)}",
            f"use all or a comma list of: {', '.join(CORRUPTIONS)}",
        )
    return tuple(dict.fromkeys(names))


def corrupt(
    image: np.ndarray, metadata: np.ndarray, crop_id: str, name: str, severity: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """One crop (HxWx3 uint8) and its metadata (6,) under one corruption and severity.

    Returns:
        The corrupted uint8 crop and a new metadata vector (the input is not changed).

    Raises:
        EdgepedError: an unknown corruption, a severity outside 1-5, a crop of the wrong shape.
    """
    if name not in CORRUPTIONS:
        raise EdgepedError(f"unknown corruption {name!r}", f"use one of: {', '.join(CORRUPTIONS)}")
    spec = CORRUPTIONS[name]
    params = spec.params(severity)
    if image.shape != (H, W, 3) or image.dtype != np.uint8:
        raise EdgepedError(
            f"a crop must be uint8 of shape ({H}, {W}, 3), got {image.dtype} {image.shape}",
            "pass crops as the dataset stores them",
        )
    meta = np.array(metadata, np.float32, copy=True)
    lin = spec.apply(to_linear(image), meta, crop_rng(crop_id, name, severity, seed), params)
    return to_u8(lin), meta


def corrupt_batch(
    images: np.ndarray,
    metadata: np.ndarray,
    crop_ids: np.ndarray,
    name: str,
    severity: int,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """`corrupt` over a batch (N, H, W, 3) uint8 + (N, 6); same bytes as one crop at a time."""
    out = np.empty_like(images)
    meta = np.empty_like(np.asarray(metadata, np.float32))
    for i in range(images.shape[0]):
        out[i], meta[i] = corrupt(images[i], metadata[i], str(crop_ids[i]), name, severity, seed)
    return out, meta


def parameter_table_markdown() -> str:
    """Every corruption's parameters per severity as Markdown (the tables in docs)."""
    parts = []
    for spec in CORRUPTIONS.values():
        keys = list(spec.severities[0])
        lines = [
            f"### `{spec.name}`",
            "",
            spec.models[0].upper() + spec.models[1:] + ".",
            "",
            f"Metadata: {spec.metadata or 'unchanged'}. "
            f"Closest training augmentation: {spec.related_augmentation or 'none'}.",
            "",
            "| severity | " + " | ".join(keys) + " |",
            "|---:|" + "---:|" * len(keys),
        ]
        for s, row in zip(SEVERITIES, spec.severities, strict=True):
            lines.append(f"| {s} | " + " | ".join(f"{row[k]:g}" for k in keys) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
