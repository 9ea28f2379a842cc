"""The `edgeped` command line: a thin shell over the library.

Each command parses its options, calls one library function, renders the result
and returns an exit code. TensorFlow is imported only inside commands that need it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgeped.errors import EdgepedError


class _Group(click.Group):
    """Turns EdgepedError into a clean message and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgepedError as exc:
            click.secho(f"error: {exc.problem}", fg="red", err=True)
            if exc.fix:
                click.echo(f"  fix: {exc.fix}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgeped")
def main() -> None:
    """edgeped: take a pedestrian crop classifier from training data to a vehicle ECU.

    \b
    Typical flow:
      edgeped data synth data/synth          make a synthetic fleet dataset
      edgeped train runs/r1 --data data/synth teacher + QAT student
      edgeped convert runs/r1                 float32 and int8 .tflite + model cards
      edgeped eval runs/r1                    metrics.json, report.md, PR/ROC plots
      edgeped bench MODEL --target arm64-emu  latency, RSS, size on a target
      edgeped gate runs/r1 --budgets budgets.toml
    Or run it all on small defaults with `edgeped demo`.
    """


@main.group()
def data() -> None:
    """Create, import, verify and describe datasets."""


def _console():
    from rich.console import Console

    return Console(stderr=True, log_path=False)


def _log(message: str) -> None:
    _console().log(message)


def _bad_config(exc: ValueError) -> EdgepedError:
    return EdgepedError(f"invalid option: {exc}", "see --help for allowed values")


@data.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--drives", default=600, show_default=True, help="Number of drives to render.")
@click.option("--crops-per-drive", default=50, show_default=True)
@click.option(
    "--positive-rate", default=0.025, show_default=True, help="Share of pedestrian crops."
)
@click.option(
    "--missing-rate",
    default=0.08,
    show_default=True,
    help="Share of records whose metadata dropped out.",
)
@click.option("--seed", default=0, show_default=True)
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
@click.option("--difficulty", type=float, help="fleet: 0..1 occlusion/truncation/jitter [0.5].")
@click.option(
    "--hard-negative-rate",
    type=float,
    help="fleet: share of negatives that are near misses [0.35].",
)
@click.option("--night-rate", type=float, help="fleet: share of night drives [0.25].")
@click.option("--rain-rate", type=float, help="fleet: share of rain drives [0.2].")
@click.option("--fog-rate", type=float, help="fleet: share of fog drives [0.08].")
@click.option(
    "--construction-rate", type=float, help="fleet: share of construction-zone drives [0.1]."
)
@click.option("--shard-records", default=4096, show_default=True, help="fleet: crops per shard.")
def data_synth(
    out_dir,
    drives,
    crops_per_drive,
    positive_rate,
    missing_rate,
    seed,
    workers,
    overwrite,
    generator,
    shard_records,
    **fleet_rates,
) -> None:
    """Render a synthetic street-crop dataset (sharded TFRecord + manifest) into OUT_DIR."""
    from rich.progress import Progress

    from edgeped.data.fleet import FleetConfig, write_fleet
    from edgeped.data.synthetic import SynthConfig, write_synthetic

    fleet_only = {k: v for k, v in fleet_rates.items() if v is not None}
    if generator == "v1" and fleet_only:
        raise EdgepedError(
            f"option(s) {sorted(fleet_only)} apply to --generator fleet only",
            "add --generator fleet or drop them",
        )
    try:
        common = dict(
            drives=drives,
            crops_per_drive=crops_per_drive,
            positive_rate=positive_rate,
            metadata_missing_rate=missing_rate,
            seed=seed,
            workers=workers,
        )
        config = (
            FleetConfig(**common, **fleet_only) if generator == "fleet" else SynthConfig(**common)
        )
    except ValueError as exc:
        raise _bad_config(exc) from exc
    with Progress(console=_console(), transient=True) as bar:
        task = bar.add_task("rendering drives", total=drives)
        update = lambda done, _: bar.update(task, completed=done)  # noqa: E731
        manifest = (
            write_fleet(
                out_dir, config, shard_records=shard_records, overwrite=overwrite, progress=update
            )
            if generator == "fleet"
            else write_synthetic(out_dir, config, overwrite=overwrite, progress=update)
        )
    _print_manifest(out_dir, manifest)


def _print_manifest(out_dir: str, manifest: dict) -> None:
    from rich.table import Table

    table = Table(title=f"dataset {out_dir}")
    for col in ("split", "crops", "pedestrians", "shards"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for split, info in manifest["splits"].items():
        table.add_row(split, str(info["records"]), str(info["positives"]), str(len(info["shards"])))
    _console().print(table)


@data.group("import")
def data_import() -> None:
    """Import real data (crops + CSV, or frames + COCO/KITTI boxes) as a dataset."""


@data_import.command("crops")
@click.argument("csv_file", type=click.Path(dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace a dataset already in OUT_DIR.")
def data_import_crops(csv_file, out_dir, overwrite) -> None:
    """Import the crops CSV_FILE lists (path,label[,split,drive_id,tags,metadata]) into OUT_DIR."""
    from edgeped.data.importers.crops_csv import import_crops

    _print_manifest(out_dir, import_crops(csv_file, out_dir, overwrite=overwrite))


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
            click.option("--seed", default=0, show_default=True),
            click.option("--overwrite", is_flag=True, help="Replace a dataset already in OUT_DIR."),
        ]
    ):
        func = decorator(func)
    return func


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
    seed,
    overwrite,
) -> None:
    from rich.progress import Progress

    from edgeped.data.importers.frames import FrameImportConfig, import_frames
    from edgeped.data.importers.geometry import WindowRules

    try:
        config = FrameImportConfig(
            rules=WindowRules(margin=margin, min_height=min_height),
            jitter_copies=jitter,
            near_miss_per_person=near_miss,
            background_per_frame=background,
            seed=seed,
            source_name=name,
        )
    except ValueError as exc:
        raise _bad_config(exc) from exc
    with Progress(console=_console(), transient=True) as bar:
        task = bar.add_task("cutting crops", total=len(frames))
        summary = import_frames(
            frames,
            out_dir,
            config,
            source=source,
            overwrite=overwrite,
            progress=lambda done, _: bar.update(task, completed=done),
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

    frames = load_coco(annotations, images_dir, tuple(categories) or PERSON_CATEGORIES)
    _import_frames(
        frames,
        out_dir,
        {"importer": "coco", "annotations": str(Path(annotations).resolve())},
        Path(annotations).resolve().parent.name or "coco",
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
def data_verify(data_dir, json_out, no_records) -> None:
    """Recompute every shard's sha256 and CRCs against the manifest; exit 1 if any is bad."""
    import json as _json

    from rich.table import Table

    from edgeped.data.shards import verify
    from edgeped.fileio import write_json_atomic
    from edgeped.provenance import stamp

    reports = verify(data_dir, check_records=not no_records)
    bad = [r for r in reports if not r.ok]
    table = Table(title=f"verify {data_dir}: {len(reports) - len(bad)} ok, {len(bad)} bad")
    for col in ("shard", "split", "status", "detail"):
        table.add_column(col)
    for r in reports:
        colour = "green" if r.status == "ok" else "yellow" if r.ok else "red"
        table.add_row(r.file, r.split, f"[{colour}]{r.status}[/{colour}]", r.detail)
    _console().print(table)
    payload = {
        **stamp("edgeped.verify"),
        "dataset": str(data_dir),
        "ok": not bad,
        "bad": len(bad),
        "shards": [r.__dict__ for r in reports],
    }
    if json_out == "-":
        click.echo(_json.dumps(payload, indent=2, sort_keys=True))
    elif json_out:
        write_json_atomic(json_out, payload)
    sys.exit(1 if bad else 0)


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
def data_stats(data_dir, out_dir, samples) -> None:
    """Write the dataset card: counts by split/label/slice/kind, metadata, sample crops."""
    from edgeped.data.stats import compute_stats, write_card

    if samples < 1:
        raise EdgepedError("--samples must be >= 1", "pass e.g. 4")
    stats, crops = compute_stats(data_dir, samples_per_cell=samples)
    paths = write_card(stats, crops, out_dir or data_dir)
    for split, c in stats["splits"].items():
        click.echo(f"{split}: {c['records']} crops, {c['positives']} pedestrians")
    click.echo(
        f"metadata: {stats['metadata']['records_with_any_missing']:.2%} of records miss a field"
    )
    for kind, path in paths.items():
        click.echo(f"{kind}: {path}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option(
    "--data", "data_dir", type=click.Path(), help="Dataset folder (overrides the config)."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML/JSON train config (keys as in the run's config.json).",
)
@click.option(
    "--stages",
    default="teacher,student_distilled,student_qat",
    show_default=True,
    help="Comma list of stages: teacher, student (labels only), student_distilled, "
    "student_qat, student_pruned. They run in that order.",
)
@click.option("--teacher-epochs", type=int)
@click.option("--student-epochs", type=int)
@click.option("--qat-epochs", type=int)
@click.option(
    "--steps-per-epoch", type=int, help="Cap steps per epoch for every stage (quick runs)."
)
@click.option("--batch-size", type=int)
@click.option("--seed", type=int)
def train(
    run_dir,
    data_dir,
    config_file,
    stages,
    teacher_epochs,
    student_epochs,
    qat_epochs,
    steps_per_epoch,
    batch_size,
    seed,
) -> None:
    """Train the teacher, the (distilled) student and its QAT version into RUN_DIR.

    Imbalance is handled by class-balanced sampling (25% pedestrians per batch)
    by default; see `imbalance`, `loss`, `distill`, `mining` and `augment` in the
    config file. The best epoch by validation AUC-PR is kept as each checkpoint.
    """
    from dataclasses import replace

    from edgeped.config import load_mapping
    from edgeped.train.config import TrainConfig
    from edgeped.train.loop import train as run_train

    try:
        base = load_mapping(config_file) if config_file else {}
        if data_dir:
            base["data_dir"] = data_dir
        if "data_dir" not in base:
            raise EdgepedError("no dataset given", "pass --data DIR or set data_dir in --config")
        config = TrainConfig.from_dict(base).with_overrides(batch_size=batch_size, seed=seed)
        for stage, epochs in (
            ("teacher_stage", teacher_epochs),
            ("student_stage", student_epochs),
            ("qat_stage", qat_epochs),
        ):
            current = getattr(config, stage)
            changes = {}
            if epochs is not None:
                changes["epochs"] = epochs
            if steps_per_epoch is not None:
                changes["steps_per_epoch"] = steps_per_epoch
            config = replace(config, **{stage: replace(current, **changes)})
        chosen = tuple(s.strip() for s in stages.split(",") if s.strip())
    except ValueError as exc:
        raise _bad_config(exc) from exc
    results = run_train(run_dir, config, progress=_log, stages=chosen)
    for r in results:
        best = "n/a" if r.best_val_auc_pr is None else f"{r.best_val_auc_pr:.4f}"
        click.echo(
            f"{r.name}: {r.checkpoint} ({r.epochs} epochs, {r.seconds:.0f} s, "
            f"best val AUC-PR {best})"
        )


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--only",
    multiple=True,
    help="Convert only these outputs (teacher_float32, student_float32, "
    "student_distilled_float32, student_ptq_int8, student_qat_int8, "
    "student_pruned_float32, student_pruned_ptq_int8). Repeatable.",
)
@click.option(
    "--calibration-samples",
    default=256,
    show_default=True,
    help="Representative crops drawn from the train split for int8 calibration.",
)
def convert(run_dir, only, calibration_samples) -> None:
    """Convert RUN_DIR's checkpoints to float32 and full-integer int8 .tflite with model cards.

    int8 models take int8 input and give int8 output; the image input maps a
    uint8 pixel u to q = u - 128 (scale 1/128, zero point 0), as each card states.
    """
    from edgeped.convert.run import convert_run

    if calibration_samples < 1:
        raise EdgepedError("--calibration-samples must be >= 1", "pass e.g. 256")
    for c in convert_run(
        run_dir, only=tuple(only) or None, calibration_samples=calibration_samples, progress=_log
    ):
        click.echo(f"{c.path}  {c.mode:9s} {c.size_bytes / 1024:8.1f} KiB  sha256 {c.sha256[:12]}")


@main.command("eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--max-fpr", default=0.01, show_default=True, help="FPR limit for the threshold.")
@click.option(
    "--min-recall", default=0.92, show_default=True, help="Recall target (second reading)."
)
@click.option("--data", "data_dir", type=click.Path(), help="Evaluate on another dataset.")
@click.option("--only", multiple=True, help="Evaluate only these models. Repeatable.")
@click.option("--threads", default=2, show_default=True)
@click.option(
    "--metadata-dropout",
    default=0.0,
    show_default=True,
    help="Drop metadata (set NaN) for this share of val/test records before scoring.",
)
@click.option(
    "--tag",
    default="",
    help="Write metrics-TAG.json/report-TAG.md and leave the "
    "model cards' thresholds alone (for side experiments).",
)
def eval_(run_dir, max_fpr, min_recall, data_dir, only, threads, metadata_dropout, tag) -> None:
    """Evaluate RUN_DIR's .tflite models: threshold on val, metrics on test.

    Writes metrics.json, report.md and plots/{pr,roc}.png into RUN_DIR and the
    chosen threshold into each model card.
    """
    from edgeped.evaluate.run import EvalConfig, evaluate_run, write_outputs

    try:
        config = EvalConfig(
            max_fpr=max_fpr,
            min_recall=min_recall,
            threads=threads,
            metadata_dropout=metadata_dropout,
        )
        if tag and not tag.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"tag must be letters, digits, - or _, got {tag!r}")
    except ValueError as exc:
        raise _bad_config(exc) from exc
    report = evaluate_run(
        run_dir, config, only=tuple(only) or None, data_dir=data_dir, progress=lambda _: None
    )
    paths = write_outputs(run_dir, report, tag=tag)
    _print_metrics(report)
    click.echo(
        f"report: {paths['report']}\nmetrics: {paths['metrics']}\n"
        f"per-crop test scores: {paths['test_scores']}"
    )


def _print_metrics(report: dict) -> None:
    from rich.table import Table

    cfg = report["config"]
    table = Table(title=f"test split, threshold from val (max recall at FPR <= {cfg['max_fpr']})")
    for col in ("model", "size KiB", "recall", "FPR", "AUC-PR", "ROC-AUC"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, r in report["models"].items():
        t = r["test"]
        table.add_row(
            name,
            f"{r['model']['size_bytes'] / 1024:.1f}",
            f"{t['recall']:.4f}",
            f"{t['fpr']:.4f}",
            f"{t['auc_pr']:.4f}",
            f"{t['roc_auc']:.4f}",
        )
    _console().print(table)
    for c in report["comparisons"]:
        _console().print(
            f"{c['quantized']} vs {c['float']}: decision flips {c['flips']} "
            f"({100 * c['flip_rate']:.2f}%), d recall {c['delta']['recall']:+.4f}, "
            f"d AUC-PR {c['delta']['auc_pr']:+.4f}"
        )


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for comparison.md, comparison.json and recall_vs_size.png.",
)
@click.option(
    "--slice",
    "slices",
    multiple=True,
    help="Also show recall/FPR of this slice, e.g. lighting=night. Repeatable.",
)
def compare(sources, out_dir, slices) -> None:
    """Compare models across runs: SOURCES are RUN_DIR, metrics*.json, or LABEL=PATH.

    One row per model of each source: size, parameters, test recall with its
    by-drive 95% interval, FPR, AUC-PR, ECE, and the chosen slices.
    """
    from edgeped.evaluate.compare import Source, write_comparison
    from edgeped.evaluate.compare import compare as run_compare

    result = run_compare([Source.parse(s) for s in sources], tuple(slices))
    paths = write_comparison(out_dir, result)
    click.echo(paths["markdown"].read_text())
    click.echo(f"written: {paths['markdown']}, {paths['json']}, {paths['plot']}")


@main.command()
@click.option(
    "--out",
    "out_dir",
    default="runs/demo",
    show_default=True,
    help="Folder for the demo's dataset and run.",
)
@click.option("--drives", type=int, help="Override the number of synthetic drives (480).")
@click.option(
    "--epochs-scale",
    default=1.0,
    show_default=True,
    help="Multiply every stage's epochs (e.g. 0.5 for a quicker, weaker demo).",
)
def demo(out_dir, drives, epochs_scale) -> None:
    """Run the whole pipeline on small defaults (about 10 minutes on 2 cores).

    Synthetic data, float teacher, QAT student, int8 conversion and evaluation;
    prints where the report is at the end.
    """
    import time
    from dataclasses import replace

    from rich.progress import Progress

    from edgeped.demo import DemoConfig, run_demo

    config = DemoConfig(out_dir=out_dir)
    if drives is not None:
        try:
            config = replace(config, synth=replace(config.synth, drives=drives))
        except ValueError as exc:
            raise _bad_config(exc) from exc
    if epochs_scale != 1.0:
        if epochs_scale <= 0:
            raise EdgepedError("--epochs-scale must be > 0", "pass e.g. 0.5")
        config = replace(
            config,
            **{
                s: replace(
                    getattr(config, s),
                    epochs=max(1, round(getattr(config, s).epochs * epochs_scale)),
                )
                for s in ("teacher_stage", "student_stage", "qat_stage")
            },
        )
    start = time.perf_counter()
    console = _console()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("rendering drives", total=config.synth.drives)
        result = run_demo(
            config,
            step=lambda s: console.rule(s),
            detail=_log,
            synth_progress=lambda done, _: bar.update(task, completed=done),
            budgets_file=Path("budgets.toml") if Path("budgets.toml").is_file() else None,
        )
    from edgeped.fileio import read_json

    _print_metrics(read_json(result.metrics, "metrics"))
    _print_demo_gate(result)
    click.echo(f"stage seconds: {result.seconds}; total {time.perf_counter() - start:.0f} s")
    click.echo(f"report: {result.report}")


def _print_demo_gate(result) -> None:
    """The demo's gate: the table, what it could judge here, and what needs a real board."""
    from rich.console import Console

    from edgeped.gate.render import console_table, headline, judged_and_missing

    verdict = result.gate
    Console(width=max(Console().width, 140)).print(console_table(verdict))
    judged, missing = judged_and_missing(verdict)
    click.echo(f"judged here ({len(judged)}): {', '.join(judged)}")
    click.echo(f"not judged ({len(missing)}): {', '.join(missing) or 'none'}")
    for note in result.gate_notes:
        click.echo(f"  - {note}")
    click.echo(headline(verdict))
    click.echo(f"gate: {result.run_dir / 'gate.md'} (the demo itself exits 0)")


def _bench_options(**kw):
    """BenchOptions from CLI values; emulated targets default to fewer timed runs."""
    from edgeped.targets import BenchOptions

    emulated = kw.pop("emulated")
    runs, min_seconds = kw.pop("runs"), kw.pop("min_seconds")
    pin = kw.pop("pin")
    try:
        return BenchOptions(
            min_runs=runs or (10 if emulated else 50),
            min_seconds=min_seconds if min_seconds is not None else (0.0 if emulated else 1.0),
            pin=tuple(int(c) for c in pin.split(",")) if pin else (),
            **kw,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _bench_common(func):
    for decorator in reversed(
        [
            click.option(
                "--targets",
                "targets_file",
                type=click.Path(dir_okay=False, path_type=Path),
                help="targets.toml (default: $EDGEPED_TARGETS, else ./targets.toml)",
            ),
            click.option("--threads", default=1, show_default=True, help="interpreter threads"),
            click.option("--batch", default=1, show_default=True, help="crops per invoke"),
            click.option(
                "--runs", type=int, help="minimum timed invokes [default: 50, emulated 10]"
            ),
            click.option(
                "--min-seconds", type=float, help="minimum timed seconds [default: 1, emulated 0]"
            ),
            click.option("--warmup", default=5, show_default=True),
            click.option(
                "--crops",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help=".npz of real crops (images uint8 [N,128,64,3], metadata [N,6])",
            ),
            click.option(
                "--preprocess",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="metadata mean/std JSON [default: the model card's preprocessing]",
            ),
            click.option(
                "--timeout",
                "timeout_s",
                default=600.0,
                show_default=True,
                help="seconds before the run is stopped (also on the board)",
            ),
        ]
    ):
        func = decorator(func)
    return func


def _render_bench(result, path: Path) -> int:
    from rich.console import Console

    from edgeped.targets.render import summary_table

    Console().print(summary_table(result))
    click.echo(f"wrote {path}")
    parity = result.parity
    if parity is not None and not parity["ok"]:
        click.secho(
            f"parity FAILED: {parity['mismatches']} of {parity['n']} outputs differ from the host",
            fg="red",
            err=True,
        )
        return 1
    return 0


@main.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--target",
    "target_name",
    default="local",
    show_default=True,
    help="local, arm64-emu, or a target name in targets.toml",
)
@click.option(
    "--core",
    type=click.Choice(["a53", "a72", "a76"]),
    help="core model of the emulated board [default: a76]",
)
@_bench_common
@click.option(
    "--golden",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="golden outputs .npz (default: computed on the host when --parity)",
)
@click.option(
    "--parity/--no-parity",
    default=False,
    show_default=True,
    help="check outputs against the host (bit-exact for int8)",
)
@click.option("--no-xnnpack", is_flag=True, help="run without the XNNPACK delegate")
@click.option("--delegate", help="external delegate shared library on the target")
@click.option("--pin", help="CPU list to pin the runner to, e.g. 0 or 0,1")
@click.option(
    "--load-threads",
    default=0,
    show_default=True,
    help="busy background threads mimicking other ECU tasks",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bench.json"),
    show_default=True,
)
def bench(
    model, target_name, core, targets_file, crops, golden, parity, preprocess, out, no_xnnpack, **kw
) -> None:
    """Benchmark MODEL on a target: latency percentiles, RSS, size, parity, instructions."""
    from edgeped.targets import bench_model, resolve_target

    target = resolve_target(target_name, targets_file, core)
    options = _bench_options(emulated=target.emulated, xnnpack=not no_xnnpack, **kw)
    console = _console()
    result = bench_model(
        model,
        target,
        options,
        crops=crops,
        golden=golden,
        preprocess=preprocess,
        parity=parity or golden is not None,
        progress=lambda msg: console.print(f"[dim]• {msg}[/dim]"),
    )
    sys.exit(_render_bench(result, result.save(out)))


@main.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", "host", required=True, help="SSH target name in targets.toml, e.g. ecu-dev")
@_bench_common
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="run directory for bench.json [default: the model's directory]",
)
def deploy(model, host, targets_file, crops, preprocess, run_dir, **kw) -> None:
    """Push MODEL to a board, check parity with the host, benchmark, store bench.json."""
    from edgeped.targets import deploy_model, resolve_target

    target = resolve_target(host, targets_file)
    options = _bench_options(emulated=target.emulated, pin=None, load_threads=0, **kw)
    console = _console()
    result, path = deploy_model(
        model,
        target,
        run_dir or model.parent,
        options,
        crops=crops,
        preprocess=preprocess,
        progress=lambda msg: console.print(f"[dim]• {msg}[/dim]"),
    )
    sys.exit(_render_bench(result, path))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--budgets",
    "budgets_file",
    default="budgets.toml",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="budgets TOML (docs/budgets.md)",
)
@click.option("--model", help="model name in RUN_DIR [default: the budgets file's `model`]")
@click.option(
    "--baseline",
    type=click.Path(file_okay=False, path_type=Path),
    help="previous release's run directory, for the change budgets: recall drop, "
    "decision flips crop by crop (both runs' test_scores.npz, same test crops) "
    "and real-target latency regression",
)
@click.option(
    "--bench",
    "bench_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="extra bench.json kept outside RUN_DIR (RUN_DIR/bench*.json and "
    "RUN_DIR/bench/*.json are always read). Repeatable.",
)
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="write JUnit XML")
@click.option(
    "--summary", type=click.Path(dir_okay=False, path_type=Path), help="write a Markdown summary"
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the verdict as JSON",
)
def gate(run_dir, budgets_file, model, baseline, bench_files, junit, summary, json_out) -> None:
    """Judge a run's model against every budget; exit 0 pass, 1 fail, 2 missing/stale evidence.

    Reads the model card, metrics.json and bench results in RUN_DIR. Latency and
    memory budgets accept only real-target measurements; the gate fails closed.
    """
    from rich.console import Console

    from edgeped.gate import gate_run, load_budgets
    from edgeped.gate.render import console_table, headline, problems, write_reports

    verdict = gate_run(
        run_dir,
        load_budgets(budgets_file),
        model=model,
        baseline=baseline,
        bench_files=tuple(str(p) for p in bench_files),
    )
    Console(width=max(Console().width, 140)).print(console_table(verdict))
    for line in problems(verdict):
        click.echo(f"  {line}")
    for path in write_reports(verdict, json_path=json_out, junit_path=junit, summary_path=summary):
        click.echo(f"wrote {path}")
    click.echo(headline(verdict))
    sys.exit(verdict.exit_code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
