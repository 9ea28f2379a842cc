"""The data commands on either runner: in-process (default) or Apache Beam, same bytes.

Each function is what one `edgeped data ...` command calls. Writes end with the
positive-only companion shards and their index (`edgeped.data.positives`), so
class-balanced training never rescans the train split: the Beam writers make
them in their workers inside the staged dataset, before it is swapped in; the
local path reads the fresh train shards once, after the swap.
"""

from __future__ import annotations

from collections.abc import Callable

from edgeped.data.beam_runtime import BeamConfig
from edgeped.errors import EdgepedError

Progress = Callable[[int, int], None] | None


def synth(
    generator: str,
    out_dir: str,
    options: dict,
    *,
    shard_records: int = 4096,
    overwrite: bool = False,
    progress: Progress = None,
    beam: BeamConfig | None = None,
) -> dict:
    """Renders generator `generator` (the registry's name) into out_dir. Returns the manifest.

    Raises:
        EdgepedError: as `generator_registry.write_dataset` (options, shard size, an
            existing dataset), before anything is written; a failed worker.
    """
    from edgeped.data import generator_registry

    if beam is None:
        manifest = generator_registry.write_dataset(
            generator,
            out_dir,
            options,
            shard_records=shard_records,
            overwrite=overwrite,
            progress=progress,
        )
        _index(out_dir)
        return manifest
    generator_registry.check_shard_records(shard_records)
    chosen = generator_registry.get(generator)
    config = chosen.config(options)
    if chosen.beam_write is None:
        raise EdgepedError(
            f"the {generator} generator has no Beam pipeline", "run it with --runner local"
        )
    return chosen.beam_write(
        out_dir, config, beam, shard_records=shard_records, overwrite=overwrite
    )


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
    split_fractions: tuple[float, float, float] | None = None,
    progress: Progress = None,
    beam: BeamConfig | None = None,
):
    """Cuts crops from annotated frames (COCO, KITTI). Returns the ImportSummary."""
    if beam is not None:
        from edgeped.data.beam_pipeline import import_frames_beam

        return import_frames_beam(
            frames,
            out_dir,
            config,
            beam,
            source=source,
            overwrite=overwrite,
            split_fractions=split_fractions,
        )
    from edgeped.data.importers.frames import import_frames as local

    summary = local(
        frames,
        out_dir,
        config,
        source=source,
        overwrite=overwrite,
        split_fractions=split_fractions,
        progress=progress,
    )
    _index(out_dir)
    return summary


def verify(root: str, *, check_records: bool = True, beam: BeamConfig | None = None):
    """Checks every shard against the manifest. Returns the VerifyResult."""
    from edgeped.data.verify import VerifyResult, verify_dataset

    if beam is None:
        return verify_dataset(root, check_records=check_records)
    from edgeped.data.beam_pipeline import verify_beam

    return VerifyResult(str(root), tuple(verify_beam(root, beam, check_records=check_records)))


def _index(out_dir: str) -> None:
    from edgeped.data.positives import write_positive_index

    write_positive_index(out_dir)
