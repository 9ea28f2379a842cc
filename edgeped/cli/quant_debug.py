"""`edgeped quant-debug`: which layers lose accuracy in int8, and the float/16x8 way back."""

from __future__ import annotations

from pathlib import Path

import click

from edgeped.cli._common import log


@click.command("quant-debug")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--samples", default=256, show_default=True, help="val crops for per-layer errors")
@click.option(
    "--calibration-samples", default=256, show_default=True, help="train crops to calibrate"
)
@click.option("--top", default=3, show_default=True, help="worst layers tried in float")
@click.option("--max-fpr", default=0.01, show_default=True, help="val FPR of the threshold")
@click.option(
    "--core",
    type=click.Choice(["a53", "a72", "a76"]),
    default="a76",
    show_default=True,
    help="emulated core that counts each variant's instructions",
)
@click.option(
    "--count/--no-count",
    default=True,
    show_default=True,
    help="count each variant's instructions on the emulated board",
)
@click.option(
    "--keep-float",
    "keep_float",
    multiple=True,
    metavar="TENSOR",
    help="instead of the report: convert with this layer (output tensor name from the "
    "report) kept in float; repeatable",
)
@click.option(
    "--keep-float-op", multiple=True, metavar="OP", help="like --keep-float for an op type"
)
@click.option("--int16", is_flag=True, help="instead of the report: convert the model in 16x8")
@click.option(
    "--name",
    default="student_mixed_int8",
    show_default=True,
    help="model name for --keep-float/--int16 (RUN_DIR/NAME.tflite + card)",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="folder for the report's .json and .md [default: RUN_DIR]",
)
@click.option(
    "--report-name", default="quant_debug", show_default=True, help="file name stem of the report"
)
def quant_debug(
    run_dir,
    samples,
    calibration_samples,
    top,
    max_fpr,
    core,
    count,
    keep_float,
    keep_float_op,
    int16,
    name,
    out,
    report_name,
) -> None:
    """Quantisation report of RUN_DIR's float student, or a mixed-precision conversion.

    The report ranks layers by their int8 error (RMSE in quantisation steps, TFLite's
    QuantizationDebugger on val crops) and measures variants: full int8, each of the
    --top worst layers kept in float, and 16x8, with val/test recall, AUC-PR and
    instructions per invoke. --keep-float/--int16 instead write that variant as
    RUN_DIR/NAME.tflite with its model card.
    """
    from edgeped.convert.converter import MixedPrecision
    from edgeped.evaluate.quant_debug import QuantDebugOptions, convert_mixed_run, quant_debug_run

    if keep_float or keep_float_op or int16:
        mixed = MixedPrecision(tuple(keep_float), tuple(keep_float_op), int16)
        path = convert_mixed_run(
            run_dir, mixed, name=name, calibration_samples=calibration_samples, progress=log
        )
        click.echo(f"wrote {path}")
        return
    options = QuantDebugOptions(
        calibration_samples=calibration_samples,
        debug_samples=samples,
        top=top,
        max_fpr=max_fpr,
        count_instructions=count,
        core=core,
    )
    result = quant_debug_run(run_dir, options, progress=log)
    from edgeped.evaluate.quant_debug_render import save as save_report

    for path in save_report(result, (out or run_dir) / report_name):
        click.echo(f"wrote {path}")
    for i, e in enumerate(result.layers[:top], 1):
        click.echo(f"#{i} {e.op:18s} RMSE/scale {e.rmse_over_scale:6.3f}  {e.tensor}")
