"""Shadow a candidate beside the baseline on a target, or offline from two runs' scores.

``run_shadow`` pushes both models, a replay set and a spec (each model's card threshold
and preprocessing) to a target, runs the device runner's shadow mode there, pulls the
append-only log back (sha256-checked) and writes the report next to it.
``records_from_run`` builds the same records from eval's per-crop test scores, so CI
can shadow two runs without a board. ``load_source`` reads either.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeped.convert.model_card import CardFacts, card_facts, card_facts_beside
from edgeped.errors import EdgepedError
from edgeped.fileio import atomic_output, sha256_file, write_json_atomic
from edgeped.paths import resolve_inside
from edgeped.provenance import stamp
from edgeped.rollout.replay import write_replay
from edgeped.rollout.shadow_log import Integrity, ShadowRecords, Side, read_log
from edgeped.rollout.shadow_render import write_report
from edgeped.rollout.shadow_report import ShadowConfig, ShadowReport, shadow_report
from edgeped.schemas import read_checked
from edgeped.targets.base import Progress, RunnerJob, Target

LOG_NAME = "shadow_log.jsonl"
REPLAY_NAME = "replay.npz"
RUN_NAME = "shadow_run.json"


@dataclass(frozen=True)
class ShadowOptions:
    """How the runner shadows: passes over the crops, fsync batching, cost reference."""

    repeat: int = 1
    fsync_every: int = 1
    cost_runs: int = 50
    warmup: int = 3
    threads: int = 1
    insn_runs: int = 3
    timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        for name in ("repeat", "fsync_every", "cost_runs", "threads", "insn_runs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0, got {self.warmup!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def runner_args(self) -> tuple[str, ...]:
        return (
            "--shadow-repeat", str(self.repeat), "--fsync-every", str(self.fsync_every),
            "--cost-runs", str(self.cost_runs), "--warmup", str(self.warmup),
            "--threads", str(self.threads), "--insn-runs", str(self.insn_runs),
        )  # fmt: skip


@dataclass(frozen=True)
class ShadowJob(RunnerJob):
    """A runner job in shadow mode: the candidate and the spec travel with the baseline."""

    candidate: Path | None = None
    spec: Path | None = None
    log_path: str = ""

    def staged(self) -> dict[str, Path]:
        out = super().staged()
        if self.candidate is not None and sha256_file(self.candidate) != sha256_file(self.model):
            out["candidate"] = self.candidate
        if self.spec is not None:
            out["shadow_spec"] = self.spec
        return out

    def runner_argv(self, paths: dict[str, str]) -> list[str]:
        return [
            *super().runner_argv(paths),
            "--shadow", paths.get("candidate", paths["model"]),
            "--shadow-spec", paths["shadow_spec"],
            "--shadow-log", self.log_path,
        ]  # fmt: skip


def model_spec(
    model: Path, name: str | None = None, facts: CardFacts | None = None
) -> dict[str, Any]:
    """What the device needs to decide like the card says: thresholds and preprocessing.

    Args:
        model: the .tflite, with its evaluated card beside it.
        name: the model's name in the log (default: the file stem).
        facts: the card's facts when already read (else read from beside ``model``).

    Raises:
        EdgepedError: no card, a card for another model, or one without eval's threshold.
    """
    facts = facts or card_facts_beside(model)
    pre = facts.runner_preprocess() or {}
    return {
        "name": name or model.name.removesuffix(".tflite"),
        "threshold": facts.decision_threshold(model.parent),
        "threshold_int8": facts.threshold_int8,
        "preprocess": pre.get("metadata"),
        "image_rule": facts.image_rule,
        "sha256": facts.model_sha256,
        "dataset": facts.dataset,
    }


@dataclass(frozen=True)
class ShadowRun:
    """What `run_shadow` left in the output directory, and the report it computed."""

    out_dir: Path
    log: Path
    report: ShadowReport
    files: dict[str, Path]
    runner: dict[str, Any]


def _pull(target: Target, remote: str, dest: Path, sha256: str) -> None:
    """Brings the board's log to ``dest`` (atomically) and checks its sha256."""
    target.pull(remote, dest)
    if sha256_file(dest) != sha256:
        dest.unlink()
        raise EdgepedError(
            f"the shadow log pulled from {target.name} does not match its sha256",
            f"pull {remote} again; the board's copy is untouched",
        )


def run_shadow(
    baseline: str | os.PathLike,
    candidate: str | os.PathLike,
    target: Target,
    out_dir: str | os.PathLike,
    *,
    crops: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    options: ShadowOptions = ShadowOptions(),
    config: ShadowConfig | None = None,
    progress: Progress | None = None,
) -> ShadowRun:
    """Runs both models side by side on ``target`` and writes log, replay set and report.

    Args:
        baseline, candidate: .tflite files with their evaluated cards beside them.
        crops: a replay .npz (images, metadata, optional crop_id, label, tag/*).
        data_dir: or a dataset, whose ``split`` becomes the replay (``limit`` crops
            sampled across its drives with ``seed``, when given).

    Raises:
        EdgepedError: bad inputs (checked before anything runs), an existing log in
            ``out_dir``, a target failure or a log that does not arrive intact.
    """
    base_path, cand_path = Path(baseline), Path(candidate)
    for p in (base_path, cand_path):
        if not p.is_file():
            raise EdgepedError(f"model not found: {p}", "check the path to the .tflite file")
    if (crops is None) == (data_dir is None):
        raise EdgepedError("give exactly one of --crops or --data", "see `edgeped shadow run -h`")
    if crops is not None and not Path(crops).is_file():
        raise EdgepedError(f"replay crops not found: {crops}", "pass an existing .npz")
    out = Path(out_dir)
    log = out / LOG_NAME
    if log.exists():
        raise EdgepedError(
            f"{log} already exists: a shadow log is never overwritten",
            "pass a new --out directory",
        )
    if limit is not None and limit < 1:
        raise EdgepedError(f"--limit must be >= 1, got {limit}", "pass e.g. --limit 2000")
    paths = {"baseline": base_path, "candidate": cand_path}
    facts = {role: card_facts_beside(path) for role, path in paths.items()}
    spec = {role: model_spec(path, facts=facts[role]) for role, path in paths.items()}
    calibrators = {role: f.calibrator for role, f in facts.items()}
    out.mkdir(parents=True, exist_ok=True)
    replay = out / REPLAY_NAME
    if data_dir is not None:
        if progress:
            progress(f"writing the {split} split of {data_dir} as the replay set")
        write_replay(replay, data_dir, split, limit, seed)
    else:
        with atomic_output(replay) as handle, open(crops, "rb") as src:
            shutil.copyfileobj(src, handle)
    with tempfile.TemporaryDirectory(prefix="edgeped-shadow-") as tmp:
        spec_path = Path(tmp) / "shadow_spec.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        if target.workdir:
            remote_log = target.remote_path(f"shadow-{uuid.uuid4().hex[:12]}.jsonl")
        else:
            remote_log = str(Path(tmp) / "board" / LOG_NAME)
            Path(remote_log).parent.mkdir()
        job = ShadowJob(
            model=base_path,
            args=options.runner_args(),
            crops=replay,
            timeout_s=options.timeout_s,
            candidate=cand_path,
            spec=spec_path,
            log_path=remote_log,
        )
        if progress:
            progress(f"shadowing {cand_path.name} beside {base_path.name} on {target.name}")
        result = target.run(replace(job), progress)
        if result.get("mode") != "shadow":
            raise EdgepedError(
                f"the runner on {target.name} did not run in shadow mode",
                "push the current device/runner.py (it has --shadow)",
            )
        _pull(target, result["log"]["path"], log, result["log"]["sha256"])
    records = with_calibrators(read_log(log), calibrators)
    records = replace(
        records,
        source={
            **records.source,
            "path": LOG_NAME,
            "target": target.describe(),
            "emulated": bool(target.emulated),
        },
    )
    report = shadow_report(records, config or ShadowConfig())
    files = write_report(out, report, records, crops_for(report.new_miss_ids, replay=replay))
    write_json_atomic(
        out / RUN_NAME,
        {
            **stamp("edgeped.shadow_run"),
            "target": target.describe(),
            "options": options.to_dict(),
            "spec": spec,
            "calibrators": calibrators,
            "replay": {
                "file": REPLAY_NAME,
                "sha256": sha256_file(replay),
                "split": split if data_dir is not None else None,
                "limit": limit,
                "seed": seed,
            },
            "log": {"file": LOG_NAME, "sha256": sha256_file(log), "board_path": remote_log},
            "runner": result,
        },
    )
    return ShadowRun(out, log, report, {**files, "log": log, "replay": replay}, result)


def with_calibrators(records: ShadowRecords, calibrators: dict) -> ShadowRecords:
    """The records with each model's calibrator (for the label-free estimate) attached."""
    return replace(
        records,
        baseline_info={**records.baseline_info, "calibrator": calibrators.get("baseline")},
        candidate_info={**records.candidate_info, "calibrator": calibrators.get("candidate")},
    )


def _logged_calibrators(log: Path) -> dict:
    """The calibrators `shadow run` recorded beside a log (shadow_run.json), if any."""
    path = log.parent / RUN_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("calibrators") or {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return {}


def crops_for(
    ids: tuple[str, ...] | list[str],
    *,
    replay: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    split: str = "test",
) -> dict[str, np.ndarray]:
    """uint8 images of the given crop ids from a replay .npz or a dataset split."""
    wanted = set(ids)
    if not wanted:
        return {}
    if replay is not None and Path(replay).is_file():
        with np.load(replay, allow_pickle=False) as npz:
            if "crop_id" not in npz.files:
                return {}
            keys = npz["crop_id"].astype(str)
            idx = np.flatnonzero(np.isin(keys, list(wanted)))
            images = npz["images"][idx]
        return {str(keys[i]): img for i, img in zip(idx, images, strict=True)}
    if data_dir is not None and Path(data_dir).is_dir():
        from edgeped.data.shards import Dataset

        found = {}
        for batch in Dataset.open(data_dir).iter_batches(split, batch_records=1024):
            for i in np.flatnonzero(np.isin(batch.crop_id.astype(str), list(wanted))):
                found[str(batch.crop_id[i])] = batch.images[i]
        return found
    return {}


def _card(metrics: dict, name: str, run: Path) -> CardFacts:
    """The card of ``name`` in ``run``: its threshold and calibrator win over metrics.json's."""
    if not metrics.get("models", {}).get(name):
        known = sorted(metrics.get("models", {}))
        raise EdgepedError(
            f"{run}/metrics.json has no model {name!r}; it has {known}",
            "name a model that `edgeped eval` measured",
        )
    return card_facts(run, name)


def records_from_run(
    run_dir: str | os.PathLike,
    baseline: str,
    candidate: str,
    *,
    candidate_run: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> ShadowRecords:
    """The shadow comparison offline: eval's per-crop test scores of two models.

    Decisions are score >= the threshold eval chose on val and wrote to each model's card
    (the card wins over metrics.json), as `eval` counts flips. Tags
    and metadata come from the dataset the scores were computed on (joined by crop id).

    Raises:
        EdgepedError: a missing or unreadable metrics/scores file, an unknown model, or
            two runs scored on different test crops.
    """
    from edgeped.evaluate.scores import read_test_scores

    runs = {"baseline": Path(run_dir), "candidate": Path(candidate_run or run_dir)}
    names = {"baseline": baseline, "candidate": candidate}
    sides, infos, labels, ids, source = {}, {}, None, None, {}
    for role, run in runs.items():
        metrics = read_checked(
            run / "metrics.json",
            "edgeped.metrics",
            "metrics.json (run `edgeped eval`)",
            "re-run `edgeped eval` on the run directory",
        )
        scores_file = resolve_inside(
            run,
            metrics.get("test_scores", {}).get("file", "test_scores.npz"),
            what="scores file",
            source=run / "metrics.json",
        )
        card = _card(metrics, names[role], run)
        t = card.decision_threshold(run)
        arrays = read_test_scores(scores_file)
        key = f"score/{names[role]}"
        if key not in arrays:
            raise EdgepedError(
                f"{scores_file} has no scores for {names[role]!r}",
                "re-run `edgeped eval` on that run directory",
            )
        order = np.argsort(arrays["crop_id"].astype(str), kind="stable")
        these = arrays["crop_id"].astype(str)[order]
        if ids is not None and not np.array_equal(ids, these):
            raise EdgepedError(
                "the two runs were scored on different test crops",
                "evaluate both on the same dataset (`edgeped eval RUN --data DIR`)",
            )
        ids, labels = these, arrays["label"].astype(np.int64)[order]
        s = arrays[key].astype(np.float64)[order]
        sides[role] = Side(scores=s, decisions=(s >= t).astype(np.int8))
        entry = metrics["models"][names[role]]
        infos[role] = {
            "name": names[role],
            "sha256": entry["model"]["sha256"],
            "size_bytes": entry["model"]["size_bytes"],
            "threshold": t,
            "decision_rule": "probability >= threshold",
            "calibrator": card.calibrator,
        }
        source[role] = {"run": str(run), "test_scores_sha256": sha256_file(scores_file)}
        dataset_root = data_dir or _run_dataset(run, metrics)
    tags, meta = _dataset_context(ids, dataset_root)
    return ShadowRecords(
        crop_ids=ids,
        baseline=sides["baseline"],
        candidate=sides["candidate"],
        baseline_info=infos["baseline"],
        candidate_info=infos["candidate"],
        source={
            "kind": "offline_test_scores",
            "path": str(runs["baseline"]),
            **source,
            "dataset": str(dataset_root) if dataset_root is not None else None,
        },  # fmt: skip
        labels=labels,
        tags=tags,
        metadata=meta,
        integrity=Integrity(records=len(ids)),
    )


def _run_dataset(run: Path, metrics: dict) -> str | None:
    """The dataset eval scored (metrics.json), else the run's own wherever it now is.

    None when neither is found: the report is then made without slices and gallery.
    """
    from edgeped.train.run_dir import resolve_run_dataset

    recorded = (metrics.get("dataset") or {}).get("root")
    if recorded and Path(recorded).is_dir():
        return str(recorded)
    try:
        return str(resolve_run_dataset(run, command="shadow report"))
    except EdgepedError:
        return None


def _dataset_context(ids: np.ndarray, root) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Slice tags and metadata of the test crops, in ``ids`` order (ids sorted)."""
    from edgeped.data.schema import TAG_FIELDS
    from edgeped.data.shards import Dataset

    if root is None or not Path(root).is_dir():
        return {}, None
    tags = {t: np.full(ids.size, "unknown", dtype=object) for t in TAG_FIELDS}
    meta = np.full((ids.size, 6), np.nan)
    for batch in Dataset.open(root).iter_batches("test", batch_records=2048):
        pos = np.searchsorted(ids, batch.crop_id.astype(str))
        pos = np.clip(pos, 0, ids.size - 1)
        hit = ids[pos] == batch.crop_id.astype(str)
        for t in TAG_FIELDS:
            tags[t][pos[hit]] = batch.tags(t)[hit]
        meta[pos[hit]] = batch.metadata[hit]
    return {t: v.astype(str) for t, v in tags.items()}, meta


def load_source(
    source: str | os.PathLike,
    *,
    baseline: str | None = None,
    candidate: str | None = None,
    candidate_run: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> tuple[ShadowRecords, dict[str, np.ndarray]]:
    """A shadow log file, a shadow output directory, or a run directory (offline).

    Returns:
        The records and the new-miss candidates' crops that can be found.

    Raises:
        EdgepedError: the source is none of these, or a run lacks the model names.
    """
    p = Path(source)
    if p.is_dir() and (p / LOG_NAME).is_file():
        p = p / LOG_NAME
    if p.is_file():
        records = with_calibrators(read_log(p), _logged_calibrators(p))
        b, c = records.baseline.decisions, records.candidate.decisions
        miss = [str(i) for i in records.crop_ids[(b == 1) & (c == 0)]]
        return records, crops_for(miss, replay=p.parent / REPLAY_NAME, data_dir=data_dir)
    if p.is_dir() and (p / "metrics.json").is_file():
        if not (baseline and candidate):
            raise EdgepedError(
                f"{p} is a run directory: name the two models to compare",
                "pass --baseline NAME --candidate NAME (e.g. student_float32, student_qat_int8)",
            )
        records = records_from_run(
            p, baseline, candidate, candidate_run=candidate_run, data_dir=data_dir
        )
        b, c = records.baseline.decisions, records.candidate.decisions
        miss = [str(i) for i in records.crop_ids[(b == 1) & (c == 0)]]
        return records, crops_for(miss, data_dir=records.source.get("dataset"))
    raise EdgepedError(
        f"{p} is neither a shadow log, a shadow output directory nor an evaluated run",
        "pass shadow_log.jsonl, the `shadow run --out` directory, or a run directory",
    )


def build_report(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    baseline: str | None = None,
    candidate: str | None = None,
    candidate_run: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    config: ShadowConfig | None = None,
) -> tuple[ShadowReport, dict[str, Path]]:
    """Reads a log or a run, computes the shadow report and writes it into ``out_dir``."""
    records, crops = load_source(
        source, baseline=baseline, candidate=candidate, candidate_run=candidate_run,
        data_dir=data_dir,
    )  # fmt: skip
    report = shadow_report(records, config or ShadowConfig())
    return report, write_report(out_dir, report, records, crops)
