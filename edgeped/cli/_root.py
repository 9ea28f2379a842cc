"""The root `edgeped` group: the one place where errors become messages and exit codes."""

from __future__ import annotations

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
