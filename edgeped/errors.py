"""The one exception type users see: a message that names the problem and the fix."""

from __future__ import annotations


class EdgepedError(Exception):
    """A user-facing failure: what went wrong and how to fix it.

    The CLI prints ``str(error)`` without a traceback and exits non-zero, so the
    message must stand on its own.
    """

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}\n  fix: {fix}")
