"""`edgeped train`: teacher, student and QAT stages into a run directory."""

from __future__ import annotations

import click

from edgeped.cli._common import log
from edgeped.errors import EdgepedError, ExitCode
from edgeped.training_stages import TRAINING_STAGES, default_stages


def _stage_help() -> str:
    """`--stage`: every declared stage (with its note), in pipeline order, and the default."""
    listed = ", ".join(
        f"{s.name} ({s.help})" if s.help else s.name for s in TRAINING_STAGES.values()
    )
    return (
        f"A stage to run: {listed}. Repeatable; they run in that order "
        f"[default: the config's stages, {' and '.join(default_stages())}]."
    )


@click.command()
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
    "--profile",
    type=click.Choice(["default", "demo"]),
    default="default",
    show_default=True,
    help="Training profile the config file's keys override: the full recipe, or the "
    "short demo one (configs/demo.toml; sized for `make demo`, 9 points lower recall on "
    "real crops: train real data with the default).",
)
@click.option(
    "--stage",
    "stage_list",
    multiple=True,
    help=_stage_help(),
)
@click.option(
    "--stages",
    hidden=True,
    help="Deprecated comma-list form of --stage (kept so recorded commands still run).",
)
@click.option("--teacher-epochs", type=int, help="Teacher epochs [default: from the config].")
@click.option(
    "--student-epochs",
    type=int,
    help="Epochs of the student and student_distilled stages [default: from the config].",
)
@click.option("--qat-epochs", type=int, help="QAT epochs [default: from the config].")
@click.option(
    "--steps-per-epoch", type=int, help="Cap steps per epoch for every stage (quick runs)."
)
@click.option("--batch-size", type=int, help="Crops per batch [default: from the config].")
@click.option("--seed", type=int, help="Seed of every random draw [default: from the config].")
@click.option(
    "--resume",
    is_flag=True,
    help=(
        "Add stages to the run already in RUN_DIR. Its recorded config must match, except "
        "keys only the stages being run read (e.g. [qat_stage] with --stage student_qat: "
        "QAT again from the same float student)."
    ),
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the run in RUN_DIR; the old one stays until the new one has finished.",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="Run as one worker of a multi-worker cluster described by TF_CONFIG "
    "(MultiWorkerMirroredStrategy; worker 0 writes RUN_DIR; docs/scale.md).",
)
@click.option(
    "--worker-dir",
    type=click.Path(file_okay=False),
    help="--distributed: where a non-chief worker keeps its copies [default: a temp "
    "folder, removed].",
)
def train(
    run_dir,
    data_dir,
    config_file,
    stage_list,
    profile,
    stages,
    teacher_epochs,
    student_epochs,
    qat_epochs,
    steps_per_epoch,
    batch_size,
    seed,
    resume,
    overwrite,
    distributed,
    worker_dir,
) -> None:
    """Train the float student and its QAT version (by default) into RUN_DIR.

    Every stage stops on validation (patience on val AUC-PR, at most `epochs`),
    cuts its learning rate x0.3 when val stalls for half the patience, and keeps
    its best val AUC-PR epoch; QAT starts from the float student best on val.
    Imbalance is handled by a positive loss weight by default; see `imbalance`,
    `loss`, `distill`, `mining` and `augment` in the config file (docs/training.md).
    """
    from edgeped.config import load_mapping
    from edgeped.train.loop import train as run_train
    from edgeped.train.profiles import profile_config

    base = load_mapping(config_file) if config_file else {}
    if data_dir:
        base["data_dir"] = data_dir
    if "data_dir" not in base:
        raise EdgepedError("no dataset given", "pass --data DIR or set data_dir in --config")
    config = profile_config(
        profile, base.pop("data_dir"), base, where=str(config_file or "train config")
    )
    config = config.with_overrides(batch_size=batch_size, seed=seed).with_stage_overrides(
        epochs={
            "teacher_stage": teacher_epochs,
            "student_stage": student_epochs,
            "qat_stage": qat_epochs,
        },
        steps_per_epoch=steps_per_epoch,
    )
    chosen = (
        tuple(stage_list) + tuple(s.strip() for s in (stages or "").split(",") if s.strip()) or None
    )
    if worker_dir and not distributed:
        raise EdgepedError(
            "--worker-dir needs --distributed",
            "add --distributed or drop it",
            exit_code=ExitCode.USAGE,
        )
    if distributed:
        from edgeped.train.distributed import train_distributed

        results = train_distributed(
            run_dir,
            config,
            progress=log,
            stages=chosen,
            worker_dir=worker_dir,
            resume=resume,
            overwrite=overwrite,
        )
    else:
        results = run_train(
            run_dir, config, progress=log, stages=chosen, resume=resume, overwrite=overwrite
        )
    for r in results:
        if not r.checkpoint:
            click.echo(f"{r.name}: skipped ({(r.decision or {}).get('reason', 'not run')})")
            continue
        best = "n/a" if r.best_val_auc_pr is None else f"{r.best_val_auc_pr:.4f}"
        click.echo(
            f"{r.name}: {r.checkpoint} ({r.epochs} epochs, {r.seconds:.0f} s, "
            f"best val AUC-PR {best})"
        )
