"""Synthetic street crops (v1): rendered figures, backgrounds and near-miss objects.

Each drive has one lighting, weather and scene condition and yields a fixed
number of crops; everything about a drive is drawn from a generator seeded by
(seed, drive index), so any crop can be regenerated from its id. Pedestrians
are stick-and-blob figures (head, torso, arms, legs in a walking phase) over
street backgrounds (sky, facades, road); negatives are plain backgrounds and
near misses (poles, cyclists, strollers). Night darkens and adds sensor noise
and glare; rain adds streaks and contrast loss. Metadata follows the
condition (night means long exposure and high gain) and drops out for whole
records at a set rate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgeped.data import generators
from edgeped.data.draw import XX as _XX
from edgeped.data.draw import YY as _YY
from edgeped.data.draw import H, W, rain_streak_layers
from edgeped.data.draw import colour as _colour
from edgeped.data.draw import ellipse as _ellipse
from edgeped.data.draw import paint as _paint
from edgeped.data.draw import rect as _rect
from edgeped.data.draw import ring as _ring
from edgeped.data.draw import segment as _segment
from edgeped.data.generators import GeneratorConfig, pick
from edgeped.data.schema import NUM_METADATA, CropBatch


@dataclass(frozen=True)
class SynthConfig(GeneratorConfig):
    """What to generate: the fields every generator has (`GeneratorConfig`), nothing more."""


# --- scene parts ---------------------------------------------------------------------


def _background(rng: np.random.Generator, scene: str) -> np.ndarray:
    img = np.empty((H, W, 3), np.float32)
    horizon = rng.uniform(0.15, 0.6) * H
    sky_top, sky_bottom = rng.uniform(0.5, 0.9, 3), rng.uniform(0.6, 1.0, 3)
    t = np.clip(_YY / max(horizon, 1.0), 0, 1)[..., None]
    img[:] = sky_top * (1 - t) + sky_bottom * t
    facade = _colour(rng, 0.2, 0.8)
    _paint(img, _rect(-1, rng.uniform(0, horizon), W + 1, H * 0.85), facade)
    window = facade * rng.uniform(0.3, 0.7)
    pitch_x, pitch_y = rng.uniform(10, 20), rng.uniform(14, 26)
    win = ((_XX % pitch_x) < pitch_x * 0.5) & ((_YY % pitch_y) < pitch_y * 0.55) & (_YY < H * 0.8)
    _paint(img, win.astype(np.float32) * rng.uniform(0.5, 1.0), window)
    road_top = rng.uniform(0.7, 0.9) * H
    _paint(img, _rect(-1, road_top, W + 1, H + 1), np.full(3, rng.uniform(0.2, 0.45), np.float32))
    if scene == "suburban":
        for _ in range(rng.integers(1, 4)):  # shrubs
            _paint(
                img,
                _ellipse(
                    rng.uniform(0, W),
                    rng.uniform(road_top - 20, road_top),
                    rng.uniform(6, 16),
                    rng.uniform(5, 12),
                ),
                np.array([0.1, rng.uniform(0.3, 0.6), 0.1], np.float32),
            )
    if rng.random() < 0.4:  # parked car
        cy = rng.uniform(road_top - 10, H)
        _paint(img, _rect(rng.uniform(-40, 20), cy - 18, rng.uniform(30, 90), cy), _colour(rng))
    coarse = rng.normal(0, 0.06, (8, 4, 3)).astype(np.float32)
    img += np.repeat(np.repeat(coarse, H // 8, 0), W // 4, 1)
    return img


def _figure(
    img: np.ndarray,
    rng: np.random.Generator,
    *,
    cx: float,
    top: float,
    height: float,
    legs: str = "walk",
) -> tuple[float, float]:
    """Draws a person; returns (hip x, hip y) so a bicycle can be placed under them."""
    skin = np.array(
        rng.choice([[0.95, 0.8, 0.65], [0.75, 0.55, 0.4], [0.45, 0.3, 0.2]]), np.float32
    )
    shirt, trousers = _colour(rng), _colour(rng, 0.02, 0.6)
    head_r = height * 0.065
    head_y = top + head_r
    shoulder_y = top + height * 0.16
    hip_y = top + height * 0.52
    torso_w = height * rng.uniform(0.16, 0.22)
    phase = rng.uniform(-1, 1)
    if legs == "walk":
        stride = height * 0.18 * phase
        _paint(img, _segment(cx, hip_y, cx + stride, top + height, height * 0.08), trousers)
        _paint(img, _segment(cx, hip_y, cx - stride, top + height, height * 0.08), trousers * 0.85)
    elif legs == "stand":
        for side in (-1, 1):
            _paint(
                img,
                _segment(
                    cx + side * torso_w * 0.25,
                    hip_y,
                    cx + side * torso_w * 0.3,
                    top + height,
                    height * 0.08,
                ),
                trousers,
            )
    _paint(img, _rect(cx - torso_w / 2, shoulder_y, cx + torso_w / 2, hip_y + height * 0.03), shirt)
    swing = height * 0.1 * phase
    _paint(
        img,
        _segment(
            cx - torso_w / 2,
            shoulder_y + 2,
            cx - torso_w / 2 - swing,
            hip_y + height * 0.02,
            height * 0.05,
        ),
        shirt * 0.9,
    )
    _paint(
        img,
        _segment(
            cx + torso_w / 2,
            shoulder_y + 2,
            cx + torso_w / 2 + swing,
            hip_y + height * 0.02,
            height * 0.05,
        ),
        shirt * 0.9,
    )
    _paint(img, _ellipse(cx, head_y, head_r * 0.85, head_r), skin)
    if rng.random() < 0.4:  # hair or hat
        _paint(
            img,
            _ellipse(cx, head_y - head_r * 0.5, head_r * 0.9, head_r * 0.55),
            _colour(rng, 0, 0.4),
        )
    return cx, hip_y


def _pedestrian(img: np.ndarray, rng: np.random.Generator) -> None:
    height = rng.uniform(0.7, 0.95) * H
    _figure(
        img,
        rng,
        cx=W / 2 + rng.normal(0, 4),
        top=rng.uniform(2, H - height - 1),
        height=height,
        legs=rng.choice(["walk", "stand"]),
    )


def _pole(img: np.ndarray, rng: np.random.Generator) -> None:
    cx, width = W / 2 + rng.normal(0, 6), rng.uniform(3, 9)
    colour = np.full(3, rng.uniform(0.2, 0.7), np.float32)
    _paint(img, _rect(cx - width / 2, -1, cx + width / 2, H + 1), colour)
    if rng.random() < 0.6:  # sign at head height
        y = rng.uniform(5, 40)
        _paint(img, _rect(cx - 10, y, cx + 10, y + rng.uniform(10, 20)), _colour(rng))


def _cyclist(img: np.ndarray, rng: np.random.Generator) -> None:
    height = rng.uniform(0.55, 0.75) * H
    top = rng.uniform(2, H * 0.2)
    cx = W / 2 + rng.normal(0, 4)
    _, hip_y = _figure(img, rng, cx=cx, top=top, height=height, legs="none")
    wheel_y, r = min(hip_y + height * 0.42, H - 8), rng.uniform(9, 14)
    frame = _colour(rng)
    for side in (-1, 1):
        _paint(img, _ring(cx + side * r * 1.1, wheel_y, r, 2.0), np.full(3, 0.08, np.float32))
    _paint(img, _segment(cx - r * 1.1, wheel_y, cx, hip_y + 4, 2.5), frame)
    _paint(img, _segment(cx + r * 1.1, wheel_y, cx, hip_y + 4, 2.5), frame)
    trousers = _colour(rng, 0.02, 0.6)
    _paint(img, _segment(cx, hip_y, cx + rng.uniform(-6, 6), wheel_y, height * 0.08), trousers)


def _stroller(img: np.ndarray, rng: np.random.Generator) -> None:
    base_y = rng.uniform(0.75, 0.95) * H
    cx, body = W / 2 + rng.normal(0, 5), _colour(rng)
    _paint(img, _ellipse(cx, base_y - 22, rng.uniform(14, 20), rng.uniform(12, 18)), body)
    _paint(
        img, _segment(cx + 12, base_y - 30, cx + 22, base_y - 55, 2.5), np.full(3, 0.15, np.float32)
    )
    for dx in (-10, 10):
        _paint(img, _ring(cx + dx, base_y - 4, 5, 2.0), np.full(3, 0.05, np.float32))


_NEGATIVE_DRAWERS = {"pole": _pole, "cyclist": _cyclist, "stroller": _stroller}


def _rain_layers(rng: np.random.Generator, count: int = 6) -> list[np.ndarray]:
    """A drive's rain streak layers; crops reuse them with random shifts (rendering is costly)."""
    return rain_streak_layers(rng, count, streaks=(15, 40), length=(6, 16), slant=0.25)


def _apply_conditions(
    img: np.ndarray, rng: np.random.Generator, lighting: str, rain: list[np.ndarray] | None
) -> np.ndarray:
    if rain:
        layer = rain[rng.integers(len(rain))]
        layer = np.roll(layer, (rng.integers(H), rng.integers(W)), axis=(0, 1))
        img = img * 0.75 + 0.12 + 0.25 * layer[..., None]
    if lighting == "dusk":
        img = img * np.array([0.6, 0.5, 0.45], np.float32)
    elif lighting == "night":
        img = img * rng.uniform(0.25, 0.45)  # v1 is the easy set: night stays legible
        if rng.random() < 0.5:  # headlight glare
            img = (
                img
                + 0.9
                * _ellipse(
                    rng.uniform(0, W),
                    rng.uniform(H * 0.4, H),
                    rng.uniform(6, 16),
                    rng.uniform(4, 10),
                )[..., None]
            )
        img = img + rng.normal(0, 0.04, img.shape).astype(np.float32)
    img = img + rng.normal(0, 0.015, img.shape).astype(np.float32)
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _metadata(rng: np.random.Generator, lighting: str, n: int) -> np.ndarray:
    hour = {
        "day": rng.uniform(8, 17),
        "dusk": rng.uniform(17, 20),
        "night": rng.choice([rng.uniform(20, 24), rng.uniform(0, 5)]),
    }[lighting]
    exposure = {"day": (2, 8), "dusk": (8, 20), "night": (20, 40)}[lighting]
    gain = {"day": (0, 6), "dusk": (6, 14), "night": (14, 30)}[lighting]
    meta = np.empty((n, NUM_METADATA), np.float32)
    meta[:, 0] = np.clip(rng.uniform(0, 18) + rng.normal(0, 1.5, n), 0, None)  # speed_mps
    meta[:, 1] = rng.normal(0, 0.08, n)  # yaw_rate_rps
    meta[:, 2] = rng.uniform(*exposure, n)  # exposure_ms
    angle = 2 * np.pi * (hour + rng.normal(0, 0.05, n)) / 24.0
    meta[:, 3], meta[:, 4] = np.sin(angle), np.cos(angle)
    meta[:, 5] = rng.uniform(*gain, n)  # analog_gain_db
    return meta


def generate_drive(config: SynthConfig, drive_index: int) -> CropBatch:
    """Renders every crop of one drive; same (config, drive_index) gives the same bytes."""
    rng = np.random.default_rng([config.seed, drive_index])
    lighting = pick(rng.random(), {"night": config.night_rate, "dusk": config.dusk_rate}, "day")
    weather = pick(rng.random(), {"rain": config.rain_rate}, "clear")
    scene = pick(rng.random(), {"urban": 0.6}, "suburban")
    n = config.crops_per_drive
    labels = (rng.random(n) < config.positive_rate).astype(np.int64)
    images = np.empty((n, H, W, 3), np.uint8)
    kinds = np.empty(n, dtype=object)
    rain = _rain_layers(rng) if weather == "rain" else None
    for i in range(n):
        img = _background(rng, scene)
        if labels[i]:
            _pedestrian(img, rng)
            kinds[i] = "none"
        elif rng.random() < config.hard_negative_rate:
            kinds[i] = rng.choice(list(_NEGATIVE_DRAWERS))
            _NEGATIVE_DRAWERS[kinds[i]](img, rng)
        else:
            kinds[i] = "background"
        images[i] = _apply_conditions(img, rng, lighting, rain)
    metadata = _metadata(rng, lighting, n)
    metadata[rng.random(n) < config.metadata_missing_rate] = np.nan
    drive_id = f"syn{config.seed}-d{drive_index:06d}"
    return CropBatch.validated(
        images=images,
        metadata=metadata,
        labels=labels,
        lighting=np.full(n, lighting),
        weather=np.full(n, weather),
        scene=np.full(n, scene),
        hard_negative=kinds.astype(str),
        drive_id=np.full(n, drive_id),
        crop_id=np.array([f"{drive_id}-c{i:04d}" for i in range(n)]),
    )


def render_drives(config: dict, drives: list[int]) -> CropBatch:
    """The crops of the given drives, in order (the worker side of `iter_drives`)."""
    cfg = SynthConfig.from_dict(config)
    return CropBatch.concat([generate_drive(cfg, d) for d in drives])


def iter_drives(config: SynthConfig, chunk_drives: int = 16) -> Iterator[CropBatch]:
    """Yields one CropBatch per chunk of drives, in drive order, using worker processes."""
    return generators.iter_drives(render_drives, config, chunk_drives)


def write_synthetic(
    out_dir: str,
    config: SynthConfig,
    *,
    overwrite: bool = False,
    split_fractions: tuple[float, float, float] | None = None,
    shard_records: int = 4096,
    required_splits: tuple[str, ...] = (),
    progress=None,
) -> dict:
    """Generates the dataset and writes shards + manifest. Returns the manifest.

    The dataset is written beside `out_dir` and replaces it only when complete.

    Args:
        split_fractions: train/val/test share of drives (default 0.7/0.15/0.15).
        required_splits: splits that must not come out empty (the CLI requires
            every split given a share).
        progress: optional callable(done_drives, total_drives) for a progress bar.
    """
    from edgeped.data.shards import DEFAULT_SPLIT_FRACTIONS
    from edgeped.data.writer import DatasetWriter

    fractions = split_fractions or DEFAULT_SPLIT_FRACTIONS
    with DatasetWriter(
        out_dir,
        source={"generator": "edgeped.synthetic.v1", "config": config.to_dict()},
        overwrite=overwrite,
        split_fractions=fractions,
        shard_records=shard_records,
        required_splits=required_splits,
    ) as writer:
        done = 0
        # Closed first on a failure or Ctrl-C, so pending drives are cancelled, not rendered.
        with contextlib.closing(iter_drives(config)) as batches:
            for batch in batches:
                writer.add(batch)
                done += len(np.unique(batch.drive_id))
                if progress:
                    progress(done, config.drives)
        return writer.close()
