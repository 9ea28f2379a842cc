"""The files a gate judges: the model, its card, metrics.json and bench results.

Reading is separate from judging: ``collect`` hashes and parses every file once and
records what was wrong with it, so the checks never touch the disk (except the
delegation check, which loads the model itself).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeped.fileio import sha256_file
from edgeped.layout import (  # noqa: E402,F401  (names the gate reads the run by)
    BENCH_GLOBS,
    CARD_SUFFIX,
    METRICS_FILE,
    MODEL_SUFFIX,
    TEST_SCORES_FILE,
)
from edgeped.schemas import SCHEMAS, shape_problem

if TYPE_CHECKING:
    from edgeped.convert.model_card import CardFacts

CARD_KIND = "edgeped.model_card"
METRICS_KIND = "edgeped.metrics"
BENCH_KIND = "edgeped.bench"
ROBUSTNESS_FILE = "robustness.json"  # edgeped.evaluate.robustness, without its imports
ROBUSTNESS_KIND = "edgeped.robustness"


@dataclass(frozen=True)
class Source:
    """One evidence file: where it is, its sha256, its parsed content or what is wrong."""

    path: str
    sha256: str | None = None
    data: Any = None
    problem: str | None = None  # set when the file is missing or unreadable
    missing: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None


def read_source(path: str | os.PathLike, kind: str | None = None) -> Source:
    """Hashes and parses a JSON evidence file; never raises for a bad file."""
    p = Path(path)
    if not p.is_file():
        return Source(str(p), problem=f"{p} does not exist", missing=True)
    try:
        digest = sha256_file(p)
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        return Source(str(p), problem=f"cannot read {p}: {exc}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Source(str(p), digest, problem=f"{p} is not valid JSON ({exc})")
    if kind is not None and (not isinstance(data, dict) or data.get("kind") != kind):
        found = data.get("kind") if isinstance(data, dict) else type(data).__name__
        return Source(str(p), digest, problem=f"{p} is not an {kind} file (kind {found!r})")
    if kind in SCHEMAS:
        problem = shape_problem(data, kind)
        if problem:
            return Source(str(p), digest, problem=f"{p} is not a valid {kind} file: {problem}")
    return Source(str(p), digest, data)


def read_scores(root: Path, metrics: Source) -> Source:
    """The per-crop test scores metrics.json points to, checked against the sha256 it records.

    data is {"crop_id": ..., "label": ..., "score/<model>": ...} when usable.
    """
    from edgeped.errors import EdgepedError
    from edgeped.evaluate.scores import read_test_scores

    entry = metrics.data.get("test_scores") if metrics.ok else None
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        return Source(
            str(root / TEST_SCORES_FILE),
            missing=True,
            problem=f"{metrics.path} names no per-crop test scores (made by an older "
            "edgeped, or not evaluated); re-run `edgeped eval`",
        )
    path = root / Path(entry["file"]).name
    if not path.is_file():
        return Source(str(path), missing=True, problem=f"{path} does not exist")
    digest = sha256_file(path)
    if digest != entry.get("sha256"):
        return Source(
            str(path),
            digest,
            problem=f"{path} is not the file metrics.json was written with (sha256 differs)",
        )
    try:
        return Source(str(path), digest, read_test_scores(path))
    except EdgepedError as exc:
        return Source(str(path), digest, problem=exc.problem)


@dataclass(frozen=True)
class ModelFile:
    """The .tflite under the gate (its sha256 is what every other file must name)."""

    path: str
    sha256: str | None
    size_bytes: int | None


@dataclass(frozen=True)
class Evidence:
    """Everything on disk about one model of one run directory."""

    run_dir: str
    model: str
    model_file: ModelFile
    card: Source
    metrics: Source
    benches: tuple[Source, ...] = ()
    baseline: Evidence | None = None
    scores: Source | None = None  # per-crop test scores (read only when a baseline is gated)
    robustness: Source | None = None  # robustness.json, the corruption suite's results
    # Every model of the run directory: (name, sha256), to tell a sibling's evidence
    # (made for another model of the same run) from stale evidence (for no model here).
    run_models: tuple[tuple[str, str], ...] = ()

    def sibling(self, sha256: object) -> str | None:
        """The other model of this run whose .tflite has ``sha256``, if any."""
        return next((n for n, s in self.run_models if s == sha256 and n != self.model), None)

    @property
    def model_arg(self) -> str:
        """The model's path as a shell word, for fix commands that can be pasted."""
        import shlex

        return shlex.quote(str(Path(self.run_dir) / f"{self.model}{MODEL_SUFFIX}"))

    @property
    def run_arg(self) -> str:
        import shlex

        return shlex.quote(str(self.run_dir))

    @property
    def model_sha256(self) -> str | None:
        """The model file's sha256, else the card's claim (so the rest can still be judged)."""
        if self.model_file.sha256:
            return self.model_file.sha256
        if self.card.ok:
            return (self.card.data.get("model") or {}).get("sha256")
        return None

    def card_facts(self) -> CardFacts | None:
        """The card's facts if the card is readable and well formed (for whichever model)."""
        from edgeped.convert.model_card import CardFacts
        from edgeped.errors import EdgepedError

        if not self.card.ok:
            return None
        try:
            return CardFacts.from_card(self.card.data, self.card.path)
        except EdgepedError:
            return None

    def metrics_entry(self) -> dict | None:
        if not self.metrics.ok:
            return None
        return (self.metrics.data.get("models") or {}).get(self.model)

    def metrics_sha256(self) -> str | None:
        entry = self.metrics_entry() or {}
        return (entry.get("model") or {}).get("sha256") or (
            (self.metrics.data.get("inputs") or {}).get(self.model, {}).get("sha256")
            if self.metrics.ok
            else None
        )

    def bench_split(self) -> tuple[list[Source], list[Source], list[Source]]:
        """Bench files for this model, for another model (stale), and unreadable ones."""
        mine, stale, bad = [], [], []
        for source in self.benches:
            if not source.ok:
                bad.append(source)
            elif not isinstance(source.data.get("model_sha256"), str):
                bad.append(
                    Source(
                        source.path, source.sha256, problem=f"{source.path} names no model_sha256"
                    )
                )
            elif source.data["model_sha256"] == self.model_sha256:
                mine.append(source)
            else:
                stale.append(source)
        return mine, stale, bad


def find_bench_files(run_dir: Path) -> list[Path]:
    found: set[Path] = set()
    for pattern in BENCH_GLOBS:
        found.update(p for p in run_dir.glob(pattern) if p.is_file())
    return sorted(found)


def _model_file(path: Path) -> ModelFile:
    if not path.is_file():
        return ModelFile(str(path), None, None)
    return ModelFile(str(path), sha256_file(path), path.stat().st_size)


def collect(
    run_dir: str | os.PathLike,
    model: str,
    extra_bench: tuple[str, ...] = (),
    baseline: str | os.PathLike | None = None,
    *,
    with_scores: bool = False,
) -> Evidence:
    """Reads every file the gate needs for ``model`` in ``run_dir`` (and a baseline run).

    Args:
        run_dir: the run directory holding ``<model>.tflite``, its card and metrics.json.
        model: the model's name (file stem), e.g. ``student_qat_int8``.
        extra_bench: bench.json files kept elsewhere, judged with the run's own.
        baseline: a previous release's run directory, for the change budgets.
        with_scores: also read the per-crop test scores (always done with a baseline).
    """
    root = Path(run_dir)
    benches = [*find_bench_files(root), *(Path(p) for p in extra_bench)]
    unique = list(dict.fromkeys(p.resolve() for p in benches))
    metrics = read_source(root / METRICS_FILE, METRICS_KIND)
    return Evidence(
        run_dir=str(root),
        model=model,
        model_file=_model_file(root / f"{model}{MODEL_SUFFIX}"),
        card=read_source(root / f"{model}{CARD_SUFFIX}", CARD_KIND),
        metrics=metrics,
        benches=tuple(read_source(p, BENCH_KIND) for p in unique),
        baseline=collect(baseline, model, with_scores=True) if baseline is not None else None,
        scores=read_scores(root, metrics) if baseline is not None or with_scores else None,
        robustness=read_source(root / ROBUSTNESS_FILE, ROBUSTNESS_KIND),
        run_models=tuple(
            (p.name.removesuffix(MODEL_SUFFIX), sha256_file(p))
            for p in sorted(root.glob(f"*{MODEL_SUFFIX}"))
            if p.is_file()
        ),
    )
