"""Scene parts of the fleet generator: backgrounds, people, near-miss objects, conditions.

A crop is drawn on a `Canvas`: `img` holds surface reflectance (0..1, lit as by
daylight) and `emit` holds light sources (lamps, backlit posters, lit windows,
glare) in the same radiance units (night ambient is ~0.003, daylight 1); `reflect`
marks retro-reflective parts and `subject` the crop's near object (the person or the
near miss), so the night can light them apart from the background. `render` then
lights the reflectance for the drive's lighting, adds the emitters, applies weather,
the camera's exposure x gain, motion blur from speed, yaw and exposure, and
gain-dependent sensor noise, so the pixels follow the metadata the record carries.

At night (`night_light`) the ego low beams light the subject with an inverse-square
falloff over its distance (4-40 m), strongest below the beam's cut-off (legs and
lower body) and weak above it (the head); the background, further away, gets less;
retro-reflective strips, bands and sign panels send the beam back bright; street
lamps add smooth pools of light from above; a little sky glow lights everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeped.data import draw
from edgeped.data.draw import XX, YY, H, W, box_blur_x, colour, ellipse, paint, rect, ring, segment

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


# --- near-miss objects ---------------------------------------------------------------------


def pole(cv: Canvas, rng: np.random.Generator, lighting: str) -> None:
    cx, width = W / 2 + rng.normal(0, 6), rng.uniform(3, 10)
    paint(
        cv.img, rect(cx - width / 2, -1, cx + width / 2, H + 1), np.full(3, rng.uniform(0.2, 0.7))
    )
    if rng.random() < 0.3:  # lamp head, lit at night
        lamp = ellipse(cx + 6, rng.uniform(2, 15), 8, 3)
        paint(cv.img, lamp, np.full(3, 0.5, np.float32))
        if lighting != "day":
            cv.emit += lamp[..., None] * np.array([1.0, 0.85, 0.6], np.float32) * 0.05


def sign_post(cv: Canvas, rng: np.random.Generator, lighting: str) -> None:
    cx = W / 2 + rng.normal(0, 5)
    paint(
        cv.img, rect(cx - 2, rng.uniform(10, 30), cx + 2, H + 1), np.full(3, rng.uniform(0.3, 0.7))
    )
    y, size = rng.uniform(4, 35), rng.uniform(9, 16)  # the panel sits where a head would be
    shape = rng.integers(3)
    mask = (
        ellipse(cx, y + size, size, size)
        if shape == 0
        else rect(cx - size, y, cx + size, y + 2 * size)
        if shape == 1
        else np.clip(
            rect(cx - size, y, cx + size, y + 2 * size) * (np.abs(XX - cx) * 2 < (YY - y) + 1), 0, 1
        )
    )
    paint(cv.img, mask, colour(rng, 0.3, 1.0))
    cv.mark_reflective(mask * 0.6)  # sign sheeting is retro-reflective
    if rng.random() < 0.5:  # a second, smaller panel lower down like a torso
        paint(
            cv.img,
            rect(cx - size * 0.8, y + 2.4 * size, cx + size * 0.8, y + 3.6 * size),
            colour(rng),
        )


def tree_trunk(cv: Canvas, rng: np.random.Generator, lighting: str) -> None:
    cx, w = W / 2 + rng.normal(0, 6), rng.uniform(8, 20)
    bark = np.array([0.35, 0.25, 0.15], np.float32) * rng.uniform(0.6, 1.3)
    paint(cv.img, rect(cx - w / 2, -1, cx + w / 2, H + 1) * (0.9 + 0.1 * (XX % 3 < 1)), bark)
    for _ in range(rng.integers(0, 3)):  # branches like arms
        y = rng.uniform(5, 50)
        s = rng.choice([-1, 1])
        paint(cv.img, segment(cx, y + 15, cx + s * rng.uniform(12, 25), y, rng.uniform(2, 5)), bark)
    if rng.random() < 0.7:
        paint(
            cv.img,
            ellipse(
                cx + rng.normal(0, 8),
                rng.uniform(-10, 10),
                rng.uniform(20, 35),
                rng.uniform(12, 25),
            ),
            np.array([0.1, rng.uniform(0.25, 0.5), 0.1], np.float32),
        )


def bollard(cv: Canvas, rng: np.random.Generator, lighting: str) -> None:
    for _ in range(rng.integers(1, 3)):
        cx, w = rng.uniform(10, W - 10), rng.uniform(7, 14)
        top = rng.uniform(40, 85)
        body = colour(rng, 0.15, 0.8)
        paint(cv.img, rect(cx - w / 2, top, cx + w / 2, H - rng.uniform(0, 10)), body)
        paint(cv.img, ellipse(cx, top, w / 2, w / 3), body * 0.8)
        band = rect(cx - w / 2, top + 6, cx + w / 2, top + 10)
        paint(cv.img, band, WHITE)
        cv.mark_reflective(band)  # lit by the headlights at night (see night_light)
        if lighting == "dusk":
            cv.emit += band[..., None] * 0.004


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


def cones(cv: Canvas, rng: np.random.Generator, lighting: str) -> None:
    for _ in range(rng.integers(1, 3)):
        cone(cv, rng, W / 2 + rng.normal(0, 12), rng.uniform(0.75, 1.0) * H, rng.uniform(30, 70))


def barrier(cv: Canvas, rng: np.random.Generator, lighting: str) -> None:
    y0 = rng.uniform(20, 70)
    h = rng.uniform(12, 25)
    stripes = ((XX + YY) % 16 < 8).astype(np.float32)
    board = rect(-1, y0, W + 1, y0 + h)
    paint(cv.img, board, np.array([0.85, 0.1, 0.1], np.float32))
    paint(cv.img, board * stripes, WHITE)
    cv.mark_reflective(board * stripes)
    for lx in (rng.uniform(4, 20), rng.uniform(W - 20, W - 4)):
        paint(cv.img, rect(lx - 2, y0 + h, lx + 2, H + 1), np.full(3, 0.5, np.float32))
    if rng.random() < 0.5:  # warning lamp on top
        lamp = ellipse(rng.uniform(10, W - 10), y0 - 4, 4, 4)
        paint(cv.img, lamp, np.array([1.0, 0.7, 0.1], np.float32))
        if lighting != "day":
            cv.emit += lamp[..., None] * np.array([1.0, 0.7, 0.1], np.float32) * 0.05


def stroller(cv: Canvas, rng: np.random.Generator, lighting: str) -> None:
    base_y = rng.uniform(0.8, 0.97) * H
    cx, body = W / 2 + rng.normal(0, 5), colour(rng, 0.05, 0.8)
    size = rng.uniform(14, 22)
    paint(cv.img, ellipse(cx, base_y - size * 1.4, size, size * 0.8), body)
    hood = ellipse(cx - size * 0.4, base_y - size * 1.9, size * 0.8, size * 0.8) * (XX < cx)
    paint(cv.img, hood, body * 0.7)
    paint(
        cv.img,
        segment(cx + size * 0.7, base_y - size * 1.5, cx + size * 1.3, base_y - size * 3.2, 2.5),
        np.full(3, 0.15, np.float32),
    )
    for dx in (-size * 0.6, size * 0.6):
        paint(
            cv.img, ring(cx + dx, base_y - 4, rng.uniform(4, 6), 2.0), np.full(3, 0.05, np.float32)
        )
    if rng.random() < 0.4:  # the pushing adult's hand and sleeve at the crop edge
        paint(
            cv.img,
            segment(W + 5, base_y - size * 4, cx + size * 1.3, base_y - size * 3.2, 5),
            colour(rng),
        )


def cyclist(
    cv: Canvas, rng: np.random.Generator, lighting: str, *, weather: str, dark_clothes: float
) -> None:
    style = person_style(rng, weather="clear", dark_clothes=dark_clothes, pose="ride")
    height = rng.uniform(0.55, 0.75) * H
    cx = W / 2 + rng.normal(0, 4)
    _, hip_y = person(cv.img, style, cx=cx, top=rng.uniform(2, H * 0.15), height=height)
    bicycle(cv.img, rng, cx, hip_y, height, style.bottom)


def poster(
    cv: Canvas, rng: np.random.Generator, lighting: str, *, weather: str, dark_clothes: float
) -> None:
    """An advertising panel with a printed person: flat, framed, backlit at night."""
    x0, x1 = rng.uniform(-6, 8), rng.uniform(W - 8, W + 6)
    y0, y1 = rng.uniform(-6, 20), rng.uniform(H - 30, H + 4)
    panel = rect(x0, y0, x1, y1)
    paint(cv.img, rect(x0 - 3, y0 - 3, x1 + 3, y1 + 3), np.full(3, rng.uniform(0.1, 0.5)))
    paint(cv.img, panel, colour(rng, 0.5, 1.0))
    style = person_style(rng, weather=weather, dark_clothes=dark_clothes)
    height = (y1 - y0) * rng.uniform(0.6, 0.9)
    person(
        cv.img,
        style,
        cx=(x0 + x1) / 2 + rng.normal(0, 3),
        top=y0 + rng.uniform(2, 8),
        height=height,
        flat=0.0,
    )
    paint(cv.img, rect(x0 + 4, y1 - 14, x1 - 4, y1 - 8), colour(rng, 0, 0.4))  # the slogan
    if lighting != "day":
        cv.emit += panel[..., None] * cv.img * 0.006


def mannequin(
    cv: Canvas, rng: np.random.Generator, lighting: str, *, weather: str, dark_clothes: float
) -> None:
    """A shop-window mannequin: one body colour, rigid pose, a stand, glass reflections."""
    shell = rng.choice([[0.9, 0.88, 0.85], [0.85, 0.75, 0.6], [0.15, 0.15, 0.15]]).astype(
        np.float32
    )
    style = person_style(rng, weather="clear", dark_clothes=dark_clothes, pose="stand")
    dressed = rng.random() < 0.5
    style = PersonStyle(
        pose="stand",
        phase=np.pi,
        side_view=False,
        child=False,
        skin=shell,
        top=style.top if dressed else shell,
        bottom=style.bottom if dressed else shell,
        coat=style.coat,
        hat=False,
        carry="none",
    )
    height = rng.uniform(0.72, 0.88) * H
    top = rng.uniform(2, H - height - 8)
    person(cv.img, style, cx=W / 2 + rng.normal(0, 4), top=top, height=height, flat=0.3)
    paint(cv.img, rect(W / 2 - 12, top + height, W / 2 + 12, top + height + 4), np.full(3, 0.3))
    glare = segment(rng.uniform(-20, W), -5, rng.uniform(0, W + 20), H + 5, rng.uniform(6, 14))
    cv.img += glare[..., None] * 0.15
    paint(cv.img, rect(-1, -1, W + 1, 3) + rect(-1, H - 3, W + 1, H + 1), np.full(3, 0.2))
    if lighting != "day":
        cv.emit += cv.img * 0.003


# --- rendering -------------------------------------------------------------------------------


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
