"""Options that move a command past one machine: `--runner beam`, `--beam-option K=V`.

The data and eval commands take `runner_options`; `beam_config` turns the parsed
values into the library's BeamConfig (None for the in-process runner).
"""

from __future__ import annotations

import click

from edgeped.errors import EdgepedError, ExitCode


def runner_options(func):
    """Adds --runner local|beam and repeatable --beam-option K=V to a command."""
    func = click.option(
        "--beam-option",
        "beam_options",
        multiple=True,
        metavar="K=V",
        help="A Beam pipeline option for --runner beam, e.g. direct_num_workers=2 or "
        "runner=DataflowRunner (repeatable; docs/scale.md).",
    )(func)
    return click.option(
        "--runner",
        type=click.Choice(["local", "beam"]),
        default="local",
        show_default=True,
        help="local: in this process; beam: an Apache Beam pipeline (this machine's "
        "workers by default, or the runner --beam-option runner=... names). Same bytes.",
    )(func)


def beam_config(runner: str, beam_options: tuple[str, ...]):
    """BeamConfig for --runner beam, None for local.

    Raises:
        EdgepedError: Beam options without --runner beam, a malformed option, or
            the Beam extra not installed.
    """
    if runner != "beam":
        if beam_options:
            raise EdgepedError(
                "--beam-option needs --runner beam",
                "add --runner beam or drop --beam-option",
                exit_code=ExitCode.USAGE,
            )
        return None
    try:
        import apache_beam  # noqa: F401
    except ImportError as exc:
        raise EdgepedError(
            "--runner beam needs Apache Beam, which is not installed",
            'install the extra: pip install -e ".[beam]" (or tools/install.sh --beam)',
        ) from exc
    from edgeped.data.beam_runtime import BeamConfig

    return BeamConfig(tuple(beam_options))
