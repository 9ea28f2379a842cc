"""Where a dataset is written: a hidden folder beside OUT_DIR, swapped in only when complete.

Every dataset writer (the streaming `DatasetWriter`, the parallel shard writer)
writes its shards and manifest into `StagedDataset.path`, a folder next to the
final one, and calls `commit()` when the manifest is written. Until then the
final folder is untouched: an interrupted or failed write (Ctrl-C, SIGKILL, a
bad image half way through an import, a full disk) leaves the previous dataset
as it was, still verifiable. `commit()` swaps the folders in one atomic
`renameat2(RENAME_EXCHANGE)` where the OS offers it, else in two renames that a
later writer completes if it finds them half done. Staging folders left by a
killed process are removed by the next writer of the same folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import weakref
from pathlib import Path

from edgeped.errors import EdgepedError
from edgeped.fileio import signals_held

MANIFEST = "manifest.json"
# Files that belong to a dataset (and to its card): replaced with it, never carried over.
_DATASET_FILES = re.compile(
    r"^(manifest\.json|positives|.*\.tfrecord|dataset_card(_samples)?\.\w+)$"
)
_INCOMING, _REPLACED = "incoming", "replaced"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def holds_dataset(path: Path) -> bool:
    return (path / MANIFEST).is_file()


class StagedDataset:
    """A dataset being written beside its final folder; `commit()` puts it in place.

    Use as a context manager: leaving the block with an exception (including
    KeyboardInterrupt) removes the staging folder and leaves OUT_DIR as it was.

    Raises (on construction, before anything is written):
        EdgepedError: OUT_DIR is a file, already holds a dataset and `overwrite`
            is False, or its parent cannot be written.
    """

    def __init__(self, out_dir: str | os.PathLike, *, overwrite: bool = False) -> None:
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise EdgepedError(
                f"{self.out_dir} exists and is not a folder", "choose a folder path for the dataset"
            )
        recover(self.out_dir)
        if holds_dataset(self.out_dir) and not overwrite:
            raise EdgepedError(
                f"{self.out_dir} already holds a dataset",
                "choose another output folder or pass --overwrite",
            )
        self.overwrite = overwrite
        parent = self.out_dir.absolute().parent
        # Ctrl-C is held from the mkdir until the cleanup is registered: landing
        # between the two it would leave the staging folder behind.
        with signals_held():
            try:
                parent.mkdir(parents=True, exist_ok=True)
                self.path = parent / sibling_name(self.out_dir.name, _INCOMING)
                self.path.mkdir()
            except OSError as exc:
                raise EdgepedError(
                    f"cannot create the dataset folder {self.out_dir}: {exc.strerror or exc}",
                    "check the path exists and is writable",
                ) from exc
            # Also removed at exit if never committed: an interrupt can land before the
            # caller's `with` block is entered.
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.path), True)
            self._done = False

    def __enter__(self) -> StagedDataset:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def abort(self) -> None:
        """Removes what was staged; OUT_DIR is untouched."""
        if not self._done:
            self._done = True
            self._cleanup()

    def commit(self) -> Path:
        """Puts the staged dataset (its manifest written) at OUT_DIR. Returns OUT_DIR.

        Files in the old folder that are not part of a dataset (the user's own)
        are moved into the new one; the old shards, manifest and card go.

        Raises:
            EdgepedError: the staged folder has no manifest (the write did not finish).
        """
        if self._done:
            raise EdgepedError("this dataset write was already committed or aborted")
        if not holds_dataset(self.path):
            self.abort()
            raise EdgepedError(
                f"the new dataset for {self.out_dir} has no manifest: its writing did not finish",
                "run the command again",
            )
        target = self.out_dir
        leftover = None
        with signals_held():  # the swap and the bookkeeping happen together
            if not target.exists() or _is_empty_dir(target):
                with contextlib.suppress(FileNotFoundError):
                    target.rmdir()
                os.rename(self.path, target)
            elif not holds_dataset(target):
                _move_in(
                    self.path, target
                )  # a folder of other files: add the dataset, manifest last
                leftover = self.path
            else:
                leftover = swap_dirs(self.path, target)
                _carry_over(leftover, target)
            self._cleanup.detach()
            self._done = True
        if leftover is not None:
            try:
                shutil.rmtree(leftover, ignore_errors=True)
            except BaseException:  # Ctrl-C mid-delete: finish it, then stop
                shutil.rmtree(leftover, ignore_errors=True)
                raise
        return target


def sibling_name(name: str, kind: str) -> str:
    return f".{name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _siblings(out_dir: Path, kind: str) -> list[tuple[Path, int]]:
    parent = out_dir.absolute().parent
    if not parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(out_dir.name)}\.{kind}-(\d+)-[0-9a-f]+$")
    found = []
    for entry in parent.iterdir():
        m = pattern.match(entry.name)
        if m and entry.is_dir():
            found.append((entry, int(m.group(1))))
    return found


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(out_dir: Path) -> None:
    """Finishes or clears what a killed writer of `out_dir` left beside it.

    A `replaced` folder is an old dataset swapped out by the two-rename fallback:
    it is put back if OUT_DIR lost its dataset, else removed. `incoming` folders
    of dead processes are unfinished writes and are removed.
    """
    for path, pid in _siblings(out_dir, _REPLACED):
        if _alive(pid):
            continue
        if not holds_dataset(out_dir) and holds_dataset(path):
            with contextlib.suppress(FileNotFoundError):
                out_dir.rmdir()  # only if empty: never delete anything else
            if not out_dir.exists():
                os.rename(path, out_dir)
                continue
        shutil.rmtree(path, ignore_errors=True)
    for path, pid in _siblings(out_dir, _INCOMING):
        if not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def swap_dirs(staged: Path, target: Path) -> Path:
    """Exchanges the two folders; returns where the old one now is."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        rc = renameat2(
            _AT_FDCWD, os.fsencode(staged), _AT_FDCWD, os.fsencode(target), _RENAME_EXCHANGE
        )
        if rc == 0:
            return staged
        if ctypes.get_errno() not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            err = ctypes.get_errno()
            raise EdgepedError(
                f"cannot replace {target}: {os.strerror(err)}", "check the folder is writable"
            )
    old = target.absolute().parent / sibling_name(target.name, _REPLACED)
    os.rename(target, old)
    os.rename(staged, target)
    return old


def _move_in(staged: Path, target: Path) -> None:
    names = sorted(p.name for p in staged.iterdir() if p.name != MANIFEST)
    for name in [*names, MANIFEST]:
        os.replace(staged / name, target / name)


def _carry_over(old: Path, target: Path) -> None:
    for entry in sorted(old.iterdir()):
        if _DATASET_FILES.match(entry.name) or (target / entry.name).exists():
            continue
        os.rename(entry, target / entry.name)
