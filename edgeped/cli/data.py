"""`edgeped data`: create, import, verify and describe datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgeped.cli._common import console, overwrite_option
from edgeped.cli.scale import beam_config, runner_options
from edgeped.errors import EdgepedError


@click.group()
def data() -> None:
    """Create, import, verify and describe datasets."""


@data.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--drives", default=600, show_default=True, help="Number of drives to render.")
@click.option(
    "--crops-per-drive", default=50, show_default=True, help="Proposal crops rendered per drive."
)
@click.option(
    "--positive-rate", default=0.025, show_default=True, help="Share of pedestrian crops."
)
@click.option(
    "--missing-rate",
    "metadata_missing_rate",
    default=0.08,
    show_default=True,
    help="Share of records whose metadata dropped out.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of every random draw.")
@click.option("--workers", default=0, show_default=True, help="Processes (0 = one per core).")
@click.option("--overwrite", is_flag=True, help="Replace a dataset already in OUT_DIR.")
@click.option(
    "--generator",
    type=click.Choice(["v1", "fleet"]),
    default="v1",
    show_default=True,
    help="v1: the quick, easy street crops; fleet: the realistic fleet (conditions, "
    "near-miss negatives, per-field dropouts; slower to render).",
)
@click.option(
    "--difficulty", type=float, help="fleet: 0..1 occlusion/truncation/jitter [default: 0.5]."
)
@click.option(
    "--hard-negative-rate",
    type=float,
    help="share of negatives that are near misses [default: v1 0.25, fleet 0.35].",
)
@click.option(
    "--night-rate",
    type=float,
    help="share of night drives [default: 0.25]. Night and dusk share one draw, so "
    "--night-rate + --dusk-rate must be <= 1 (above 0.85, lower --dusk-rate too).",
)
@click.option(
    "--dusk-rate",
    type=float,
    help="share of dusk drives [default: 0.15]; the drives neither night nor dusk are day.",
)
@click.option("--rain-rate", type=float, help="share of rain drives [default: 0.2].")
@click.option("--fog-rate", type=float, help="fleet: share of fog drives [default: 0.08].")
@click.option(
    "--construction-rate",
    type=float,
    help="fleet: share of construction-zone drives [default: 0.1].",
)
@click.option(
    "--shard-records",
    default=4096,
    show_default=True,
    type=click.IntRange(min=1),
    help="crops per shard.",
)
@runner_options
def data_synth(
    out_dir, overwrite, generator, shard_records, runner, beam_options, **options
) -> None:
    """Render a synthetic street-crop dataset (sharded TFRecord + manifest) into OUT_DIR.

    The dataset is written beside OUT_DIR and replaces what is there only when
    complete: an interrupted or failed run leaves the old dataset as it was.
    """
    from rich.progress import Progress

    from edgeped.data.generator_registry import get as get_generator
    from edgeped.data.scaleout import synth
    from edgeped.errors import ExitCode

    beam = beam_config(runner, beam_options)
    _check_lighting(options)
    try:  # the options are the command line's: a bad value is a usage error
        get_generator(generator).config(options)
    except EdgepedError as exc:
        raise EdgepedError(exc.problem, exc.fix, exit_code=ExitCode.USAGE) from exc
    with Progress(console=console(), transient=True) as bar:
        task = bar.add_task("rendering drives", total=options["drives"])
        manifest = synth(
            generator,
            out_dir,
            options,
            shard_records=shard_records,
            overwrite=overwrite,
            progress=lambda done, _: bar.update(task, completed=done),
            beam=beam,
        )
    _print_manifest(out_dir, manifest)


def _check_lighting(options: dict) -> None:
    """Night and dusk are drawn from one share of drives: say so, and which values fit."""
    from edgeped.data.generators import GeneratorConfig
    from edgeped.errors import ExitCode

    night = options.get("night_rate")
    dusk = options.get("dusk_rate")
    night = GeneratorConfig.night_rate if night is None else night
    dusk = GeneratorConfig.dusk_rate if dusk is None else dusk
    if 0 <= night <= 1 and 0 <= dusk <= 1 and night + dusk > 1:
        raise EdgepedError(
            f"--night-rate {night:g} + --dusk-rate {dusk:g} = {night + dusk:g} is more than "
            "every drive: a drive is night, dusk or day, so the two shares must add up to <= 1",
            f"pass --night-rate {night:g} --dusk-rate {max(0.0, 1 - night):g}, or keep dusk at "
            f"{dusk:g} and lower --night-rate to <= {1 - dusk:g}",
            exit_code=ExitCode.USAGE,
        )


def _print_manifest(out_dir: str, manifest: dict) -> None:
    from rich.table import Table

    table = Table(title=f"dataset {out_dir}")
    for col in ("split", "crops", "pedestrians", "shards"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for split, info in manifest["splits"].items():
        table.add_row(split, str(info["records"]), str(info["positives"]), str(len(info["shards"])))
    console().print(table)


@data.group("import")
def data_import() -> None:
    """Import real data (crops + CSV, or frames + COCO/KITTI boxes) as a dataset."""


@data_import.command("crops")
@click.argument("csv_file", type=click.Path(dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace a dataset already in OUT_DIR.")
@runner_options
def data_import_crops(csv_file, out_dir, overwrite, runner, beam_options) -> None:
    """Import the crops CSV_FILE lists (path,label[,split,drive_id,tags,metadata]) into OUT_DIR."""
    from edgeped.data.scaleout import import_crops

    beam = beam_config(runner, beam_options)
    _print_manifest(out_dir, import_crops(csv_file, out_dir, overwrite=overwrite, beam=beam))


def _parse_fractions(ctx, param, value: str) -> tuple[float, float, float]:
    from edgeped.data.shards import check_split_fractions

    try:
        fractions = tuple(float(v) for v in value.split(","))
        check_split_fractions(fractions)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not three shares train,val,test in [0, 1] summing to 1; e.g. 0.6,0.2,0.2"
        ) from None
    return fractions


def _frame_options(func):
    for decorator in reversed(
        [
            click.option(
                "--min-height",
                default=50.0,
                show_default=True,
                help="Shortest person box (pixels) that gives a positive.",
            ),
            click.option(
                "--margin",
                default=0.15,
                show_default=True,
                help="Context above and below the person, as a share of box height.",
            ),
            click.option(
                "--jitter", default=2, show_default=True, help="Jittered copies per person."
            ),
            click.option(
                "--near-miss",
                default=2,
                show_default=True,
                help="Near-miss negatives per person (IoU 0.1-0.3 with every person window).",
            ),
            click.option(
                "--background", default=6, show_default=True, help="Background windows per frame."
            ),
            click.option(
                "--split-fractions",
                "split_fractions",
                default="0.7,0.15,0.15",
                show_default=True,
                callback=_parse_fractions,
                help="Shares of the images for train,val,test (whole images, by a hash of "
                "the name). A small set wants a bigger val: the threshold is read there.",
            ),
            click.option("--seed", default=0, show_default=True, help="Seed of every random draw."),
            click.option("--overwrite", is_flag=True, help="Replace a dataset already in OUT_DIR."),
            runner_options,
        ]
    ):
        func = decorator(func)
    return func


def _frame_config(name, min_height, margin, jitter, near_miss, background, seed, **_):
    """The frame import config from the options; checked before any file is read."""
    from edgeped.data.importers.frames import FrameImportConfig
    from edgeped.data.importers.geometry import WindowRules

    return FrameImportConfig(
        rules=WindowRules(margin=margin, min_height=min_height),
        jitter_copies=jitter,
        near_miss_per_person=near_miss,
        background_per_frame=background,
        seed=seed,
        source_name=name,
    )


def _import_frames(
    frames,
    out_dir,
    source,
    name,
    min_height,
    margin,
    jitter,
    near_miss,
    background,
    split_fractions,
    seed,
    overwrite,
    runner,
    beam_options,
) -> None:
    from rich.progress import Progress

    from edgeped.data.scaleout import import_frames

    beam = beam_config(runner, beam_options)
    config = _frame_config(name, min_height, margin, jitter, near_miss, background, seed)
    with Progress(console=console(), transient=True) as bar:
        task = bar.add_task("cutting crops", total=len(frames))
        summary = import_frames(
            frames,
            out_dir,
            config,
            source=source,
            overwrite=overwrite,
            split_fractions=split_fractions,
            progress=lambda done, _: bar.update(task, completed=done),
            beam=beam,
        )
    _print_manifest(out_dir, summary.manifest)
    click.echo(
        f"{summary.frames} frames: {summary.positives} positives (+{summary.jittered} "
        f"jittered), {summary.near_misses} near misses, {summary.cyclists} cyclists, "
        f"{summary.background} background; {summary.skipped_small} people below "
        f"--min-height kept out of positives"
    )


@data_import.command("coco")
@click.argument("annotations", type=click.Path(dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--images",
    "images_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder the file_name entries are relative to.",
)
@click.option(
    "--category",
    "categories",
    multiple=True,
    help="Category name(s) that are people [default: person, pedestrian].",
)
@_frame_options
def data_import_coco(annotations, out_dir, images_dir, categories, **kw) -> None:
    """Cut proposal crops from frames with COCO boxes (ANNOTATIONS json) into OUT_DIR."""
    from edgeped.data.importers.coco import PERSON_CATEGORIES, load_coco

    name = Path(annotations).resolve().parent.name or "coco"
    _frame_config(name, **kw)
    frames = load_coco(annotations, images_dir, tuple(categories) or PERSON_CATEGORIES)
    _import_frames(
        frames,
        out_dir,
        {"importer": "coco", "annotations": str(Path(annotations).resolve())},
        name,
        **kw,
    )


@data_import.command("kitti")
@click.argument("labels_dir", type=click.Path(file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--images",
    "images_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder of <frame>.png images (image_2/).",
)
@_frame_options
def data_import_kitti(labels_dir, out_dir, images_dir, **kw) -> None:
    """Cut proposal crops from KITTI frames (LABELS_DIR of .txt files) into OUT_DIR."""
    from edgeped.data.importers.kitti import load_kitti

    _frame_config("kitti", **kw)
    frames = load_kitti(labels_dir, images_dir)
    _import_frames(
        frames,
        out_dir,
        {"importer": "kitti", "labels": str(Path(labels_dir).resolve())},
        "kitti",
        **kw,
    )


@data.command("verify")
@click.argument("data_dir", type=click.Path(file_okay=False))
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False),
    help="Also write the report as JSON to this file ('-' for stdout).",
)
@click.option(
    "--no-records", is_flag=True, help="Skip the per-record CRC check (hash and size only)."
)
@runner_options
def data_verify(data_dir, json_out, no_records, runner, beam_options) -> None:
    """Recompute every shard's sha256 and CRCs against the manifest; exit 1 if any is bad."""
    import json as _json

    from rich.table import Table

    from edgeped.data.scaleout import verify
    from edgeped.fileio import check_outputs

    beam = beam_config(runner, beam_options)
    check_outputs(
        {"--json": json_out}, [*Path(data_dir).glob("*.tfrecord"), Path(data_dir) / "manifest.json"]
    )
    result = verify(data_dir, check_records=not no_records, beam=beam)
    table = Table(
        title=f"verify {data_dir}: {len(result.shards) - len(result.bad)} ok, {len(result.bad)} bad"
    )
    for col in ("shard", "split", "status", "detail"):
        table.add_column(col)
    for r in result.shards:
        colour = "green" if r.status == "ok" else "yellow" if r.ok else "red"
        table.add_row(r.file, r.split, f"[{colour}]{r.status}[/{colour}]", r.detail)
    console().print(table)
    if json_out == "-":
        click.echo(_json.dumps(result.to_dict(), indent=2, sort_keys=True))
    elif json_out:
        result.save(json_out)
    sys.exit(result.exit_code)


@data.command("stats")
@click.argument("data_dir", type=click.Path(file_okay=False))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Folder for dataset_card.{md,json} and dataset_card_samples.png [default: DATA_DIR].",
)
@click.option(
    "--samples", default=4, show_default=True, help="Sample crops per class and condition."
)
@overwrite_option
def data_stats(data_dir, out_dir, samples, overwrite) -> None:
    """Write the dataset card: counts by split/label/slice/kind, metadata, sample crops."""
    from edgeped.data.stats import compute_stats, write_card
    from edgeped.outdir import claim_into

    if samples < 1:
        raise EdgepedError("--samples must be >= 1", "pass e.g. 4")
    claim = claim_into(out_dir, "dataset-card", overwrite=overwrite, default=data_dir)
    stats, crops = compute_stats(data_dir, samples_per_cell=samples)
    paths = write_card(stats, crops, claim.path)
    claim.done()
    for split, c in stats["splits"].items():
        click.echo(f"{split}: {c['records']} crops, {c['positives']} pedestrians")
    click.echo(
        f"metadata: {stats['metadata']['records_with_any_missing']:.2%} of records miss a field"
    )
    for kind, path in paths.items():
        click.echo(f"{kind}: {path}")
