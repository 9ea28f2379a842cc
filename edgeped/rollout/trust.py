"""What a board trusts: the public keys and signature policy `edgeped trust` provisions.

The host checks every ``.pub`` file before anything travels; the board's agent
(``device/agent.py trust``) merges the change into ``ROOT/agent.json`` and writes it
itself, atomically under its device lock, so the file has one writer on every target.
The agent also refuses the one config that would lock a board out: no trusted key while
signatures are required.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from edgeped.errors import EdgepedError
from edgeped.rollout.signing import ALGORITHM, public_key_line


@dataclass(frozen=True)
class TrustChange:
    """A change to a board's agent.json.

    Attributes:
        key_lines: public keys to trust, as ``ed25519 <base64 key> <key id>`` lines.
        allow_unsigned: the signature policy to set; None keeps the board's (a board
            without agent.json requires signatures).
        replace: the keys given become the only trusted keys (else they are added).
    """

    key_lines: tuple[str, ...] = ()
    allow_unsigned: bool | None = None
    replace: bool = False

    def __post_init__(self) -> None:
        for line in self.key_lines:
            parts = line.split()
            if len(parts) != 3 or parts[0] != ALGORITHM:
                raise ValueError(
                    f"key_lines: {line!r} is not a `{ALGORITHM} <base64 key> <key id>` line"
                )
        if self.allow_unsigned not in (None, True, False):
            raise ValueError(
                f"allow_unsigned must be true, false or None, got {self.allow_unsigned!r}"
            )

    @property
    def changes_anything(self) -> bool:
        """False for a change that asks for nothing: the board's trust is only shown."""
        return bool(self.key_lines) or self.allow_unsigned is not None or self.replace

    def agent_args(self) -> list[str]:
        """The arguments of ``agent.py trust`` for this change."""
        args = ["trust"]
        for line in self.key_lines:
            args += ["--key", line]
        if self.allow_unsigned is not None:
            args.append("--allow-unsigned" if self.allow_unsigned else "--require-signed")
        if self.replace:
            args.append("--replace")
        return args


def read_trusted_keys(paths: Iterable[str | os.PathLike]) -> tuple[str, ...]:
    """Checks every ``.pub`` file and returns their trusted_keys lines (a key once).

    Every file is read before any is used, so one bad file stops the change before
    anything reaches the board.

    Raises:
        EdgepedError: each file that is missing or not an edgeped Ed25519 public key, by
            name, with the fix.
    """
    lines: dict[str, str] = {}
    problems: list[EdgepedError] = []
    for path in paths:
        try:
            line = public_key_line(path)
        except EdgepedError as exc:
            problems.append(exc)
            continue
        lines.setdefault(line.split()[2], line)
    if len(problems) == 1:
        raise EdgepedError(f"{problems[0].problem}; nothing was sent to the board", problems[0].fix)
    if problems:
        raise EdgepedError(
            f"{len(problems)} key files are not usable; nothing was sent to the board:\n  "
            + "\n  ".join(p.problem for p in problems),
            problems[0].fix,
        )
    return tuple(lines.values())
