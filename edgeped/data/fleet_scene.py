"""Scene parts of the fleet generator: the canvas, backgrounds and people.

A crop is drawn on a `Canvas`: `img` holds surface reflectance (0..1, lit as by
daylight) and `emit` holds light sources (lamps, backlit posters, lit windows,
glare) in the same radiance units (night ambient is ~0.003, daylight 1); `reflect`
marks retro-reflective parts and `subject` the crop's near object (the person or the
near miss), so the night can light them apart from the background. The near misses
are in `fleet_objects`; `fleet_render.render` then lights the canvas for the drive's
lighting and weather and exposes it as the camera would, so the pixels follow the
metadata the record carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeped.data.draw import XX, YY, H, W, colour, ellipse, paint, rect, ring, segment

SKIN = np.array(
    [[0.95, 0.8, 0.65], [0.82, 0.62, 0.48], [0.6, 0.42, 0.3], [0.4, 0.27, 0.18]], np.float32
)
ORANGE = np.array([0.95, 0.42, 0.08], np.float32)
WHITE = np.array([0.92, 0.92, 0.9], np.float32)


@dataclass
class Canvas:
    img: np.ndarray  # (H, W, 3) float32 reflectance
    emit: np.ndarray  # (H, W, 3) float32 emitted radiance, added after lighting
    reflect: np.ndarray | None = None  # (H, W) 0..1 retro-reflective share
    subject: np.ndarray | None = None  # (H, W) 0..1 where the near object (person, near miss) is

    @classmethod
    def blank(cls) -> Canvas:
        return cls(
            np.zeros((H, W, 3), np.float32),
            np.zeros((H, W, 3), np.float32),
            np.zeros((H, W), np.float32),
        )

    def mark_reflective(self, mask: np.ndarray) -> None:
        """Marks `mask` (H, W, 0..1) as retro-reflective (bright in the headlights)."""
        if self.reflect is None:
            self.reflect = np.zeros((H, W), np.float32)
        np.maximum(self.reflect, mask.astype(np.float32), out=self.reflect)


@dataclass(frozen=True)
class Shot:
    """What the camera and the drive did for one crop (drives the rendering)."""

    lighting: str  # day | dusk | night
    weather: str  # clear | rain | fog
    speed_mps: float
    yaw_rate_rps: float
    exposure_ms: float
    gain_db: float
    radiance: float  # scene light level: 1 day, ~0.15 dusk, ~0.02 night


# --- backgrounds ------------------------------------------------------------------------


def background(cv: Canvas, rng: np.random.Generator, scene: str, lighting: str) -> np.ndarray:
    """Sky, buildings or vegetation, sidewalk, road, parked cars. Returns the mean wall colour."""
    img = cv.img
    horizon = rng.uniform(0.08, 0.5) * H
    overcast = rng.uniform(0, 1)
    sky = np.array([0.5, 0.65, 0.9], np.float32) * (1 - overcast) + overcast * rng.uniform(
        0.6, 0.85
    )
    t = np.clip(YY / max(horizon, 1.0), 0, 1)[..., None]
    img[:] = sky * (0.85 + 0.15 * t)
    road_top = rng.uniform(0.74, 0.93) * H
    wall = colour(rng, 0.25, 0.75)
    if scene == "suburban":
        _suburb(cv, rng, horizon, road_top, lighting)
        wall = np.array([0.2, 0.4, 0.15], np.float32)
    else:
        _facade(cv, rng, horizon, road_top, wall, lighting)
    kerb = road_top - rng.uniform(3, 14)
    paint(img, rect(-1, kerb, W + 1, road_top), np.full(3, rng.uniform(0.45, 0.7), np.float32))
    paint(img, rect(-1, road_top, W + 1, H + 1), np.full(3, rng.uniform(0.18, 0.38), np.float32))
    if rng.random() < 0.3:  # lane marking
        y = rng.uniform(road_top + 2, H)
        paint(img, segment(rng.uniform(-20, W), y, rng.uniform(0, W + 20), y + 2, 2.5), WHITE * 0.9)
    if rng.random() < 0.35:
        parked_car(cv, rng, rng.uniform(road_top - 6, H + 10))
    if scene == "construction":
        _construction_clutter(cv, rng, road_top)
    coarse = rng.normal(0, 0.05, (8, 4, 3)).astype(np.float32)
    img += np.repeat(np.repeat(coarse, H // 8, 0), W // 4, 1)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.02)
    return wall


def _facade(
    cv: Canvas,
    rng: np.random.Generator,
    horizon: float,
    road_top: float,
    wall: np.ndarray,
    lighting: str,
) -> None:
    edge = rng.uniform(-30, W + 30) if rng.random() < 0.4 else W + 40
    for x0, x1, c in ((-1, edge, wall), (edge, W + 1, colour(rng, 0.25, 0.75))):
        if x1 <= x0:
            continue
        paint(cv.img, rect(x0, rng.uniform(-5, horizon), x1, road_top), c)
        pitch_x, pitch_y = rng.uniform(10, 22), rng.uniform(14, 28)
        win = (
            ((XX % pitch_x) < pitch_x * 0.5)
            & ((YY % pitch_y) < pitch_y * 0.55)
            & (YY < road_top - 20)
            & (XX >= x0)
            & (XX < x1)
        ).astype(np.float32)
        paint(cv.img, win, c * rng.uniform(0.25, 0.6))
        if lighting != "day":  # some lit windows
            lit = win * (rng.random((H // 8, W // 8)).repeat(8, 0).repeat(8, 1) < 0.3)
            cv.emit += lit[..., None] * np.array([1.0, 0.85, 0.55], np.float32) * 0.002
    if rng.random() < 0.5:  # shop window at street level
        y0 = road_top - rng.uniform(30, 55)
        glass = rect(rng.uniform(-10, W / 2), y0, rng.uniform(W / 2, W + 10), road_top - 4)
        paint(cv.img, glass, colour(rng, 0.1, 0.4))
        if lighting != "day":
            cv.emit += glass[..., None] * np.array([1.0, 0.95, 0.8], np.float32) * 0.003


def _suburb(
    cv: Canvas, rng: np.random.Generator, horizon: float, road_top: float, lighting: str
) -> None:
    img = cv.img
    if rng.random() < 0.6:  # a house further back
        hx = rng.uniform(-20, W)
        paint(
            img,
            rect(hx, horizon + 10, hx + rng.uniform(30, 70), road_top - 10),
            colour(rng, 0.4, 0.9),
        )
    paint(
        img,
        rect(-1, road_top - rng.uniform(15, 35), W + 1, road_top),
        np.array([0.25, rng.uniform(0.4, 0.6), 0.2], np.float32),
    )  # grass
    for _ in range(rng.integers(1, 4)):  # canopies and hedges
        paint(
            img,
            ellipse(
                rng.uniform(-10, W + 10),
                rng.uniform(0, road_top - 10),
                rng.uniform(10, 28),
                rng.uniform(8, 24),
            ),
            np.array([0.12, rng.uniform(0.28, 0.55), 0.1], np.float32),
        )
    if rng.random() < 0.4:  # fence
        fy = road_top - rng.uniform(12, 30)
        paint(img, rect(-1, fy, W + 1, fy + 2), colour(rng, 0.4, 0.8))
        pitch = rng.uniform(5, 9)
        paint(
            img,
            ((XX % pitch) < 1.5).astype(np.float32) * rect(-1, fy, W + 1, road_top - 4),
            colour(rng, 0.4, 0.8),
        )


def _construction_clutter(cv: Canvas, rng: np.random.Generator, road_top: float) -> None:
    for _ in range(rng.integers(1, 3)):
        cone(cv, rng, rng.uniform(0, W), road_top + rng.uniform(-4, 10), rng.uniform(8, 16))
    if rng.random() < 0.5:  # mesh fence panel
        y0 = road_top - rng.uniform(25, 45)
        mesh = ((((XX + YY) % 6) < 1.0) | (((XX - YY) % 6) < 1.0)).astype(np.float32)
        paint(cv.img, mesh * rect(-1, y0, W + 1, road_top) * 0.8, np.full(3, 0.6, np.float32))


def parked_car(cv: Canvas, rng: np.random.Generator, bottom: float) -> None:
    x0 = rng.uniform(-60, 20)
    x1 = x0 + rng.uniform(60, 110)
    body = colour(rng)
    paint(cv.img, rect(x0, bottom - 22, x1, bottom - 6), body)
    paint(cv.img, rect(x0 + 10, bottom - 32, x1 - 12, bottom - 21), body * 0.9)
    paint(cv.img, rect(x0 + 14, bottom - 30, x1 - 16, bottom - 22), np.full(3, 0.15, np.float32))
    for wx in (x0 + 12, x1 - 12):
        paint(cv.img, ellipse(wx, bottom - 6, 6, 6), np.full(3, 0.05, np.float32))


def cone(cv: Canvas, rng: np.random.Generator, cx: float, bottom: float, height: float) -> None:
    tip = bottom - height
    body = np.clip(
        rect(cx - height * 0.35, tip, cx + height * 0.35, bottom)
        * (np.abs(XX - cx) < (YY - tip) * 0.33 + 1),
        0,
        1,
    )
    paint(cv.img, body, ORANGE)
    collar = body * rect(-1, tip + height * 0.35, W + 1, tip + height * 0.55)
    paint(cv.img, collar, WHITE)
    cv.mark_reflective(collar)
    paint(cv.img, rect(cx - height * 0.45, bottom - 2, cx + height * 0.45, bottom), ORANGE * 0.7)


# --- people ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonStyle:
    pose: str  # walk | stand | ride (no legs drawn: sits on a bicycle)
    phase: float  # walking phase, radians
    side_view: bool
    child: bool
    skin: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    coat: bool
    hat: bool
    carry: str  # none | bag | backpack | umbrella


def person_style(
    rng: np.random.Generator,
    *,
    weather: str,
    dark_clothes: float,
    blend_with: np.ndarray | None = None,
    pose: str | None = None,
) -> PersonStyle:
    """Draws a pedestrian's look. `dark_clothes` is the chance of dark clothing;
    `blend_with` (a colour) makes the clothes close to the background."""

    def cloth(lo: float, hi: float) -> np.ndarray:
        if blend_with is not None:
            return np.clip(blend_with + rng.normal(0, 0.06, 3), 0, 1).astype(np.float32)
        if rng.random() < dark_clothes:
            return rng.uniform(0.03, 0.18, 3).astype(np.float32)
        return colour(rng, lo, hi)

    carry = rng.choice(
        ["none", "bag", "backpack", "umbrella" if weather == "rain" else "none"],
        p=[0.55, 0.2, 0.15, 0.1],
    )
    return PersonStyle(
        pose=pose or str(rng.choice(["walk", "stand"], p=[0.7, 0.3])),
        phase=float(rng.uniform(0, 2 * np.pi)),
        side_view=bool(rng.random() < 0.6),
        child=bool(rng.random() < 0.1),
        skin=SKIN[rng.integers(len(SKIN))],
        top=cloth(0.05, 0.95),
        bottom=cloth(0.02, 0.6),
        coat=bool(rng.random() < 0.25),
        hat=bool(rng.random() < 0.3),
        carry=str(carry),
    )


def person(
    img: np.ndarray, style: PersonStyle, *, cx: float, top: float, height: float, flat: float = 1.0
) -> tuple[float, float]:
    """Draws a person with feet at top + height; returns the hip (x, y).

    `flat` < 1 removes limb shading (posters, mannequins look flat).
    """
    s = style
    head_r = height * (0.085 if s.child else 0.062)
    head_y = top + head_r
    shoulder_y = top + height * (0.2 if s.child else 0.165)
    hip_y = top + height * (0.56 if s.child else 0.52)
    foot_y = top + height
    torso_w = height * (0.13 if s.side_view else 0.2)
    limb = height * 0.075
    shade = 0.85 + 0.15 * (1 - flat)
    swing = np.sin(s.phase)
    if s.carry == "backpack":
        bx = cx - torso_w * (0.9 if s.side_view else 0.0)
        paint(
            img,
            rect(bx - torso_w * 0.4, shoulder_y + 2, bx + torso_w * 0.4, hip_y - 2),
            s.top * 0.5,
        )
    if s.pose == "walk":
        stride = height * (0.2 if s.side_view else 0.06)
        for sign, tone in ((1, 1.0), (-1, shade)):
            knee = (cx + sign * stride * 0.6 * swing, hip_y + (foot_y - hip_y) * 0.5)
            foot = (cx + sign * stride * swing - (abs(swing) * 2 if s.side_view else 0), foot_y)
            paint(img, segment(cx, hip_y, *knee, limb), s.bottom * tone)
            paint(img, segment(*knee, *foot, limb * 0.85), s.bottom * tone)
            paint(img, ellipse(foot[0] + 2, foot_y - 1, limb * 0.7, limb * 0.35), np.full(3, 0.08))
    elif s.pose == "stand":
        for side in (-1, 1):
            paint(
                img,
                segment(
                    cx + side * torso_w * 0.22, hip_y, cx + side * torso_w * 0.28, foot_y, limb
                ),
                s.bottom,
            )
    coat_end = hip_y + (foot_y - hip_y) * (0.45 if s.coat else 0.05)
    paint(img, rect(cx - torso_w / 2, shoulder_y, cx + torso_w / 2, coat_end), s.top)
    paint(img, ellipse(cx, shoulder_y + 1, torso_w / 2, height * 0.025), s.top)
    arm_end_y = hip_y + height * 0.03
    arm = height * 0.12 * swing if s.pose == "walk" else 0.0
    hands = []
    for sign, tone in ((-1, shade), (1, shade)):
        hx = cx + sign * torso_w / 2 + (sign * arm if not s.side_view else -sign * arm)
        paint(
            img,
            segment(cx + sign * torso_w * 0.42, shoulder_y + 2, hx, arm_end_y, limb * 0.65),
            s.top * tone,
        )
        paint(img, ellipse(hx, arm_end_y + 1, limb * 0.35, limb * 0.4), s.skin)
        hands.append((hx, arm_end_y))
    paint(
        img,
        rect(cx - head_r * 0.35, head_y + head_r * 0.6, cx + head_r * 0.35, shoulder_y + 1),
        s.skin * 0.9,
    )
    paint(img, ellipse(cx, head_y, head_r * 0.82, head_r), s.skin)
    if s.hat:
        paint(img, ellipse(cx, head_y - head_r * 0.55, head_r * 0.95, head_r * 0.5), s.bottom * 0.8)
    if s.carry == "bag":
        hx, hy = hands[1]
        paint(img, rect(hx - limb, hy, hx + limb * 1.2, hy + height * 0.12), s.bottom * 0.6 + 0.1)
    elif s.carry == "umbrella":
        uy = top - height * 0.02
        paint(img, segment(cx, uy, cx, shoulder_y + height * 0.1, 1.2), np.full(3, 0.1))
        canopy = ellipse(cx, uy, height * 0.22, height * 0.09) * (YY < uy + 1)
        paint(img, canopy, s.top * 0.5)
    return cx, hip_y


def bicycle(
    img: np.ndarray,
    rng: np.random.Generator,
    cx: float,
    hip_y: float,
    height: float,
    trousers: np.ndarray,
) -> None:
    r = height * rng.uniform(0.14, 0.2)
    wheel_y = min(hip_y + height * 0.45, H - r * 0.3)
    side = rng.random() < 0.7  # side view shows two wheels; rear view one thin wheel
    frame = colour(rng)
    if side:
        for s in (-1, 1):
            paint(img, ring(cx + s * r * 1.15, wheel_y, r, 2.0), np.full(3, 0.06, np.float32))
        paint(img, segment(cx - r * 1.15, wheel_y, cx, hip_y + 3, 2.2), frame)
        paint(img, segment(cx + r * 1.15, wheel_y, cx + r * 0.6, hip_y - height * 0.05, 2.2), frame)
        paint(img, segment(cx, hip_y + 3, cx + r * 0.6, hip_y - height * 0.05, 2.2), frame)
    else:
        paint(img, rect(cx - 2, wheel_y - r, cx + 2, wheel_y + r), np.full(3, 0.06, np.float32))
        paint(
            img,
            segment(
                cx - height * 0.15,
                hip_y - height * 0.1,
                cx + height * 0.15,
                hip_y - height * 0.1,
                2.0,
            ),
            frame,
        )
    pedal = rng.uniform(-1, 1) * r * 0.5
    for s in (-1, 1):
        paint(img, segment(cx, hip_y, cx + s * pedal, wheel_y - r * 0.2, height * 0.07), trousers)
