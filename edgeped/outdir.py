"""Output folders that never destroy what edgeped did not write.

Every command that writes an output folder (`--out`) asks :func:`claim` first. A folder
made by edgeped carries a marker file (``.edgeped-output``) naming its kind; an existing
non-empty folder is written only when it carries the marker of the same kind, or when
``--overwrite`` is given, and even then:

* a folder is *replaced* (``replace=True``, e.g. a release bundle) only when it is an
  output of that kind (its marker, or for ``--overwrite`` the kind's own recognisable
  file); a run directory, a dataset, a user's folder or any folder holding an input of
  the command is never deleted;
* a folder written *into* (bench results, reports) keeps every file it held that the
  command does not write.

:func:`stage` builds a replaced output beside its target under a hidden name
(``.NAME.edgeped-staging-PID-XXXX``) and swaps it in with rename(2); staging folders
and set-aside old outputs left by a killed run are removed (or, for an old output whose
replacement never arrived, put back) by the next run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edgeped.errors import EdgepedError, ExitCode

MARKER = ".edgeped-output"
_STAGING = re.compile(r"^\.(?P<name>.+)\.edgeped-(?P<what>staging|old)-(?P<pid>\d+)(?:-.*)?$")
# What releases before the marker left after a kill: .NAME.<mkdtemp token> and .NAME.old-PID.
_LEGACY = re.compile(r"^\.(?P<name>.+)\.(?:old-(?P<pid>\d+)|[a-z0-9_]{8})$")
_BUNDLE_FILES = {
    "release.json", "release.sig", "model.tflite", "card.json", "golden.npz", "crops.npz",
    "preprocess.json", "drift_reference.json",
}  # fmt: skip
# Files that say "this is a run directory / a dataset": never replaced, never a bundle.
_RUN_FILES = ("config.json", "gate.json", "metrics.json", "checkpoints")
_DATASET_FILES = ("manifest.json",)


def marker_kind(folder: Path) -> str | None:
    """The output kind recorded in ``folder``'s marker, or None (no or unreadable marker)."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


def write_marker(folder: Path, kind: str) -> None:
    """Marks ``folder`` as an output of ``kind`` (written when the output is made)."""
    from edgeped.fileio import write_text_atomic

    write_text_atomic(folder / MARKER, json.dumps({"kind": kind}, sort_keys=True) + "\n")


def _what_it_is(folder: Path) -> str | None:
    """A short name for a folder that must never be replaced, or None."""
    if any((folder / name).exists() for name in _RUN_FILES) or any(folder.glob("*.tflite")):
        return "a run directory"
    if any((folder / name).exists() for name in _DATASET_FILES) or any(folder.glob("*.tfrecord*")):
        return "a dataset"
    return None


def _protected(out: Path, inputs: Iterable[Path]) -> str | None:
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        return "the filesystem root or your home folder"
    if resolved == cwd or resolved in cwd.parents:
        return "the current folder (or one of its parents)"
    for item in inputs:
        path = Path(item).resolve()
        if path == resolved or resolved in path.parents:
            return f"an input of this command ({item})"
    return None


def clean_orphans(out: Path) -> list[Path]:
    """Removes staging folders of ``out`` left by killed runs; restores a set-aside old output.

    Only entries whose process is gone are touched (a running release keeps its own).

    Returns:
        The paths removed or restored.
    """
    parent = out.parent
    if not parent.is_dir():
        return []
    done = []
    for entry in sorted(parent.iterdir()):
        legacy = _LEGACY.match(entry.name)
        if legacy and legacy["name"] == out.name and _legacy_orphan(entry, legacy["pid"]):
            shutil.rmtree(entry, ignore_errors=True)
            done.append(entry)
            continue
        match = _STAGING.match(entry.name)
        if not match or match["name"] != out.name or _alive(int(match["pid"])):
            continue
        if match["what"] == "old" and not os.path.lexists(out):
            os.replace(entry, out)  # killed between the two renames: the old output comes back
        else:
            shutil.rmtree(entry, ignore_errors=True)
        done.append(entry)
    return done


def _legacy_orphan(entry: Path, pid: str | None) -> bool:
    """A hidden folder an older release left: only bundle files inside, its process gone."""
    if not entry.is_dir() or entry.is_symlink() or (pid is not None and _alive(int(pid))):
        return False
    names = {p.name for p in entry.iterdir()}
    return bool(names) and names <= _BUNDLE_FILES | {MARKER}


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # an earlier, killed run of this very process id cannot still be running
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(
    out: str | os.PathLike,
    kind: str,
    *,
    overwrite: bool = False,
    replace: bool = False,
    recognise: str | None = None,
    inputs: Iterable[str | os.PathLike] = (),
) -> Path:
    """Checks that ``out`` may receive an output of ``kind``; cleans its orphan staging folders.

    Args:
        out: the output folder.
        kind: the output kind, e.g. ``release``; recorded in the folder's marker.
        overwrite: the user's ``--overwrite``.
        replace: the command replaces the whole folder (else it writes files into it).
        recognise: a file that marks a legacy output of this kind without a marker
            (replaced only with ``overwrite``).
        inputs: files and folders the command reads: ``out`` may not be or hold them.

    Returns:
        ``out`` as a Path.

    Raises:
        EdgepedError: ``out`` is a file, a protected folder, an output of another kind,
            or a non-empty folder of unknown content without ``--overwrite`` (exit 65).
    """
    path = Path(out)
    clean_orphans(path)
    if os.path.islink(path) or (path.exists() and not path.is_dir()):
        raise EdgepedError(
            f"--out {path} exists and is not a folder",
            "pass a new folder name to --out",
            exit_code=ExitCode.INPUT,
        )
    if not path.exists():
        return path
    why = _protected(path, [Path(p) for p in inputs]) if replace else None
    if why:
        raise EdgepedError(
            f"--out {path} is {why}: refused, nothing was written",
            "pass a new folder name to --out",
        )
    if not any(path.iterdir()):
        return path
    have = marker_kind(path)
    if have == kind:
        return path
    if have is not None:
        raise EdgepedError(
            f"--out {path} holds a {have} output, not a {kind}: refused, nothing was written",
            "pass a new folder name to --out (--overwrite replaces only a folder of the same kind)",
        )
    if replace:
        legacy = recognise is not None and (path / recognise).is_file()
        what = _what_it_is(path) or "a folder edgeped did not make"
        if not (overwrite and legacy):
            raise EdgepedError(
                f"--out {path} exists and is {what}: a {kind} output would replace it; "
                "refused, nothing was changed",
                "pass a new folder name to --out"
                + (" (or --overwrite to replace this older output)" if legacy else ""),
            )
        return path
    if not overwrite:
        raise EdgepedError(
            f"--out {path} is a non-empty folder edgeped did not make for {kind} output: "
            "refused, nothing was written",
            f"pass a new or empty folder to --out, or --overwrite to write the {kind} files "
            "into it (other files stay)",
        )
    return path


@contextlib.contextmanager
def stage(out: Path, kind: str) -> Iterator[Path]:
    """A hidden staging folder beside ``out``, swapped in whole on success.

    The caller fills the yielded folder; on a clean exit it gets the kind's marker, is
    fsynced and renamed into place (an old output is set aside first and removed only
    after the swap). On any exception the staging folder is removed and ``out`` is as it was.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{out.name}.edgeped-staging-{os.getpid()}-", dir=out.parent)
    )
    try:
        yield tmp
        write_marker(tmp, kind)
        _fsync_tree(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.edgeped-old-{os.getpid()}")
            if os.path.lexists(old):
                shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            _fsync_dir(out.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
            _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Claim:
    """A write-into output folder checked by :func:`claim_into`; ``done()`` marks it."""

    path: Path
    kind: str
    fresh: bool  # new, empty or already this kind's: marked once the outputs are written

    def done(self) -> None:
        """Marks the folder as this kind's output (only one edgeped made or found empty)."""
        if self.fresh and self.path.is_dir():
            write_marker(self.path, self.kind)


def claim_into(
    out: str | os.PathLike | None,
    kind: str,
    *,
    overwrite: bool = False,
    default: str | os.PathLike | None = None,
) -> Claim | None:
    """Checks an output folder that files are written into (bench results, reports).

    ``out`` None (or equal to ``default``, the command's own place for them) is not
    checked: that folder belongs to edgeped's layout. Returns None when there is no folder.

    Raises:
        EdgepedError: see :func:`claim` (exit 65), before any work starts.
    """
    explicit = out is not None and (
        default is None or Path(out).resolve() != Path(default).resolve()
    )
    path = Path(out) if out is not None else (Path(default) if default is not None else None)
    if path is None:
        return None
    if explicit:
        claim(path, kind, overwrite=overwrite)
    fresh = not path.exists() or (path.is_dir() and not any(path.iterdir()))
    return Claim(path, kind, fresh or marker_kind(path) == kind)
