"""Paths named inside files stay inside the folder they belong to.

A CSV row, a COCO `file_name`, a KITTI label folder, a manifest's shard name or a
run's `metrics.json` names files by path. Such a file may come from anyone, so a
name must not reach outside its declared root: not with `..`, not as an absolute
path elsewhere, and not through a symlink whose target lies outside. Symlinks that
stay inside the root are fine (a dataset assembled with links inside its folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeped.errors import EdgepedError


def resolve_inside(
    root: str | os.PathLike,
    name: str | os.PathLike,
    *,
    what: str = "file",
    source: str | os.PathLike | None = None,
) -> Path:
    """Returns `root / name`, refusing a name that leaves `root`.

    Args:
        root: the folder the name is relative to (the CSV's folder, `--images`, ...).
        name: the path as written in the file.
        what: what the name is, for the message ("image", "shard", "scores file").
        source: the file the name was read from, for the message.

    Returns:
        The joined path (not resolved), so messages and ids keep the name as written.

    Raises:
        EdgepedError: the name is empty or holds a NUL byte, or it, or a symlink on the
            way to it, lies outside `root`.
    """
    text = os.fspath(name)
    where = f"{source}: " if source is not None else ""
    if not text or "\x00" in text:
        raise EdgepedError(
            f"{where}{what} name {text!r} is empty or holds a NUL byte",
            f"name each {what} by its path relative to {root}",
        )
    base = Path(root)
    joined = Path(text) if Path(text).is_absolute() else base / text
    lexical = Path(os.path.normpath(joined.absolute()))
    base_abs = Path(os.path.normpath(base.absolute()))
    if not _within(lexical, base_abs):
        raise EdgepedError(
            f"{where}{what} {text!r} lies outside {base} (a path may not leave its folder)",
            f"name each {what} relative to {base}, without '..' or an absolute path "
            "elsewhere; copy the file into that folder",
        )
    real = joined.resolve()
    if not _within(real, base.resolve()):
        raise EdgepedError(
            f"{where}{what} {text!r} is a symlink to {real}, outside {base}",
            f"copy the file into {base} instead of linking to it",
        )
    return joined


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
