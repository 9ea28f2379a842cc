"""Loading frozen-dataclass configs from TOML/JSON with clear errors."""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, Field, fields, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from edgeped.errors import EdgepedError

T = TypeVar("T")


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Reads a TOML or JSON file into a dict.

    Raises:
        EdgepedError: the file is missing or does not parse.
    """
    p = Path(path)
    if not p.is_file():
        raise EdgepedError(f"config file not found: {p}", "check the path")
    try:
        data = json.loads(p.read_text()) if p.suffix == ".json" else tomllib.loads(p.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EdgepedError(f"cannot parse {p}: {exc}", "fix the syntax (TOML or JSON)") from exc
    if not isinstance(data, dict):
        raise EdgepedError(
            f"{p}: the top level is {_describe(data)}; a config is a table of keys",
            "write the config as a JSON object {...} (or TOML keys and [tables])",
        )
    return data


class ConfigError(EdgepedError, ValueError):
    """A config value that is unknown, of the wrong type, or out of range.

    Also a ValueError, so library callers that validate configs keep working.
    """


_MISSING = object()


def from_mapping(
    cls: type[T], data: Any, *, where: str = "config", base: T | None = None, _table: str = ""
) -> T:
    """Builds the frozen dataclass ``cls`` from a TOML/JSON mapping, recursively.

    Nested dataclass fields take nested tables; a partial table fills from the
    field's default (or from ``base``). Values are checked against the type hints
    (an int is not a float's ``2.5``, a string is not a list) before the class's own
    ``__post_init__`` range checks run.

    Args:
        cls: the config dataclass.
        data: the mapping read from the file.
        where: where the table came from, e.g. ``"train.toml: qat_stage"``; every
            message starts with it.
        base: an instance whose values stand in for keys ``data`` leaves out.

    Returns:
        The validated instance.

    Raises:
        ConfigError: ``where.key: problem; allowed: ...`` for unknown keys, wrong
            types, missing required keys and values the class rejects.
    """
    here = f"{where}: {_table}" if _table else where
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{here}: must be a table of keys, got {_describe(data)}",
            "write it as a TOML table [name] or a JSON object",
        )
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.init}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"{here}: unknown key(s) {unknown}; allowed: {sorted(known)}",
            _did_you_mean(unknown, known) or "remove the key or fix its spelling",
        )
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        key = f"{_table}.{name}" if _table else name
        loc = f"{where}: {key}"
        current = getattr(base, name) if base is not None else _default(f)
        if name in data:
            try:
                kwargs[name] = _coerce(hints[name], data[name], where, key, current)
            except ConfigError as exc:
                if exc.fix:
                    raise
                raise ConfigError(
                    exc.problem, f"write {key} as the type named (the config's docs list each key)"
                ) from None
        elif current is _MISSING:
            raise ConfigError(f"{loc}: missing required key", f"set {name} in the config")
        else:
            kwargs[name] = current
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{here}: {exc}", "see the config's documented keys and ranges") from exc


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return _MISSING


def _coerce(hint: Any, value: Any, where: str, key: str, current: Any) -> Any:
    loc = f"{where}: {key}"
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(option, value, where, key, current)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if is_dataclass(hint):
        base = current if is_dataclass(current) else None
        return from_mapping(hint, value, where=where, base=base, _table=key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{loc}: {value!r} is not allowed; allowed: {list(args)}")
        return value
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"{loc}: must be a list, got {_describe(value)}",
                f"write it as a list, e.g. {key.rsplit('.', 1)[-1]} = [{value!r}]"
                if isinstance(value, str)
                else "write it as a list",
            )
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(
                _coerce(args[0], v, where, f"{key}[{i}]", None) for i, v in enumerate(value)
            )
        if len(args) != len(value):
            raise ConfigError(f"{loc}: must have {len(args)} items, got {len(value)}")
        return tuple(
            _coerce(a, v, where, f"{key}[{i}]", None)
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{loc}: must be a table, got {_describe(value)}")
        kt, vt = args if args else (Any, Any)
        return {
            _coerce(kt, k, where, key, None): _coerce(vt, v, where, f"{key}.{k}", None)
            for k, v in value.items()
        }
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{loc}: must be true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{loc}: must be a whole number, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{loc}: must be a number, got {_describe(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"{loc}: must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{loc}: must be a string, got {_describe(value)}")
        return value
    if hint is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{loc}: must be a path string, got {_describe(value)}")
        return Path(value)
    return value


def _describe(value: Any) -> str:
    kind = {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
    text = repr(value)
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


def _did_you_mean(unknown: list[str], known: Mapping[str, Any]) -> str | None:
    import difflib

    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, list(known), n=1)
        if close:
            hints.append(f"{key} -> {close[0]}")
    return f"did you mean: {', '.join(hints)}" if hints else None
