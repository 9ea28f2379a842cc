"""Target kinds by name, and targets.toml: `local`, `arm64-emu` and named SSH boards."""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeped.errors import EdgepedError
from edgeped.registry import Registry
from edgeped.targets.base import Target

TargetFactory = Callable[[str, dict[str, Any], "str | None"], Target]
_KINDS: Registry[TargetFactory] = Registry("target kind")
BUILTIN_TARGETS: dict[str, dict[str, Any]] = {
    "local": {"kind": "local"},
    "arm64-emu": {"kind": "arm64-emu"},
}


def register_kind(kind: str) -> Callable[[TargetFactory], TargetFactory]:
    """Registers a factory ``(name, spec, core) -> Target`` for a target kind."""

    return _KINDS.register(kind)


def target_kinds() -> list[str]:
    return sorted(_KINDS)


@register_kind("local")
def _local(name: str, spec: dict[str, Any], core: str | None) -> Target:
    from edgeped.targets.local import LocalTarget

    _no_core(name, core)
    _known_keys(name, spec, {"python"})
    return LocalTarget(name=name, python=spec.get("python", sys.executable))


@register_kind("arm64-emu")
def _arm64_emu(name: str, spec: dict[str, Any], core: str | None) -> Target:
    from edgeped.targets.emulated import EmulatedArm64Target, default_board_dir

    _known_keys(name, spec, {"core", "board_dir"})
    try:
        return EmulatedArm64Target(
            name=name,
            core=core or spec.get("core", "a76"),
            board_dir=Path(spec.get("board_dir", default_board_dir())),
        )
    except ValueError as exc:
        raise EdgepedError(str(exc), "pass --core a53, a72 or a76") from exc


@register_kind("ssh")
def _ssh(name: str, spec: dict[str, Any], core: str | None) -> Target:
    from edgeped.targets.ssh import SshTarget, SshTargetConfig

    _no_core(name, core)
    try:
        return SshTarget(SshTargetConfig.from_dict({"name": name, **spec}))
    except (TypeError, ValueError) as exc:
        raise EdgepedError(
            f"bad [targets.{name}] in targets.toml: {exc}",
            "see targets.README.md for the keys and their meaning",
        ) from exc


def _known_keys(name: str, spec: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(spec) - known)
    if unknown:
        raise EdgepedError(
            f"bad [targets.{name}] in targets.toml: unknown key(s) {unknown}; "
            f"this kind takes {sorted(known)}",
            "see targets.README.md for the keys and their meaning",
        )


def _no_core(name: str, core: str | None) -> None:
    if core:
        raise EdgepedError(
            f"--core applies to the emulated board, not to target {name!r}",
            "drop --core (an SSH board's core is set by `core` in targets.toml)",
        )


def find_targets_file(explicit: str | os.PathLike | None = None) -> Path | None:
    """targets.toml: the explicit path, else $EDGEPED_TARGETS, else ./targets.toml."""
    if explicit:
        return Path(explicit)
    if os.environ.get("EDGEPED_TARGETS"):
        return Path(os.environ["EDGEPED_TARGETS"])
    local = Path("targets.toml")
    return local if local.is_file() else None


def load_targets_file(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Reads the `[targets.NAME]` tables of a targets.toml.

    Raises:
        EdgepedError: the file is missing or not valid TOML.
    """
    p = Path(path)
    if not p.is_file():
        raise EdgepedError(
            f"targets file not found: {p}",
            "create it from targets.example.toml or pass --targets FILE",
        )
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EdgepedError(f"{p} is not valid TOML ({exc})", "fix the syntax") from exc
    targets = data.get("targets", {})
    if not isinstance(targets, dict) or not all(isinstance(v, dict) for v in targets.values()):
        raise EdgepedError(f"{p}: expected [targets.NAME] tables", "see targets.README.md")
    return targets


def resolve_target(
    name: str, targets_file: str | os.PathLike | None = None, core: str | None = None
) -> Target:
    """Builds the target called ``name``: a built-in one or a table in targets.toml.

    Raises:
        EdgepedError: unknown name or kind, or a bad targets.toml entry.
    """
    path = find_targets_file(targets_file)
    table = load_targets_file(path) if path is not None else {}
    if name in table:
        spec = dict(table[name])
    elif name in BUILTIN_TARGETS:
        spec = dict(BUILTIN_TARGETS[name])
    else:
        known = sorted(set(BUILTIN_TARGETS) | set(table))
        where = f" or in {path}" if path else " (no targets.toml found)"
        raise EdgepedError(
            f"unknown target {name!r}: not built in{where}; known: {known}",
            f"add a [targets.{name}] table to targets.toml (see targets.README.md)"
            " or pass --targets FILE",
        )
    kind = spec.pop("kind", "ssh")
    if kind not in _KINDS:
        raise EdgepedError(
            f"target {name!r} has unknown kind {kind!r}", f"use one of {target_kinds()}"
        )
    return _KINDS[kind](name, spec, core)
