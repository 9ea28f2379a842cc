"""Which folder a training run writes into, so a run that already exists is never half-replaced.

A run directory that holds a run (a `config.json` or a checkpoint) is refused
unless the caller says what to do with it:

- `resume`: add stages to it. The recorded config must be the one asked for
  (else the checkpoints would not match it), and `config.json` is rewritten
  only after the new stages finished. One exception, for tuning a late stage
  without retraining what comes before it: keys that only a stage being run
  reads (`qat_stage` for student_qat, `teacher`/`teacher_stage` for teacher,
  `distill` for student_distilled, `prune_stage`/`prune_final_sparsity` for
  student_pruned: each declaration's `own_keys` in edgeped.training_stages) may
  differ, provided every checkpoint built on that stage (its `parents` lineage)
  is run again too. Such a run trains in a copy of the folder and swaps it in when
  done, so the old models and config stay until the new ones are complete.
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
from edgeped.layout import CHECKPOINTS, STAGES
from edgeped.layout import CONFIG_FILE as CONFIG
from edgeped.training_stages import TRAINING_STAGES, built_on

# The config keys that only one stage reads: a resume may change them when that stage runs.
STAGE_KEYS = {s.name: s.own_keys for s in TRAINING_STAGES.values() if s.own_keys}
# The checkpoints each of those stages feeds (QAT and pruning start from the best float
# student, which may be the distilled one).
BUILT_ON = {name: built_on(name) for name in STAGE_KEYS}
# Which stages run by default changes no checkpoint.
FREE_KEYS = ("stages",)


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
    run_dir: str | Path,
    config: dict,
    *,
    resume: bool = False,
    overwrite: bool = False,
    stages: tuple[str, ...] = (),
) -> Iterator[Path]:
    """Yields the folder to train in; see the module docstring for the rules.

    `stages` are the stages this run will train (they decide which config keys a
    resume may change).

    Raises:
        EdgepedError: the folder holds a run and neither flag is given, both are,
            or `resume` asks for another config than the recorded one beyond what
            the stages being run allow.
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
        retuned = _retune_problem(run, differs, stages)
        if retuned is not None:
            raise EdgepedError(
                f"--resume asks for another config than {run / CONFIG} records "
                f"(differs: {', '.join(differs[:6])}){retuned}",
                "resume with the recorded config, run again the stages that read the "
                "changed keys (and those built on them), or pass --overwrite / a new "
                "run directory",
            )
        if not [d for d in differs if d.split(".", 1)[0] not in FREE_KEYS]:
            yield run
            return
        with _beside(run, copy=True) as staging:
            yield staging
        return
    if not overwrite:
        raise EdgepedError(
            f"{run} already holds a run ({CONFIG} or checkpoints): training into it would "
            "leave models that no longer match its recorded config",
            "choose a new run directory, pass --resume to add stages with the same config, "
            "or --overwrite to replace the run once the new one has finished",
        )
    with _beside(run, copy=False) as staging:
        yield staging


@contextlib.contextmanager
def _beside(run: Path, *, copy: bool) -> Iterator[Path]:
    """A hidden sibling folder (empty, or a copy of `run`) swapped in for `run` on success."""
    staging = run.absolute().parent / sibling_name(run.name, "incoming")
    if copy:
        shutil.copytree(run, staging)
    else:
        staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = swap_dirs(staging, run)
    shutil.rmtree(old, ignore_errors=True)


def _retune_problem(run: Path, differs: list[str], stages: tuple[str, ...]) -> str | None:
    """None when the stages being run cover every changed key, else what is missing."""
    if not differs:
        return None
    changed = {d.split(".", 1)[0] for d in differs} - set(FREE_KEYS)
    owners = {}
    for key in sorted(changed):
        owner = next((st for st, keys in STAGE_KEYS.items() if key in keys), None)
        if owner is None:
            return f"; {key} reaches the float student, so no checkpoint could be kept"
        owners[key] = owner
    needed = set(owners.values())
    needed |= {
        later
        for st in owners.values()
        for later in BUILT_ON[st]
        if (run / CHECKPOINTS[later]).is_file()
    }
    missing = [st for st in STAGES if st in needed and st not in stages]
    if missing:
        return f"; the changed keys need stage(s) {', '.join(missing)} run again"
    return None


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


def dataset_record(run: str | Path, data_dir: str | Path, manifest_sha256: str) -> dict:
    """How config.json names the run's dataset so the run can move: relative, absolute, sha256.

    The path relative to the run keeps working when the run and its data move together
    (a copied `runs/demo/`); the absolute one when only the run moves on this machine;
    the manifest sha256 proves that what is found there is the same dataset.
    """
    import os

    data = Path(data_dir).absolute()
    return {
        "path_relative_to_run": os.path.relpath(data, Path(run).absolute()),
        "path_absolute": str(data),
        "manifest_sha256": manifest_sha256,
    }


def _manifest_sha(path: Path) -> str | None:
    from edgeped.data.output import MANIFEST
    from edgeped.fileio import sha256_file

    manifest = path / MANIFEST
    return sha256_file(manifest) if manifest.is_file() else None


def resolve_run_dataset(
    run_dir: str | Path, data_dir: str | Path | None = None, *, command: str = "convert"
) -> Path:
    """The dataset a run was trained on, wherever the run (or the dataset) now is.

    ``data_dir`` (a command's --data) wins; else the path config.json records relative
    to the run, then its absolute original, then (runs from before the record) the
    `data_dir` the training config names. Whatever is found must have the manifest
    sha256 the run recorded.

    Raises:
        EdgepedError: no config.json, no candidate path holds a dataset, or the dataset
            found has another manifest sha256 than the run was trained on.
    """
    run = Path(run_dir)
    data = recorded_config(run)
    if data is None:
        raise EdgepedError(
            f"{run} has no {CONFIG}: not a training run directory",
            f"pass the folder `edgeped train` wrote, or give --data to `edgeped {command}`",
        )
    record = data.get("dataset") if isinstance(data.get("dataset"), dict) else {}
    want = record.get("manifest_sha256") or data.get("dataset_manifest_sha256")
    if data_dir is not None:
        tried = [Path(data_dir)]
    else:
        tried = []
        if record.get("path_relative_to_run"):
            tried.append(run / record["path_relative_to_run"])
        if record.get("path_absolute"):
            tried.append(Path(record["path_absolute"]))
        legacy = (data.get("config") or {}).get("data_dir")
        if legacy:
            tried.append(Path(legacy))
    import shlex

    fix_cmd = f"edgeped {command} {shlex.quote(str(run))} --data DATASET_DIR"
    for path in tried:
        sha = _manifest_sha(path)
        if sha is None:
            continue
        if want and sha != want:
            raise EdgepedError(
                f"the dataset at {path} is not the one {run} was trained on (manifest sha256 "
                f"{sha[:12]}, the run recorded {str(want)[:12]})",
                f"run `{fix_cmd}` with the run's own dataset (manifest sha256 {str(want)[:12]})",
            )
        return path
    listed = ", ".join(str(p) for p in tried) or "none recorded"
    raise EdgepedError(
        f"the dataset {run} was trained on is not where the run recorded it (tried: {listed})",
        f"run `{fix_cmd}` with the dataset's current folder"
        + (f" (manifest sha256 {str(want)[:12]})" if want else ""),
    )
