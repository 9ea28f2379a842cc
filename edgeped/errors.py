"""The one exception type users see, and the exit codes every command shares.

Exit codes (documented in docs/conventions.md, tested in tests/test_exit_codes.py):

| code | meaning |
|---|---|
| 0 | success; for `gate`, every budget holds |
| 1 | a check ran and failed: a budget is not met (`gate`), a shard is bad (`data verify`), outputs differ from the host (`bench --parity`, `deploy`), a `doctor` check failed |
| 2 | `gate` only: a measurement a budget needs is missing, stale or unreadable (fails closed) |
| 64 | usage error: unknown command or option, a bad option value |
| 65 | input error: a file or folder the command needs is missing, corrupt or does not fit (the `error: ... / fix: ...` message says which) |
| 70 | internal error: an unexpected exception (a bug; the traceback is printed) |

64, 65 and 70 are the BSD `sysexits.h` codes EX_USAGE, EX_DATAERR and EX_SOFTWARE, so
they never collide with the 0/1/2 a CI job branches on.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    EVIDENCE_MISSING = 2
    USAGE = 64
    INPUT = 65
    INTERNAL = 70


EXIT_MEANINGS = {
    ExitCode.OK: "success; for gate, every budget holds",
    ExitCode.FAILED: "a check ran and failed (budget not met, bad shard, parity mismatch)",
    ExitCode.EVIDENCE_MISSING: "gate: a measurement is missing, stale or unreadable",
    ExitCode.USAGE: "usage error: unknown command or option, or a bad option value",
    ExitCode.INPUT: "input error: a file or folder is missing, corrupt or does not fit",
    ExitCode.INTERNAL: "internal error: an unexpected exception (a bug)",
}


class EdgepedError(Exception):
    """A user-facing failure: what went wrong and how to fix it.

    The CLI prints ``str(error)`` without a traceback and exits with ``exit_code``
    (65, input error, unless the raiser says it is a usage error), so the message must
    stand on its own.
    """

    def __init__(
        self, problem: str, fix: str | None = None, *, exit_code: ExitCode = ExitCode.INPUT
    ) -> None:
        self.problem = problem
        self.fix = fix
        self.exit_code = ExitCode(exit_code)
        super().__init__(problem if not fix else f"{problem}\n  fix: {fix}")
