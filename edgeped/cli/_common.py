"""What every command module shares: the console and how a bad option becomes an error.

On a terminal, rich draws live progress and tables at the terminal's width. Anywhere
else (CI, `> log`), lines are plain records that never wrap and carry no trailing
spaces: rich's 80-column default would break a line in the middle of a metric.
"""

from __future__ import annotations

import sys
import time

import click

from edgeped.errors import EdgepedError, ExitCode

PLAIN_WIDTH = 200  # tables when stderr is not a terminal: wide enough not to wrap a row


def is_terminal() -> bool:
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def console():
    """A rich console on stderr (stdout stays for what a script parses)."""
    from rich.console import Console

    if is_terminal():
        return Console(stderr=True, log_path=False)
    return Console(stderr=True, log_path=False, width=PLAIN_WIDTH, soft_wrap=True)


def log(message: str) -> None:
    """One timestamped progress line on stderr (plain, unwrapped when not a terminal)."""
    if is_terminal():
        console().log(message)
    else:
        click.echo(f"[{time.strftime('%H:%M:%S')}] {message}", err=True)


def rule(title: str) -> None:
    """A stage header: a rule across a terminal, a plain `== title ==` line elsewhere."""
    if is_terminal():
        console().rule(title)
    else:
        click.echo(f"== {title} ==", err=True)


def bad_config(exc: ValueError) -> EdgepedError:
    """A config dataclass's ValueError as a user-facing error (a usage error: exit 64)."""
    return EdgepedError(
        f"invalid option: {exc}", "see --help for allowed values", exit_code=ExitCode.USAGE
    )


def write_json_or_stdout(target: str, payload: dict) -> None:
    """Every `--json` takes a file path, or `-` for stdout (the convention)."""
    import json

    from edgeped.fileio import write_json_atomic

    if str(target) == "-":
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        write_json_atomic(target, payload)


def stdout_console(min_width: int = 0):
    """A rich console on stdout for result tables: never squeezed to 80 columns in a log."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(width=max(Console().width, min_width)) if min_width else Console()
    return Console(width=PLAIN_WIDTH, soft_wrap=True)


def overwrite_option(func):
    """`--overwrite`: write into an existing non-empty --out folder edgeped did not mark."""
    return click.option(
        "--overwrite",
        is_flag=True,
        help="write into an existing non-empty --out folder that is not this command's "
        "output (its other files stay; a folder is never deleted)",
    )(func)
