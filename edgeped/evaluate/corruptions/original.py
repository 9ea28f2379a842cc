"""The first ten corruption families: what a vehicle camera sees most (numpy only).

Their severity tables are fixed, so figures before and after a change compare; the
families of `extended` add to the suite.
"""

from __future__ import annotations

import io

import numpy as np

from edgeped.data.draw import box_blur_x
from edgeped.evaluate.corruptions.camera import (
    EXPOSURE,
    SPEED,
    XX,
    YY,
    H,
    W,
    add_gain,
    convolve,
    disk,
    night_clock,
    scale_exposure,
    sensor,
    set_reading,
    smooth_field,
    stamp_segment,
    to_linear,
    to_u8,
)
from edgeped.evaluate.corruptions.registry import corruption, table

# Suite order: the order they register in.
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


@corruption(
    "low_light",
    models="too little light: the camera raises analog gain, so the crop is dark and noisy",
    metadata="analog_gain_db += gain_db; exposure_ms x exposure_factor (capped at 33 ms)",
    related_augmentation="night (darken x0.3-0.6 + noise); dark (light x0.01-0.5 + noise); "
    "light (uneven light)",
    augment_keys=("night", "dark", "light"),
    severities=table(
        light=(0.3, 0.12, 0.05, 0.02, 0.008),
        gain_db=(3.0, 6.0, 9.0, 12.0, 15.0),
        exposure_factor=(1.2, 1.4, 1.6, 1.8, 2.0),
    ),
)
def _low_light(lin, meta, rng, p):
    add_gain(meta, p["gain_db"])
    scale_exposure(meta, p["exposure_factor"])
    return sensor(lin * (p["light"] * p["exposure_factor"]), p["gain_db"], rng)


@corruption(
    "headlight",
    models="night lit by the ego headlights: bright lower body, dark head, vignetting, noise",
    metadata="time of day -> 23:00; analog_gain_db += gain_db; exposure_ms x 2 (capped at 33 ms)",
    related_augmentation="night (darken x0.3-0.6 + noise); light (a smooth random light field, "
    "gain, noise)",
    augment_keys=("night", "light"),
    severities=table(
        ambient=(0.12, 0.07, 0.04, 0.025, 0.015),
        beam=(0.7, 0.5, 0.35, 0.25, 0.18),
        beam_top=(0.25, 0.35, 0.45, 0.55, 0.62),
        vignette=(0.2, 0.3, 0.4, 0.5, 0.6),
        gain_db=(6.0, 9.0, 12.0, 15.0, 18.0),
    ),
)
def _headlight(lin, meta, rng, p):
    night_clock(meta)
    add_gain(meta, p["gain_db"])
    scale_exposure(meta, 2.0)
    top = p["beam_top"] * H + rng.uniform(-6, 6)
    beam = np.clip((YY - top) / max(H - top, 1.0), 0, 1) ** 0.7
    cx = W / 2 + rng.uniform(-0.25, 0.25) * W  # the beam's centre moves with the crop's position
    r2 = ((XX - cx) / (W * 0.9)) ** 2 + ((YY - H * 0.75) / (H * 0.9)) ** 2
    light = (p["ambient"] + p["beam"] * beam) * np.clip(1 - p["vignette"] * r2, 0.05, 1)
    amp = 10 ** (-p["gain_db"] / 20) * 2.0  # auto-exposure aims the lit part at mid-grey
    return sensor(lin * (light * amp)[..., None].astype(np.float32), p["gain_db"], rng)


@corruption(
    "rain",
    models="rain: streaks slanted by speed, lens drops that blur and brighten, lower contrast",
    related_augmentation="rain (contrast loss + vertical streaks); speckle (flakes and drops)",
    augment_keys=("rain", "speckle"),
    severities=table(
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
        stamp_segment(streaks, x, y, x + length * slant, y + length, 1.0)
    out = out + streaks[..., None] * (p["streak_brightness"] * (0.5 + level))
    blurred = convolve(out, disk(3.0)) if p["drops"] else out
    for _ in range(p["drops"]):
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        r = p["drop_radius_px"] * rng.uniform(0.7, 1.3)
        drop = np.clip(r + 0.5 - np.hypot(XX - cx, YY - cy), 0, 1)[..., None]
        out = out * (1 - drop) + drop * (blurred * 0.7 + 0.3 * level * 1.2)
    return out


@corruption(
    "fog",
    models="fog/haze: contrast falls with distance (higher in the crop is farther) to airlight",
    related_augmentation="haze (contrast lost towards a grey airlight, patchy, not by distance)",
    augment_keys=("haze",),
    severities=table(
        density=(0.35, 0.6, 0.9, 1.3, 1.8),
        airlight=(0.75, 0.75, 0.78, 0.8, 0.82),
    ),
)
def _fog(lin, meta, rng, p):
    patch = smooth_field(rng.uniform(0.8, 1.2, (4, 2)))  # patchy density
    depth = (1.3 - 0.6 * YY / H) * patch
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
    severities=table(
        blur_px=(2.0, 4.0, 6.0, 9.0, 13.0),
        exposure_ms=(10.0, 12.0, 14.0, 16.0, 20.0),
    ),
)
def _motion_blur(lin, meta, rng, p):
    speed = p["blur_px"] / (0.02 * p["exposure_ms"])
    set_reading(meta, SPEED, speed)
    set_reading(meta, EXPOSURE, p["exposure_ms"])
    return box_blur_x(lin, motion_blur_px(speed, p["exposure_ms"]) * rng.uniform(0.9, 1.1))


@corruption(
    "defocus",
    models="out of focus or a dirty lens: a disk blur",
    severities=table(radius_px=(1.0, 1.5, 2.0, 3.0, 4.0)),
)
def _defocus(lin, meta, rng, p):
    return convolve(lin, disk(p["radius_px"]))


@corruption(
    "glare",
    models="over-exposure after a tunnel or into low sun: clipped highlights and veiling glare",
    metadata="exposure_ms x exposure (capped at 33 ms)",
    related_augmentation="exposure (brightness +/-0.15, contrast x0.7-1.3)",
    augment_keys=("exposure",),
    severities=table(
        exposure=(1.6, 2.2, 3.0, 4.0, 5.5),
        glare=(0.1, 0.2, 0.3, 0.45, 0.6),
    ),
)
def _glare(lin, meta, rng, p):
    scale_exposure(meta, p["exposure"])
    gx, gy = rng.uniform(-0.2, 1.2) * W, rng.uniform(-0.2, 0.5) * H
    veil = np.exp(-np.hypot(XX - gx, YY - gy) / (0.6 * H))[..., None]
    tint = np.array([1.0, 0.97, 0.9], np.float32)
    return lin * p["exposure"] + p["glare"] * veil * tint


@corruption(
    "jpeg",
    models="compression on the camera link or in a recorder: 8x8 blocks, ringing, chroma bleed "
    "(Pillow's libjpeg codec, 4:2:0)",
    severities=table(quality=(30, 18, 12, 8, 5)),
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
    severities=table(covered=(0.1, 0.17, 0.25, 0.33, 0.42)),
)
def _occlusion(lin, meta, rng, p):
    out = lin.copy()
    tone = rng.uniform(0.02, 0.5) * rng.uniform(0.8, 1.2, 3).astype(np.float32)
    shade = 0.85 + 0.3 * rng.random()
    if rng.random() < 0.5:  # pole: a vertical bar near the centre, shaded across its width
        width = p["covered"] * W
        x0 = W / 2 + rng.normal(0, 6) - width / 2
        mask = np.clip(np.minimum(XX - x0 + 0.5, x0 + width - XX + 0.5), 0, 1)
        across = 1 - 0.3 * np.abs((XX - x0) / max(width, 1) - 0.5)
        colour = tone * (across * shade)[..., None]
    else:  # car edge: a band from the bottom with a rounded top corner and a darker sill
        top = H * (1 - p["covered"])
        corner = rng.uniform(-0.3, 1.3) * W
        curve = 6 * np.exp(-(((XX - corner) / 10) ** 2))
        mask = np.clip(YY - (top + curve) + 0.5, 0, 1)
        colour = tone * np.where(YY > top + 0.8 * (H - top), 0.5, shade)[..., None]
    mask = mask[..., None].astype(np.float32)
    return out * (1 - mask) + colour.astype(np.float32) * mask


@corruption(
    "white_balance",
    models="white-balance error under sodium, LED or overcast light: a colour cast",
    related_augmentation="cast (red and blue gains x/÷ up to 1.7 against green)",
    augment_keys=("cast",),
    severities=table(shift=(0.1, 0.2, 0.3, 0.45, 0.6)),
)
def _white_balance(lin, meta, rng, p):
    s = p["shift"] * rng.uniform(0.85, 1.15)
    warm = rng.random() < 0.5
    gains = np.array([1 + s, 1.0, 1 - 0.7 * s] if warm else [1 - 0.6 * s, 1.0, 1 + s], np.float32)
    return lin * gains
