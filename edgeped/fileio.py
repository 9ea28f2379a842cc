"""Atomic file writes and hashing: no reader ever sees a half-written output."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from edgeped.errors import EdgepedError


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Returns the hex sha256 of a file, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb") -> Iterator[BinaryIO]:
    """Opens a temp file beside ``path`` and renames it over ``path`` on success.

    On any exception the temp file is removed and ``path`` is left as it was.
    A full disk surfaces as an EdgepedError naming the file.

    Raises:
        EdgepedError: the directory cannot be written or the disk is full.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = None
    try:  # mkstemp inside the try: an interrupt right after it still removes the temp file
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.chmod(tmp_name, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except OSError as exc:
        if tmp_name is not None:
            _discard(tmp_name)
        if exc.errno == 28:  # ENOSPC
            raise EdgepedError(
                f"disk full while writing {target}",
                f"free space on {target.parent} (need room for the new file) and run again",
            ) from exc
        raise EdgepedError(
            f"cannot write {target}: {exc.strerror or exc}", "check the path exists and is writable"
        ) from exc
    except BaseException:
        if tmp_name is not None:
            _discard(tmp_name)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _discard(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_output(path, "wb") as handle:
        handle.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Writes strict JSON (sorted keys); NaN becomes null so every reader can parse it."""
    write_bytes_atomic(path, json_bytes(payload))


def json_bytes(payload: Any) -> bytes:
    """`payload` as the strict, sorted JSON `write_json_atomic` writes."""
    text = json.dumps(
        _nan_to_none(payload), indent=2, sort_keys=True, allow_nan=False, default=_jsonable
    )
    return (text + "\n").encode("utf-8")


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Reads a JSON file, turning absence or corruption into a clear EdgepedError."""
    p = Path(path)
    if not p.is_file():
        raise EdgepedError(f"{what} not found: {p}", f"check the path, or create the {what} first")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgepedError(
            f"{what} {p} is not valid JSON ({exc})",
            "the file is corrupt or truncated: regenerate it",
        ) from exc


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Defers SIGINT/SIGTERM/SIGHUP until the block is done (main thread only).

    The handlers are swapped for ones that only note the signal (a thread mask
    would not do: another thread may take a process-directed signal); the noted
    signals are raised again, to the original handlers, when the block ends.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, lambda signum, _frame: received.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(received):
            signal.raise_signal(s)


def write_group_atomic(files: dict[str | os.PathLike, bytes]) -> None:
    """Writes files that belong together (a model and its card) so they change together.

    Every file is written and synced to a temp file beside its target first, then the
    renames run back to back, all with Ctrl-C and SIGTERM held (the files are small),
    so an interrupt lands before any file changed or after all did and never leaves a
    temp file behind. (Only a SIGKILL or power loss can split the group.)

    Raises:
        EdgepedError: a directory cannot be written or the disk is full.
    """
    with signals_held(), contextlib.ExitStack() as stack:
        for path, data in files.items():
            stack.enter_context(atomic_output(path, "wb")).write(data)


def check_outputs(outputs: dict[str, str | os.PathLike | None], inputs: list) -> None:
    """Refuses an output path that is one of the command's inputs or another output.

    Args:
        outputs: option name (e.g. "--json") -> path, or None when not asked for.
        inputs: the files the command reads.

    Raises:
        EdgepedError: naming the option and the file it would overwrite.
    """
    taken = {Path(p).resolve(): "an input" for p in inputs if p is not None}
    for option, path in outputs.items():
        if path is None or str(path) == "-":
            continue
        resolved = Path(path).resolve()
        if resolved in taken:
            raise EdgepedError(
                f"{option} {path} would overwrite {taken[resolved]} of this command",
                f"write {option} to another file",
            )
        taken[resolved] = f"the {option} output"
