"""Tool versions and schema stamps that every JSON output carries."""

from __future__ import annotations

import importlib.metadata
import platform

SCHEMA_VERSION = 1

_PACKAGES = (
    "edgeped",
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "numpy",
    "scikit-learn",
)


def tool_versions() -> dict[str, str]:
    """Installed versions of the packages that shape our outputs (no imports needed)."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def stamp(kind: str) -> dict:
    """The common header of a JSON output: what it is, its schema, the tool versions."""
    return {"kind": kind, "schema_version": SCHEMA_VERSION, "tool_versions": tool_versions()}
