"""The sources the Beam data pipelines read: what a unit is, which split each of its
records goes to, and how a worker renders it.

A unit is what the local writer adds in one step (a chunk of v1 drives, a run of CSV
rows, a source frame), so `edgeped.data.beam_pipeline` can plan the shards exactly as
`DatasetWriter` cuts them and the Beam dataset is byte-identical to the local one.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import numpy as np

from edgeped.data.schema import CropBatch
from edgeped.data.shards import default_required_splits, split_for_drive


class V1Source:
    """v1 synth: a unit is a drive; the local writer adds one chunk of drives at a time."""

    def __init__(self, config) -> None:
        from edgeped.data.synthetic import iter_drives

        self.config = config
        self.group_units = inspect.signature(iter_drives).parameters["chunk_drives"].default

    def units(self, fractions) -> list[list[str]]:
        c = self.config
        return [
            [split_for_drive(f"syn{c.seed}-d{d:06d}", fractions)] * c.crops_per_drive
            for d in range(c.drives)
        ]

    def group(self, unit: int) -> int:
        return unit // self.group_units

    def render(self, units: list[int]) -> dict[int, CropBatch]:
        from edgeped.data.synthetic import generate_drive

        return {u: generate_drive(self.config, u) for u in units}

    def required(self, fractions) -> tuple[str, ...]:
        return default_required_splits(fractions)

    def source(self) -> dict:
        return {"generator": "edgeped.synthetic.v1", "config": self.config.to_dict()}


class CsvSource:
    """A crops CSV: a unit is a row; the local writer adds rows in chunks."""

    def __init__(self, csv_path: str | os.PathLike) -> None:
        from edgeped.data.importers.crops_csv import _CHUNK, read_checked

        self.path = Path(csv_path)
        self.chunk = _CHUNK
        self.header, self.rows = read_checked(self.path)

    def units(self, fractions) -> list[list[str]]:
        """Each row's split, refusing (as the local importer does) leaks and empty splits."""
        from edgeped.data.importers.crops_csv import plan_splits

        splits, _, _ = plan_splits(self.path, self.header, self.rows, fractions)
        return [[split] for split in splits]

    def required(self, fractions) -> tuple[str, ...]:
        from edgeped.data.importers.crops_csv import required_splits

        return required_splits(self.header, self.rows, fractions)

    def group(self, unit: int) -> int:
        return unit // self.chunk

    def render(self, units: list[int]) -> dict[int, CropBatch]:
        from edgeped.data.importers.crops_csv import _batch

        batch = _batch(self.path, self.header, [self.rows[u] for u in units])
        return {u: batch.take(np.array([i])) for i, u in enumerate(units)}

    def source(self) -> dict:
        return {"importer": "crops_csv", "csv": str(self.path.resolve())}


class FramesSource:
    """Annotated frames (COCO, KITTI): a unit is a frame, added to the writer one by one."""

    def __init__(self, frames: list, config, source: dict) -> None:
        from edgeped.data.importers.frames import check_frames

        # The local importer's refusals (missing or repeated images, wrong sizes, bad boxes).
        self.frames, self.config, self._source = check_frames(frames), config, source
        self.counts: dict[str, int] = {}

    def units(self, fractions) -> list[list[str]]:
        from edgeped.data.importers.frames import check_splits_filled, crops_for_frame

        check_splits_filled(self.frames, self.config.source_name, fractions)
        out, totals = (
            [],
            dict.fromkeys(
                ("positives", "jittered", "near_misses", "cyclists", "background", "skipped_small"),
                0,
            ),
        )
        for frame in self.frames:
            windows, counts = crops_for_frame(frame, self.config)
            for k, v in counts.items():
                totals[k] += v
            split = split_for_drive(f"{self.config.source_name}:{frame.image.stem}", fractions)
            out.append([split] * len(windows))
        self.counts = totals
        return out

    def group(self, unit: int) -> int:
        return unit

    def render(self, units: list[int]) -> dict[int, CropBatch]:
        from edgeped.data.importers.frames import frame_batch

        return {u: frame_batch(self.frames[u], self.config)[0] for u in units}

    def required(self, fractions) -> tuple[str, ...]:
        return default_required_splits(fractions)

    def source(self) -> dict:
        return {**self._source, "import_config": self.config.to_dict()}
