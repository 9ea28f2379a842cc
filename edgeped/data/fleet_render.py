"""Rendering of a fleet crop: light, weather, exposure, motion blur and sensor noise.

`render` lights a `fleet_scene.Canvas` (reflectance plus emitters) for the shot's
lighting, adds weather, the camera's exposure x gain, motion blur from speed, yaw and
exposure, and gain-dependent sensor noise. At night (`night_light`) the ego low beams
light the subject with an inverse-square falloff over its distance, retro-reflective
parts send the beam back bright, street lamps and sky glow light the rest.
"""

from __future__ import annotations

import numpy as np

from edgeped.data import draw
from edgeped.data.draw import XX, YY, H, W, box_blur_x, ellipse, rect
from edgeped.data.fleet_scene import WHITE, Canvas, Shot


def rain_layers(rng: np.random.Generator, speed_mps: float, count: int = 4) -> list[np.ndarray]:
    """A drive's rain streak layers; slant grows with speed. Crops reuse them shifted."""
    return draw.rain_streak_layers(
        rng, count, streaks=(20, 40), length=(6, 18), slant=0.15 + 0.03 * speed_mps
    )


def blur_px(shot: Shot) -> float:
    """Motion blur length in crop pixels: ego speed and yaw times the exposure time."""
    return (
        0.02 * shot.speed_mps * shot.exposure_ms + 0.6 * abs(shot.yaw_rate_rps) * shot.exposure_ms
    )


HEADLIGHT_AT_8M = 5.0  # low-beam light on a subject 8 m ahead, in multiples of night ambient
HEADLIGHT_MAX = 9.0  # the closest subjects (about 6 m and nearer)
RETRO_GAIN = 6.0  # a retro-reflector returns this many times a white surface's radiance


def _smooth(mask: np.ndarray, passes: int = 2) -> np.ndarray:
    """A cheap blur of a (H, W) mask (soft light edges around the subject)."""
    out = mask.astype(np.float32)
    for _ in range(passes):
        out = (out + np.roll(out, 1, 0) + np.roll(out, -1, 0)) / 3
        out = (out + np.roll(out, 1, 1) + np.roll(out, -1, 1)) / 3
    return out


def beam(distance_m: float) -> float:
    """Low-beam light at a distance, in multiples of night ambient (inverse square, capped)."""
    return min(HEADLIGHT_AT_8M * (8.0 / distance_m) ** 2, HEADLIGHT_MAX)


def low_beams(
    subject: np.ndarray, distance: float, behind: float, cutoff: float
) -> tuple[np.ndarray, np.ndarray]:
    """The low beams' light (H, W) on a subject at `distance` m and a background `behind` m
    away, full below the cut-off row and a fifth above it; and that vertical profile."""
    profile = 0.2 + 0.8 * np.clip((YY - cutoff) / 12.0 + 0.5, 0, 1)
    return profile * (beam(distance) * subject + beam(behind) * (1 - subject)), profile


def night_light(cv: Canvas, rng: np.random.Generator, shot: Shot) -> tuple[np.ndarray, np.ndarray]:
    """Night illumination (H, W, 1) of the reflectance, and the retro-reflected radiance.

    The subject at distance d gets the low beams' HEADLIGHT_AT_8M x (8 / d)^2 (capped)
    below the cut-off row and a fifth of it above; the background, 5-30 m further,
    falls off the same way; street-lamp pools and sky glow add on top.
    """
    distance = rng.uniform(4.0, 40.0)
    behind = distance + rng.uniform(5.0, 30.0)
    cutoff = rng.uniform(0.35, 0.6) * H  # the beam's cut-off row (low beams light the legs)
    subject = _smooth(cv.subject) if cv.subject is not None else np.zeros((H, W), np.float32)
    headlight, profile = low_beams(subject, distance, behind, cutoff)
    pools = np.zeros((H, W), np.float32)
    for _ in range(rng.integers(0, 3)):  # street lamps: smooth pools lit from above
        px, py = rng.uniform(-20, W + 20), rng.uniform(-40, H * 0.6)
        spread = rng.uniform(25, 60)
        pools += rng.uniform(1.0, 4.0) * np.exp(-(((XX - px) ** 2 + (YY - py) ** 2) / spread**2))
    light = shot.radiance * (0.25 + pools + headlight)
    reflect = cv.reflect if cv.reflect is not None else np.zeros((H, W), np.float32)
    retro = shot.radiance * RETRO_GAIN * reflect * np.maximum(profile, 0.5) * beam(distance)
    return light[..., None].astype(np.float32), (retro[..., None] * WHITE).astype(np.float32)


def reflective_strips(
    cv: Canvas, rng: np.random.Generator, person_mask: np.ndarray, top: float, height: float
) -> None:
    """Retro-reflective parts a pedestrian may wear: ankle and shoe strips, a vest band."""
    rows = []
    if rng.random() < 0.6:  # shoe and ankle strips
        rows.append((top + height * 0.9, top + height * 0.94))
    if rng.random() < 0.4:  # a vest or jacket band across the torso
        y = top + height * rng.uniform(0.3, 0.42)
        rows.append((y, y + height * 0.03))
    for y0, y1 in rows:
        cv.mark_reflective(person_mask * rect(-1, y0, W + 1, y1))


def render(
    cv: Canvas, rng: np.random.Generator, shot: Shot, rain: list[np.ndarray] | None
) -> np.ndarray:
    """Lights, weathers, exposes, blurs and adds noise; returns the uint8 crop."""
    img = cv.img
    extra = 0.0
    if shot.lighting == "night":
        light, extra = night_light(cv, rng, shot)
    elif shot.lighting == "dusk":
        light = shot.radiance * np.array([1.1, 0.9, 0.75], np.float32)
    else:
        light = shot.radiance
    radiance = img * light + cv.emit + extra
    if shot.lighting == "night" and rng.random() < 0.4:  # oncoming headlight glare
        gx, gy = rng.uniform(-10, W + 10), rng.uniform(H * 0.45, H)
        radiance += (
            ellipse(gx, gy, rng.uniform(3, 8), rng.uniform(2, 5))[..., None] * 2.0
            + ellipse(gx, gy, rng.uniform(15, 35), rng.uniform(10, 25))[..., None] * 0.003
        )
    if shot.weather == "rain":
        level = float(radiance.mean())
        radiance = radiance * 0.72 + 0.28 * level  # contrast loss in spray and haze
        layer = np.roll(
            rain[rng.integers(len(rain))], (rng.integers(H), rng.integers(W)), axis=(0, 1)
        )
        radiance += layer[..., None] * (0.3 * level + 0.05 * shot.radiance)  # lit by the scene
        for _ in range(rng.integers(0, 4)):  # droplets on the lens smear what is behind them
            drop = ellipse(
                rng.uniform(0, W), rng.uniform(0, H), rng.uniform(3, 9), rng.uniform(3, 9)
            )
            radiance = radiance * (1 - drop[..., None] * 0.6) + drop[..., None] * 0.6 * level * 1.1
    elif shot.weather == "fog":
        t = np.clip(rng.uniform(0.3, 0.65) + 0.25 * (YY / H - 0.5), 0.1, 1)[..., None]
        airlight = 0.85 * shot.radiance * (1.0 if shot.lighting != "night" else 0.6)
        radiance = radiance * t + airlight * (1 - t)
    gain = 10 ** (shot.gain_db / 20)
    out = radiance * (shot.exposure_ms * gain / 4.0)
    out = box_blur_x(out, blur_px(shot))
    sigma = 0.004 * gain
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(sigma)
    if shot.gain_db > 15:  # row banding of a high-gain readout
        out = out + rng.normal(0, sigma * 0.3, (H, 1, 1)).astype(np.float32)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
