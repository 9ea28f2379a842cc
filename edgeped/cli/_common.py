"""What every command module shares: the console and how a bad option becomes an error."""

from __future__ import annotations

from edgeped.errors import EdgepedError


def console():
    """A rich console on stderr (stdout stays for what a script parses)."""
    from rich.console import Console

    return Console(stderr=True, log_path=False)


def log(message: str) -> None:
    """One timestamped progress line on stderr."""
    console().log(message)


def bad_config(exc: ValueError) -> EdgepedError:
    """A config dataclass's ValueError as a user-facing error."""
    return EdgepedError(f"invalid option: {exc}", "see --help for allowed values")
