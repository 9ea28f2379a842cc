"""Near-miss objects of the fleet generator: what a pedestrian classifier must reject.

Poles, sign posts, tree trunks, bollards, cones, barriers, strollers, cyclists, posters with
a printed person and shop-window mannequins, each drawn on a `fleet_scene.Canvas` as the
crop's subject (see `fleet_scene` for the canvas and `fleet_render` for the lighting).
"""

from __future__ import annotations

import numpy as np

from edgeped.data.draw import XX, YY, H, W, colour, ellipse, paint, rect, ring, segment
from edgeped.data.fleet_scene import (
    WHITE,
    Canvas,
    PersonStyle,
    bicycle,
    cone,
    person,
    person_style,
)


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
