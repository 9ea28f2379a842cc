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

The package: `registry` (the `CORRUPTIONS` registry and its `@corruption` decorator),
`camera` (gamma, noise model, metadata edits, kernels), `original` (the first ten
families), `extended` (the families added beside them) and `suite` (corrupting crops,
choosing families, the docs' tables). Import the names from here.
"""

import edgeped.evaluate.corruptions.extended  # noqa: F401  (registers every family)
from edgeped.evaluate.corruptions.camera import (
    EXPOSURE,
    GAIN,
    GAMMA,
    MAX_EXPOSURE_MS,
    SPEED,
    TOD_COS,
    TOD_SIN,
    YAW,
    to_linear,
    to_u8,
)
from edgeped.evaluate.corruptions.original import ORIGINAL_FAMILIES, motion_blur_px
from edgeped.evaluate.corruptions.registry import CORRUPTIONS, SEVERITIES, Corruption, corruption
from edgeped.evaluate.corruptions.suite import (
    corrupt,
    corrupt_batch,
    crop_rng,
    family_split,
    parameter_table_markdown,
    parse_corruptions,
)

__all__ = [
    "CORRUPTIONS",
    "EXPOSURE",
    "GAIN",
    "GAMMA",
    "MAX_EXPOSURE_MS",
    "ORIGINAL_FAMILIES",
    "SEVERITIES",
    "SPEED",
    "TOD_COS",
    "TOD_SIN",
    "YAW",
    "Corruption",
    "corrupt",
    "corrupt_batch",
    "corruption",
    "crop_rng",
    "family_split",
    "motion_blur_px",
    "parameter_table_markdown",
    "parse_corruptions",
    "to_linear",
    "to_u8",
]
