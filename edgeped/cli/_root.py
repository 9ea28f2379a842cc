"""The root `edgeped` group: the one place where errors become messages and exit codes.

Exit codes are defined in `edgeped.errors.ExitCode` (table in docs/conventions.md):
usage errors exit 64 (click's own 2 would collide with the gate's "evidence missing"),
input errors (`EdgepedError`) 65, unexpected exceptions 70 with the traceback.
A `ValueError` is a config dataclass refusing an option value (the project's configs
validate in `__post_init__` and raise it): it becomes `error: invalid option: ...` and
64 here, so commands build their configs without a try/except of their own.
"""

from __future__ import annotations

import os
import traceback

import click

from edgeped.cli._common import bad_config
from edgeped.errors import EdgepedError, ExitCode


def _usage(exc: click.UsageError) -> click.UsageError:
    exc.exit_code = int(ExitCode.USAGE)
    return exc


def _fail(ctx: click.Context, exc: EdgepedError) -> None:
    click.secho(f"error: {exc.problem}", fg="red", err=True)
    if exc.fix:
        click.echo(f"  fix: {exc.fix}", err=True)
    ctx.exit(int(exc.exit_code))


class _Group(click.Group):
    """EdgepedError -> `error:/fix:` and its code (65 unless it says otherwise); usage
    errors and option values a config refuses (ValueError) -> 64; a bug -> traceback and 70."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise _usage(exc) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _usage(exc) from None
        except EdgepedError as exc:
            _fail(ctx, exc)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence: say it is a bug
            # Exactly ValueError: a subclass (a JSON or Unicode decode error) is no option value.
            if type(exc) is ValueError:
                from edgeped import quiet

                if quiet.verbose():  # `edgeped -v`: where it was raised, should it be a bug
                    click.echo(traceback.format_exc(), err=True)
                _fail(ctx, bad_config(exc))
            click.echo(traceback.format_exc(), err=True)
            click.secho(
                f"internal error: {type(exc).__name__}: {exc} (this is a bug in edgeped; "
                "please report it with the traceback above)",
                fg="red",
                err=True,
            )
            ctx.exit(int(ExitCode.INTERNAL))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgeped")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show the libraries' own logs (TensorFlow, absl, converter, LiteRT), hidden by default.",
)
def main(verbose: bool) -> None:
    """edgeped: take a pedestrian crop classifier from training data to a vehicle ECU.

    \b
    Typical flow:
      edgeped data synth data/synth          make a synthetic fleet dataset
      edgeped train runs/r1 --data data/synth teacher + QAT student
      edgeped convert runs/r1                 float32 and int8 .tflite + model cards
      edgeped eval runs/r1                    metrics.json, report.md, plots, error gallery
      edgeped bench MODEL --target arm64-emu  latency, RSS, size on a target
      edgeped gate runs/r1 --budgets budgets.toml
      edgeped doctor                          check the environment, say how to fix it
    Or run it all on small defaults with `edgeped demo`.

    \b
    Exit codes: 0 ok; 1 a check failed (budget, shard, parity); 2 gate evidence
    missing/stale; 64 usage error; 65 input error; 70 internal error.
    """
    from edgeped import quiet

    if verbose:
        os.environ[quiet.VERBOSE_ENV] = "1"  # child processes inherit it too
    quiet.configure_environment()
    quiet.install_stderr_filter()
