"""Loading frozen-dataclass configs from TOML/JSON with clear errors."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from edgeped.errors import EdgepedError


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Reads a TOML or JSON file into a dict.

    Raises:
        EdgepedError: the file is missing or does not parse.
    """
    p = Path(path)
    if not p.is_file():
        raise EdgepedError(f"config file not found: {p}", "check the path")
    try:
        if p.suffix == ".json":
            return json.loads(p.read_text())
        return tomllib.loads(p.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EdgepedError(f"cannot parse {p}: {exc}", "fix the syntax (TOML or JSON)") from exc
