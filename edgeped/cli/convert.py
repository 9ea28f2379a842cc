"""`edgeped convert`: checkpoints to float32 and int8 .tflite with model cards."""

from __future__ import annotations

import click

from edgeped.cli._common import log
from edgeped.errors import EdgepedError
from edgeped.layout import MODEL_NAMES


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--only",
    multiple=True,
    help=f"Convert only these outputs ({', '.join(MODEL_NAMES)}). Repeatable.",
)
@click.option(
    "--calibration-samples",
    default=256,
    show_default=True,
    help="Representative crops drawn from the train split for int8 calibration.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False),
    help="The run's dataset, if it moved [default: where config.json records it, relative "
    "to the run first, then its original absolute path]. Must be the dataset trained on.",
)
def convert(run_dir, only, calibration_samples, data_dir) -> None:
    """Convert RUN_DIR's checkpoints to float32 and full-integer int8 .tflite with model cards.

    int8 models take int8 input and give int8 output; the image input maps a
    uint8 pixel u to q = u - 128 (scale 1/128, zero point 0), as each card states.
    """
    from edgeped.convert.run import convert_run

    if calibration_samples < 1:
        raise EdgepedError("--calibration-samples must be >= 1", "pass e.g. 256")
    for c in convert_run(
        run_dir,
        only=tuple(only) or None,
        calibration_samples=calibration_samples,
        data_dir=data_dir,
        progress=log,
    ):
        click.echo(f"{c.path}  {c.mode:9s} {c.size_bytes / 1024:8.1f} KiB  sha256 {c.sha256[:12]}")
