"""What every benchmark shares: its provenance record, where its results go, how they are
written.

Every results JSON starts with the same provenance keys (`PROVENANCE_KEYS`): what it is,
the schema, when, the command that made it, the machine and its load before and after, and
the tool versions. Results live in `benchmarks/results/<topic>/` and are named
`<subject>-<YYYYMMDD>[-<qualifier>...].<ext>`: what was measured, the day, then what tells
two runs of one day apart (dataset, variant, model). Benchmarks run as modules from the
repository root (`python -m benchmarks.device.bench_device`), so they import each other as
`benchmarks.<topic>.<module>` without editing `sys.path`.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

from edgeped.fileio import write_json_atomic, write_text_atomic
from edgeped.provenance import SCHEMA_VERSION, tool_versions

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results"
TOPICS = ("device", "training", "robustness", "rollout", "scale")
PROVENANCE_KEYS = (
    "kind",
    "schema_version",
    "date_utc",
    "command",
    "machine",
    "loadavg_before_after",
    "tool_versions",
)
# <subject>-<YYYYMMDD>[-<qualifier>...].<ext>: lower-case words joined by '-' ('.' and '_'
# allowed inside a qualifier, e.g. a width 'w0.25' or a core 'cortex_a76').
RESULT_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z][a-z0-9]*)*-20\d{6}(?:-[a-z0-9._]+)*\.[a-z]+$")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-")


def result_path(
    topic: str, subject: str, *qualifiers: str, ext: str = "json", day: dt.date | None = None
) -> Path:
    """`benchmarks/results/<topic>/<subject>-<YYYYMMDD>[-<qualifier>...].<ext>`.

    Empty qualifiers are skipped; others are lower-cased with anything but letters, digits,
    '.' and '_' turned into '-'.

    Raises:
        ValueError: an unknown topic, or a name the scheme cannot hold.
    """
    if topic not in TOPICS:
        raise ValueError(f"topic {topic!r} is not one of {TOPICS}")
    day = day or dt.datetime.now(dt.UTC).date()
    parts = [_slug(subject), f"{day:%Y%m%d}", *(_slug(q) for q in qualifiers if q)]
    name = f"{'-'.join(parts)}.{ext}"
    if not RESULT_NAME.match(name):
        raise ValueError(f"{name!r} does not follow <subject>-<YYYYMMDD>[-<qualifier>].<ext>")
    return RESULTS / topic / name


def command_line(argv: list[str] | None = None) -> str:
    """The command that reproduces this run: `python -m benchmarks.<topic>.<module> ARGS`.

    Args:
        argv: the arguments after the program (default: this process's `sys.argv[1:]`).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.startswith("benchmarks."):
        program = ["python", "-m", spec.name]
    else:  # imported by a test or another script: say which program ran
        program = ["python", Path(sys.argv[0]).name] if sys.argv and sys.argv[0] else ["python"]
    return " ".join([*program, *args])


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not on every platform
        return []


def provenance(
    kind: str, argv: list[str] | None = None, packages: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The provenance record a result starts with (one key set: `PROVENANCE_KEYS`).

    Call it when the measurement starts (it records the load average then) and `finish`
    the record when it ends.

    Args:
        kind: what the result is, e.g. "device" (stored as "edgeped.benchmark.device").
        argv: the program's arguments (default: this process's).
        packages: extra distributions whose versions shape the figures (e.g. onnxruntime).
    """
    versions = tool_versions()
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "kind": f"edgeped.benchmark.{kind}",
        "schema_version": SCHEMA_VERSION,
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command_line(argv),
        "machine": {
            "host": platform.node(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "loadavg_before_after": [_loadavg(), None],
        "tool_versions": versions,
    }


def finish(record: dict[str, Any]) -> dict[str, Any]:
    """Records the load average at the end of the measurement; returns the record."""
    record["loadavg_before_after"][1] = _loadavg()
    return record


def write_result(path: Path, record: dict[str, Any], markdown: str | None = None) -> list[Path]:
    """Writes the JSON (and the Markdown beside it, same name) atomically; returns the paths.

    Raises:
        ValueError: the record lacks a provenance key.
    """
    missing = [k for k in PROVENANCE_KEYS if k not in record]
    if missing:
        raise ValueError(f"result {path.name} lacks provenance keys {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record)
    written = [path]
    if markdown is not None:
        md = path.with_suffix(".md")
        write_text_atomic(md, markdown if markdown.endswith("\n") else markdown + "\n")
        written.append(md)
    return written
