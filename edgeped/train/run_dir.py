"""Which folder a training run writes into, so a run that already exists is never half-replaced.

A run directory that holds a run (a `config.json` or a checkpoint) is refused
unless the caller says what to do with it:

- `resume`: add stages to it. The recorded config must be the one asked for
  (else the checkpoints would not match it), and `config.json` is rewritten
  only after the new stages finished.
- `overwrite`: train a new run beside it (a hidden sibling folder) and swap it in
  only when training finished; a failed or interrupted run leaves the old one
  as it was.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from edgeped.data.output import sibling_name, swap_dirs
from edgeped.errors import EdgepedError
from edgeped.layout import CONFIG_FILE as CONFIG


def holds_run(run: Path) -> bool:
    return run.is_dir() and ((run / CONFIG).is_file() or any(run.glob("*.h5")))


def recorded_config(run: Path) -> dict | None:
    """The `config` section of the run's config.json, or None when there is none."""
    path = run / CONFIG
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgepedError(
            f"{path} is not valid JSON ({exc})", "pass --overwrite to replace the run"
        ) from exc
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def run_output(
    run_dir: str | Path, config: dict, *, resume: bool = False, overwrite: bool = False
) -> Iterator[Path]:
    """Yields the folder to train in; see the module docstring for the rules.

    Raises:
        EdgepedError: the folder holds a run and neither flag is given, both are,
            or `resume` asks for another config than the recorded one.
    """
    run = Path(run_dir)
    if resume and overwrite:
        raise EdgepedError("--resume and --overwrite exclude each other", "pass one of them")
    if run.exists() and not run.is_dir():
        raise EdgepedError(f"{run} exists and is not a folder", "choose a folder for the run")
    if not holds_run(run):
        yield run
        return
    if resume:
        recorded = recorded_config(run)
        if recorded is None:
            raise EdgepedError(
                f"{run} has checkpoints but no {CONFIG}: an earlier run did not finish",
                "pass --overwrite to replace it, or choose a new run directory",
            )
        differs = _differences(recorded.get("config", {}), json.loads(json.dumps(config)))
        if differs:
            raise EdgepedError(
                f"--resume asks for another config than {run / CONFIG} records "
                f"(differs: {', '.join(differs[:6])})",
                "resume with the recorded config, or pass --overwrite / a new run directory",
            )
        yield run
        return
    if not overwrite:
        raise EdgepedError(
            f"{run} already holds a run ({CONFIG} or checkpoints): training into it would "
            "leave models that no longer match its recorded config",
            "choose a new run directory, pass --resume to add stages with the same config, "
            "or --overwrite to replace the run once the new one has finished",
        )
    staging = run.absolute().parent / sibling_name(run.name, "incoming")
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = swap_dirs(staging, run)
    shutil.rmtree(old, ignore_errors=True)


def _differences(recorded: dict, wanted: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(recorded) | set(wanted))
    out = []
    for key in keys:
        a, b = recorded.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out
