"""The data commands on either runner: in-process (default) or Apache Beam, same bytes.

Each function is what one `edgeped data ...` command calls. Writes end with the
positive-only companion shards and their index (`edgeped.data.positives`), so
class-balanced training never rescans the train split: the Beam writers make
them in their workers, the local path reads the fresh train shards once.
"""

from __future__ import annotations

from collections.abc import Callable

from edgeped.data.beam_runtime import BeamConfig

Progress = Callable[[int, int], None] | None


def synth(
    out_dir: str,
    config,
    *,
    shard_records: int = 4096,
    overwrite: bool = False,
    progress: Progress = None,
    beam: BeamConfig | None = None,
) -> dict:
    """Generates a v1 (SynthConfig) or fleet (FleetConfig) dataset. Returns the manifest."""
    from edgeped.data.fleet import FleetConfig

    fleet = isinstance(config, FleetConfig)
    if beam is not None:
        from edgeped.data import beam_pipeline as bp

        if fleet:
            return bp.write_fleet_beam(
                out_dir, config, beam, shard_records=shard_records, overwrite=overwrite
            )
        return bp.write_synthetic_beam(out_dir, config, beam, overwrite=overwrite)
    if fleet:
        from edgeped.data.fleet import write_fleet

        manifest = write_fleet(
            out_dir, config, shard_records=shard_records, overwrite=overwrite, progress=progress
        )
    else:
        from edgeped.data.synthetic import write_synthetic

        manifest = write_synthetic(out_dir, config, overwrite=overwrite, progress=progress)
    _index(out_dir)
    return manifest


def import_crops(
    csv_file: str,
    out_dir: str,
    *,
    overwrite: bool = False,
    progress: Progress = None,
    beam: BeamConfig | None = None,
) -> dict:
    """Imports a crops CSV. Returns the manifest."""
    if beam is not None:
        from edgeped.data.beam_pipeline import import_crops_beam

        return import_crops_beam(csv_file, out_dir, beam, overwrite=overwrite)
    from edgeped.data.importers.crops_csv import import_crops as local

    manifest = local(csv_file, out_dir, overwrite=overwrite, progress=progress)
    _index(out_dir)
    return manifest


def import_frames(
    frames: list,
    out_dir: str,
    config,
    *,
    source: dict,
    overwrite: bool = False,
    progress: Progress = None,
    beam: BeamConfig | None = None,
):
    """Cuts crops from annotated frames (COCO, KITTI). Returns the ImportSummary."""
    if beam is not None:
        from edgeped.data.beam_pipeline import import_frames_beam

        return import_frames_beam(frames, out_dir, config, beam, source=source, overwrite=overwrite)
    from edgeped.data.importers.frames import import_frames as local

    summary = local(frames, out_dir, config, source=source, overwrite=overwrite, progress=progress)
    _index(out_dir)
    return summary


def verify(root: str, *, check_records: bool = True, beam: BeamConfig | None = None) -> list:
    """Checks every shard against the manifest. Returns the ShardReports."""
    if beam is not None:
        from edgeped.data.beam_pipeline import verify_beam

        return verify_beam(root, beam, check_records=check_records)
    from edgeped.data.shards import verify as local

    return local(root, check_records=check_records)


def _index(out_dir: str) -> None:
    from edgeped.data.positives import write_positive_index

    write_positive_index(out_dir)
