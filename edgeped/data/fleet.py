"""The realistic synthetic fleet: proposal crops as a 1920x1080 forward camera would give them.

Each drive draws its conditions once (day/dusk/night, clear/rain/fog,
urban/suburban/construction, a typical speed); each crop draws from its own
random stream seeded by (seed, drive, crop), so any crop is regenerated from its
id alone (`regenerate`) without rendering the rest of its drive. Pedestrians vary
in pose, clothing, size, framing, truncation and occlusion; near-miss negatives
(poles, sign posts, trunks, bollards, cyclists, strollers, cones, barriers,
posters, mannequins, partly framed people) are drawn to look close. Metadata
drives the pixels (exposure x gain sets brightness and noise; speed, yaw and
exposure set motion blur) and then drops out, for whole records and per field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from edgeped.data import fleet_objects as fo
from edgeped.data import fleet_render as fr
from edgeped.data import fleet_scene as fs
from edgeped.data.draw import H, W, colour, ellipse, paint, rect
from edgeped.data.generators import GeneratorConfig, pick
from edgeped.data.schema import NEAR_MISS_KINDS, NUM_METADATA, CropBatch
from edgeped.errors import EdgepedError

GENERATOR = "edgeped.synthetic.fleet"
HARD_KINDS = NEAR_MISS_KINDS  # the near misses the fleet renders (all the schema names)
# Share of each near-miss kind among hard negatives, before the scene multipliers below.
KIND_WEIGHTS = {
    "pole": 0.11,
    "sign_post": 0.1,
    "tree_trunk": 0.1,
    "bollard": 0.07,
    "cyclist": 0.1,
    "stroller": 0.06,
    "cone": 0.05,
    "barrier": 0.05,
    "poster": 0.09,
    "mannequin": 0.07,
    "partial_person": 0.2,
}
SCENE_KIND_BOOST = {
    "construction": {"cone": 5.0, "barrier": 5.0},
    "suburban": {"tree_trunk": 2.0, "poster": 0.3, "mannequin": 0.2},
    "urban": {"poster": 1.5, "mannequin": 1.5},
}
_ID = re.compile(r"^fleet(\d+)-d(\d{6})-c(\d{4})$")


@dataclass(frozen=True)
class FleetConfig(GeneratorConfig):
    """What the fleet generator makes: the shared fields (`GeneratorConfig`) and its own.

    Rates are per drive (conditions) or per crop. difficulty (0..1) scales
    occlusion, truncation, framing jitter, clothing that blends with the
    background and dark clothing at night; 0.5 is the default task.
    """

    hard_negative_rate: float = 0.35
    fog_rate: float = 0.08
    construction_rate: float = 0.1
    urban_rate: float = 0.6
    difficulty: float = 0.5
    whole_record_dropout_share: float = 0.5

    RATES: ClassVar[tuple[str, ...]] = (
        *GeneratorConfig.RATES,
        "fog_rate",
        "construction_rate",
        "urban_rate",
        "difficulty",
        "whole_record_dropout_share",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rain_rate + self.fog_rate > 1.0:
            raise ValueError(
                f"rain_rate + fog_rate must be <= 1, got {self.rain_rate + self.fog_rate}"
            )


@dataclass(frozen=True)
class DriveConditions:
    lighting: str
    weather: str
    scene: str
    speed_mps: float
    hour: float
    rain: list | None  # streak layers, only when raining


def drive_conditions(config: FleetConfig, drive_index: int) -> DriveConditions:
    """The per-drive draw: lighting, weather, scene, speed, hour (and rain layers)."""
    rng = np.random.default_rng([config.seed, drive_index, 0])
    lighting = pick(rng.random(), {"night": config.night_rate, "dusk": config.dusk_rate}, "day")
    weather = pick(rng.random(), {"rain": config.rain_rate, "fog": config.fog_rate}, "clear")
    u = rng.random()
    scene = (
        "construction"
        if u < config.construction_rate
        else "urban"
        if rng.random() < config.urban_rate
        else "suburban"
    )
    speed = {
        "urban": rng.uniform(3, 14),
        "suburban": rng.uniform(6, 20),
        "construction": rng.uniform(2, 9),
    }[scene]
    hour = {
        "day": rng.uniform(8, 17),
        "dusk": rng.uniform(17, 20),
        "night": (rng.uniform(20, 29)) % 24,
    }[lighting]
    rain = (
        fr.rain_layers(np.random.default_rng([config.seed, drive_index, 0, 1]), speed)
        if weather == "rain"
        else None
    )
    return DriveConditions(lighting, weather, scene, float(speed), float(hour), rain)


def _shot(rng: np.random.Generator, drive: DriveConditions) -> tuple[fs.Shot, np.ndarray]:
    """Camera and vehicle state for one crop, and the 6 metadata values it implies.

    Auto-exposure aims at a brightness of 1 (exposure_ms x gain / 4 x radiance);
    at night exposure is capped (blur) and gain tops out, so crops stay darker and
    noisier, which is what the image shows.
    """
    radiance = {"day": 1.0, "dusk": 0.04, "night": 0.003}[drive.lighting] * rng.uniform(0.8, 1.25)
    if drive.weather != "clear":
        radiance *= 0.7
    lo, hi = {"day": (1.0, 6.0), "dusk": (6.0, 16.0), "night": (18.0, 33.0)}[drive.lighting]
    exposure = rng.uniform(lo, hi)
    max_gain = {"day": 6.0, "dusk": 16.0, "night": 24.0}[drive.lighting]
    wanted = 20 * np.log10(max(4.0 / (radiance * exposure), 1e-3)) + rng.normal(0, 1.0)
    gain = float(np.clip(wanted, 0.0, max_gain))
    speed = float(max(0.0, drive.speed_mps + rng.normal(0, 1.5)))
    yaw = float(rng.normal(0, 0.05) if rng.random() > 0.12 else rng.normal(0, 0.3))
    shot = fs.Shot(
        drive.lighting, drive.weather, speed, yaw, float(exposure), gain, float(radiance)
    )
    angle = 2 * np.pi * (drive.hour + rng.normal(0, 0.02)) / 24.0
    meta = np.array([speed, yaw, exposure, np.sin(angle), np.cos(angle), gain], np.float32)
    return shot, meta


def _framed_person(
    cv: fs.Canvas, rng: np.random.Generator, drive: DriveConditions, d: float, wall: np.ndarray
) -> None:
    """A pedestrian as a proposal frames it: scale and centre jitter, truncation, occlusion."""
    night = drive.lighting == "night"
    style = fs.person_style(
        rng,
        weather=drive.weather,
        dark_clothes=(0.2 + 0.6 * d) if night else 0.15,
        blend_with=wall if rng.random() < 0.35 * d else None,
    )
    height = rng.uniform(0.95 - 0.35 * d, 0.97) * H
    cx = W / 2 + rng.normal(0, 2 + 8 * d)
    top = rng.uniform(1, max(2.0, H - height - 1))
    if rng.random() < 0.3 * d:  # truncated by the frame edge or a tight proposal
        side = rng.integers(3)
        if side == 0:
            top += height * rng.uniform(0.15, 0.3)
        elif side == 1:
            top -= height * rng.uniform(0.08, 0.18)
        else:
            cx += rng.choice([-1, 1]) * W * rng.uniform(0.2, 0.32)
    drawn = cv.img.copy() if night else None
    fs.person(cv.img, style, cx=cx, top=top, height=height)
    if night:  # reflective strips on shoes or a vest: bright in the headlights
        fr.reflective_strips(cv, rng, _changed(cv.img, drawn), top, height)
    if rng.random() < 0.5 * d:  # occluded by something in front
        covered = rng.uniform(0.2, 0.3 + 0.35 * d)
        y = top + height * (1 - covered)
        kind = rng.integers(3)
        if kind == 0:  # a car or wall across the lower body
            paint(cv.img, rect(-1, y, W + 1, H + 1), colour(rng))
        elif kind == 1:  # hedge or bin
            paint(
                cv.img, ellipse(cx + rng.normal(0, 10), H, W * 0.7, H - y), colour(rng, 0.05, 0.6)
            )
        else:  # a pole or sign in front of the body
            x = cx + rng.normal(0, 6)
            paint(cv.img, rect(x - 3, -1, x + 3, H + 1), np.full(3, rng.uniform(0.2, 0.7)))


def _changed(img: np.ndarray, before: np.ndarray) -> np.ndarray:
    """(H, W) 1 where a drawing step changed the canvas."""
    return (np.abs(img - before).max(axis=-1) > 1e-4).astype(np.float32)


def _partial_person(
    cv: fs.Canvas, rng: np.random.Generator, drive: DriveConditions, d: float
) -> None:
    """A badly placed proposal: a person mostly outside, far too small, or legs only."""
    style = fs.person_style(rng, weather=drive.weather, dark_clothes=0.3)
    mode = rng.integers(3)
    if mode == 0:
        height = rng.uniform(0.75, 0.95) * H
        fs.person(
            cv.img,
            style,
            cx=rng.choice([-1, 1]) * W * rng.uniform(0.42, 0.6 - 0.1 * d) + W / 2,
            top=rng.uniform(0, H - height),
            height=height,
        )
    elif mode == 1:
        height = rng.uniform(0.22, 0.38) * H
        fs.person(
            cv.img,
            style,
            cx=W / 2 + rng.normal(0, 8),
            top=rng.uniform(0.3, 0.65) * H,
            height=height,
        )
    else:
        height = rng.uniform(1.8, 2.6) * H
        fs.person(
            cv.img,
            style,
            cx=W / 2 + rng.normal(0, 4),
            top=-height * rng.uniform(0.5, 0.65),
            height=height,
        )


_NEAR_MISS: dict[str, Callable] = {
    "pole": fo.pole,
    "sign_post": fo.sign_post,
    "tree_trunk": fo.tree_trunk,
    "bollard": fo.bollard,
    "stroller": fo.stroller,
    "cone": fo.cones,
    "barrier": fo.barrier,
}
_NEAR_MISS_PEOPLE: dict[str, Callable] = {
    "cyclist": fo.cyclist,
    "poster": fo.poster,
    "mannequin": fo.mannequin,
}


def _kind_probabilities(scene: str) -> tuple[list[str], np.ndarray]:
    boost = SCENE_KIND_BOOST.get(scene, {})
    w = np.array([KIND_WEIGHTS[k] * boost.get(k, 1.0) for k in HARD_KINDS])
    return list(HARD_KINDS), w / w.sum()


def _render_crop(
    config: FleetConfig,
    drive_index: int,
    i: int,
    drive: DriveConditions,
    kinds: tuple[list[str], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, int, str]:
    rng = np.random.default_rng([config.seed, drive_index, i + 1])
    label = int(rng.random() < config.positive_rate)
    kind = "none"
    if not label:
        kind = (
            str(rng.choice(kinds[0], p=kinds[1]))
            if rng.random() < config.hard_negative_rate
            else "background"
        )
    shot, meta = _shot(rng, drive)
    cv = fs.Canvas.blank()
    wall = fs.background(cv, rng, drive.scene, drive.lighting)
    ground = cv.img.copy() if drive.lighting == "night" else None
    d = config.difficulty
    if label:
        _framed_person(cv, rng, drive, d, wall)
    elif kind == "partial_person":
        _partial_person(cv, rng, drive, d)
    elif kind in _NEAR_MISS_PEOPLE:
        _NEAR_MISS_PEOPLE[kind](
            cv, rng, drive.lighting, weather=drive.weather, dark_clothes=0.2 + 0.5 * d
        )
    elif kind in _NEAR_MISS:
        _NEAR_MISS[kind](cv, rng, drive.lighting)
    if ground is not None:  # what was drawn over the background is near: the headlights light it
        cv.subject = _changed(cv.img, ground)
    image = fr.render(cv, rng, shot, drive.rain)
    _drop_metadata(rng, meta, config)
    return image, meta, label, kind


def _drop_metadata(rng: np.random.Generator, meta: np.ndarray, config: FleetConfig) -> None:
    """Whole-record dropouts, then independent per-field ones, adding up to the missing rate."""
    whole = config.metadata_missing_rate * config.whole_record_dropout_share
    rest = config.metadata_missing_rate - whole
    per_field = 1 - (1 - rest / max(1 - whole, 1e-9)) ** (1 / NUM_METADATA) if rest > 0 else 0.0
    u_whole, u_fields = rng.random(), rng.random(NUM_METADATA)
    if u_whole < whole:
        meta[:] = np.nan
    else:
        meta[u_fields < per_field] = np.nan


def crop_id(config: FleetConfig, drive_index: int, i: int) -> str:
    return f"fleet{config.seed}-d{drive_index:06d}-c{i:04d}"


def generate_drive(
    config: FleetConfig, drive_index: int, crops: range | list[int] | None = None
) -> CropBatch:
    """Renders a drive's crops (all, or the given indices); same inputs give the same bytes."""
    drive = drive_conditions(config, drive_index)
    kinds = _kind_probabilities(drive.scene)
    index = list(crops) if crops is not None else list(range(config.crops_per_drive))
    n = len(index)
    images = np.empty((n, H, W, 3), np.uint8)
    metadata = np.empty((n, NUM_METADATA), np.float32)
    labels = np.empty(n, np.int64)
    hard = []
    for j, i in enumerate(index):
        images[j], metadata[j], labels[j], kind = _render_crop(config, drive_index, i, drive, kinds)
        hard.append(kind)
    scene_tag = drive.scene
    drive_id = f"fleet{config.seed}-d{drive_index:06d}"
    return CropBatch.validated(
        images=images,
        metadata=metadata,
        labels=labels,
        lighting=np.full(n, drive.lighting),
        weather=np.full(n, drive.weather),
        scene=np.full(n, scene_tag),
        hard_negative=np.array(hard, dtype=str).reshape(n),
        drive_id=np.full(n, drive_id),
        crop_id=np.array([crop_id(config, drive_index, i) for i in index]),
    )


def regenerate(crop_id_: str, config: FleetConfig) -> CropBatch:
    """Renders the one crop named by its id (a 1-record batch), byte-identical to the dataset's.

    Raises:
        EdgepedError: the id is not a fleet id, or was made with another seed or size.
    """
    m = _ID.match(crop_id_)
    if not m:
        raise EdgepedError(
            f"{crop_id_!r} is not a fleet crop id (fleet<seed>-d<drive>-c<crop>)",
            "take the id from a record's crop_id field",
        )
    seed, drive_index, i = (int(g) for g in m.groups())
    if seed != config.seed:
        raise EdgepedError(
            f"crop {crop_id_} was made with seed {seed}, the config has {config.seed}",
            "pass the config from the dataset manifest's source.config",
        )
    if drive_index >= config.drives or i >= config.crops_per_drive:
        raise EdgepedError(
            f"crop {crop_id_} is outside this config ({config.drives} drives x "
            f"{config.crops_per_drive} crops)",
            "use the dataset's own config",
        )
    return generate_drive(config, drive_index, [i])


def render_shard(payload: tuple[dict, list[int]]) -> CropBatch:
    """Renders the drives of one planned shard (the worker side of `write_fleet`)."""
    config = FleetConfig.from_dict(payload[0])
    return CropBatch.concat([generate_drive(config, d) for d in payload[1]])


def plan_shards(
    config: FleetConfig,
    shard_records: int = 4096,
    split_fractions: tuple[float, float, float] | None = None,
) -> list:
    """Groups drives by split into shards of about `shard_records` crops (whole drives each)."""
    from edgeped.data.parallel import ShardTask
    from edgeped.data.shards import DEFAULT_SPLIT_FRACTIONS, split_for_drive

    if shard_records < 1:
        raise ValueError(f"shard_records must be >= 1, got {shard_records}")
    fractions = split_fractions or DEFAULT_SPLIT_FRACTIONS
    by_split: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for d in range(config.drives):
        by_split[split_for_drive(f"fleet{config.seed}-d{d:06d}", fractions)].append(d)
    per_shard = max(1, shard_records // config.crops_per_drive)
    tasks = []
    for split, drives in by_split.items():
        for k, start in enumerate(range(0, len(drives), per_shard)):
            tasks.append(
                ShardTask(
                    split,
                    f"{split}-{k:05d}.tfrecord",
                    "edgeped.data.fleet:render_shard",
                    (config.to_dict(), drives[start : start + per_shard]),
                )
            )
    return tasks


def write_fleet(
    out_dir: str,
    config: FleetConfig,
    *,
    shard_records: int = 4096,
    split_fractions: tuple[float, float, float] | None = None,
    overwrite: bool = False,
    required_splits: tuple[str, ...] = (),
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generates the fleet dataset with parallel shard writers; returns the manifest.

    Args:
        shard_records: target crops per shard (whole drives, so shards come out a little smaller).
        split_fractions: train/val/test share of drives (default 0.7/0.15/0.15).
        required_splits: splits that must not come out empty (the CLI requires
            every split given a share).
        progress: optional callable(done_drives, total_drives).
    """
    from edgeped.data.parallel import write_parallel
    from edgeped.data.shards import DEFAULT_SPLIT_FRACTIONS

    fractions = split_fractions or DEFAULT_SPLIT_FRACTIONS
    tasks = plan_shards(config, shard_records, fractions)
    drives_done = 0

    def step(done: int, total: int) -> None:
        nonlocal drives_done
        drives_done += len(tasks[done - 1].payload[1])
        if progress:
            progress(drives_done, config.drives)

    return write_parallel(
        out_dir,
        tasks,
        workers=config.workers,
        source={"generator": GENERATOR, "config": config.to_dict()},
        split_fractions=fractions,
        overwrite=overwrite,
        required_splits=required_splits,
        progress=step,
    )
