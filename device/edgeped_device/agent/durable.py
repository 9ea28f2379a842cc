"""Durable writes: temp file, fsync, rename(2), fsync of the directory; atomic link swaps."""

from __future__ import annotations

import contextlib
import errno
import os

from .common import AgentError


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_full(exc: OSError, what: str) -> AgentError:
    return AgentError(
        "disk_full",
        f"the board's disk is full while writing {what}; nothing was switched",
        "free space on the board and run the command again",
    )


def write_atomic(path: str, data: bytes) -> None:
    """Temp file beside ``path``, fsync, rename over it, fsync the directory."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.errno == errno.ENOSPC:
            raise disk_full(exc, os.path.basename(path)) from exc
        raise
    fsync_dir(os.path.dirname(path) or ".")


def swap_link(link: str, target: str) -> None:
    """Points ``link`` at ``target`` atomically: symlink to a temp name, rename(2), fsync."""
    with contextlib.suppress(OSError):
        if os.readlink(link) == target:
            return
    tmp = f"{link}.new.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(os.path.dirname(link))


def remove_link(link: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
        fsync_dir(os.path.dirname(link))
