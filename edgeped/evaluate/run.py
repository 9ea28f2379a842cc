"""Evaluates a run's .tflite models on validation (threshold) and test (metrics).

Every model is the shipped artifact run through LiteRT on the host. Splits are
streamed batch by batch, so memory holds scores and tags, not images.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeped.convert.inspect import load_interpreter, tensor_infos
from edgeped.convert.model_card import CARD_SUFFIX, CardFacts, card_path, read_card
from edgeped.data.schema import TAG_FIELDS
from edgeped.data.shards import Dataset
from edgeped.errors import EdgepedError
from edgeped.evaluate import metrics as m
from edgeped.evaluate.calibration import calibration_report, reliability
from edgeped.evaluate.inference import TfliteScorer
from edgeped.evaluate.scores import SplitScores
from edgeped.evaluate.uncertainty import bootstrap_by_group, clopper_pearson
from edgeped.fileio import sha256_file
from edgeped.provenance import stamp


@dataclass(frozen=True)
class EvalConfig:
    max_fpr: float = 0.01
    min_recall: float = 0.92
    min_slice_samples: int = 30
    batch: int = 64
    threads: int = 2
    bootstrap_resamples: int = 1000
    # Share of val/test records whose metadata is dropped (set NaN) before scoring,
    # to measure a model under sensor dropouts; 0 = the data as recorded.
    metadata_dropout: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.max_fpr < 1:
            raise ValueError(f"max_fpr must be in (0, 1), got {self.max_fpr}")
        if not 0 < self.min_recall <= 1:
            raise ValueError(f"min_recall must be in (0, 1], got {self.min_recall}")
        if self.min_slice_samples < 1:
            raise ValueError(f"min_slice_samples must be >= 1, got {self.min_slice_samples}")
        if not 0.0 <= self.metadata_dropout <= 1.0:
            raise ValueError(f"metadata_dropout must be in [0, 1], got {self.metadata_dropout}")
        if self.bootstrap_resamples < 10:
            raise ValueError(f"bootstrap_resamples must be >= 10, got {self.bootstrap_resamples}")
        if self.batch < 1 or self.threads < 1:
            raise ValueError(f"batch and threads must be >= 1, got {self.batch}, {self.threads}")
        if self.threads > 256:
            raise ValueError(f"threads must be <= 256 (interpreter threads), got {self.threads}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "eval config") -> EvalConfig:
        """Builds the config from a mapping (the one config loader: edgeped.config)."""
        from edgeped.config import from_mapping

        return from_mapping(cls, data, where=where)


def find_models(run_dir: Path, only: tuple[str, ...] | None = None) -> dict[str, tuple[Path, dict]]:
    """Model name -> (.tflite path, card) for every card in the run directory."""
    found = {}
    cards = sorted(run_dir.glob(f"*{CARD_SUFFIX}"))
    names = [c.name[: -len(CARD_SUFFIX)] for c in cards]
    unknown = sorted(set(only or ()) - set(names))
    if unknown and names:
        raise EdgepedError(
            f"no model named {', '.join(unknown)} in {run_dir}",
            f"--only takes the converted models' names: {', '.join(names)}",
        )
    for card_file in cards:
        name = card_file.name[: -len(CARD_SUFFIX)]
        if only and name not in only:
            continue
        model = run_dir / f"{name}.tflite"
        if not model.is_file():
            raise EdgepedError(
                f"{card_file.name} has no model beside it ({model.name} missing)",
                "re-run `edgeped convert`",
            )
        card = read_card(card_file)
        if sha256_file(model) != card["model"]["sha256"]:
            raise EdgepedError(
                f"{model.name} does not match its card (sha256 differs)",
                "the model changed after conversion: re-run `edgeped convert`",
            )
        found[name] = (model, card)
    if not found:
        raise EdgepedError(f"no converted models in {run_dir}", "run `edgeped convert` first")
    return found


def _check_card_output(name: str, card: dict, actual) -> None:
    """The card's output must describe the model's: the int8 threshold is derived from it."""
    out = (card.get("outputs") or [{}])[0]
    same = out.get("dtype") == actual.dtype and (
        actual.dtype != "int8"
        or (
            np.isclose(out.get("scale", np.nan), actual.scale)
            and out.get("zero_point") == actual.zero_point
        )
    )
    if not same:
        raise EdgepedError(
            f"{name}: the card describes a {out.get('dtype')} output "
            f"(scale {out.get('scale')}, zero point {out.get('zero_point')}), the model has "
            f"{actual.dtype} (scale {actual.scale}, zero point {actual.zero_point})",
            "the card does not describe this model: re-run `edgeped convert`",
        )


def _model_output(path: Path):
    """The model's single score output, read in this process whichever scorer runs."""
    _, outputs = tensor_infos(load_interpreter(path, num_threads=1))
    if len(outputs) != 1:
        raise EdgepedError(
            f"{path} has {len(outputs)} outputs, expected 1 score",
            "export a model with a single [N, 1] score output",
        )
    return outputs[0]


def score_split(
    dataset: Dataset,
    split: str,
    scorers: dict[str, TfliteScorer],
    progress: Callable[[str], None],
    metadata_dropout: float = 0.0,
) -> SplitScores:
    labels, drives, crops = [], [], []
    tags, scores = {t: [] for t in TAG_FIELDS}, {n: [] for n in scorers}
    total, done = dataset.count(split), 0
    if total == 0:
        raise EdgepedError(
            f"the {split} split of {dataset.root} is empty",
            "generate more drives so every split gets some",
        )
    rng = np.random.default_rng(12345)
    for batch in dataset.iter_batches(split, batch_records=1024):
        if metadata_dropout:
            batch.metadata[rng.random(len(batch)) < metadata_dropout] = np.nan
        labels.append(batch.labels)
        drives.append(batch.drive_id)
        crops.append(batch.crop_id)
        for t in TAG_FIELDS:
            tags[t].append(batch.tags(t))
        for name, scorer in scorers.items():
            scores[name].append(scorer.score(batch.images, batch.metadata).probability)
        done += len(batch)
        progress(f"scored {split}: {done}/{total} crops with {len(scorers)} model(s)")
    return SplitScores(
        np.concatenate(labels),
        {t: np.concatenate(v) for t, v in tags.items()},
        {n: np.concatenate(v) for n, v in scores.items()},
        np.concatenate(drives),
        np.concatenate(crops),
    )


Scorer = Callable[
    [Dataset, dict[str, tuple[Path, dict]], EvalConfig, Callable[[str], None]],
    tuple[SplitScores, SplitScores],
]


def score_local(
    dataset: Dataset,
    models: dict[str, tuple[Path, dict]],
    config: EvalConfig,
    progress: Callable[[str], None],
) -> tuple[SplitScores, SplitScores]:
    """Scores val and test in this process, one interpreter per model."""
    scorers = {
        name: TfliteScorer(
            path,
            CardFacts.from_card(card, card_path(path)).host_preprocessing(),
            batch=config.batch,
            num_threads=config.threads,
        )
        for name, (path, card) in models.items()
    }
    val = score_split(dataset, "val", scorers, progress, config.metadata_dropout)
    test = score_split(dataset, "test", scorers, progress, config.metadata_dropout)
    return val, test


def _float_sibling(name: str, card: dict, models: dict[str, tuple[Path, dict]]) -> str | None:
    """The float32 model of the same lineage, to compare a quantised one against."""
    if card["model"]["mode"] == "float32":
        return None
    parent = card["source"].get("float_parent", card["source"]["checkpoint"])
    for other, (_, other_card) in models.items():
        if (
            other_card["model"]["mode"] == "float32"
            and other_card["source"]["checkpoint"] == parent
        ):
            return other
    return None


def evaluate_run(
    run_dir: str | os.PathLike,
    config: EvalConfig = EvalConfig(),
    *,
    only: tuple[str, ...] | None = None,
    data_dir: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
    scorer: Scorer | None = None,
) -> EvalResult:
    """Scores val and test, picks thresholds on val, measures test.

    `scorer` replaces the in-process scoring of val and test (e.g. the Beam one in
    `edgeped.evaluate.beam_score`); it must return the same SplitScores.

    Returns:
        The metrics (metrics.json content) and the per-crop scores; nothing is written
        until ``EvalResult.save``.

    Raises:
        EdgepedError: no models, a model that does not match its card, an empty split,
            a split with one class only.
    """
    run = Path(run_dir)
    models = find_models(run, only)
    first_card = next(iter(models.values()))[1]
    recorded = first_card.get("source", {}).get("dataset")
    if not data_dir and not (recorded and Path(recorded).is_dir()):
        raise EdgepedError(
            f"the dataset the models were converted against, {recorded!r} (from the model "
            f"card), is not there"
            + (
                ""
                if not recorded or Path(recorded).is_absolute()
                else f" (relative to {Path.cwd()})"
            ),
            "pass --data with the dataset's current location",
        )
    dataset = Dataset.open(data_dir or recorded)
    for name, (_, card) in models.items():
        if card["source"]["dataset_manifest_sha256"] != dataset.manifest_sha256 and not data_dir:
            raise EdgepedError(
                f"{name} was converted against another dataset than "
                f"{dataset.root} (manifest sha256 differs)",
                "pass --data with the dataset to evaluate on, or re-run convert",
            )
    for name, (path, card) in models.items():
        _check_card_output(name, card, _model_output(path))
    val, test = (scorer or score_local)(dataset, models, config, progress)
    results = {}
    for name, (path, card) in models.items():
        chosen = m.threshold_max_recall(val.labels, val.scores[name], config.max_fpr)
        alt = m.threshold_min_fpr(val.labels, val.scores[name], config.min_recall)
        at = m.rates_at(test.labels, test.scores[name], chosen.threshold)
        results[name] = {
            "model": {
                "file": path.name,
                "sha256": card["model"]["sha256"],
                "size_bytes": card["model"]["size_bytes"],
                "mode": card["model"]["mode"],
                "architecture": card["model"]["architecture"],
                "parameters": card["model"]["parameters"],
                "concatenations": card["model"].get("concatenations", []),
            },
            "threshold": {
                "rule": f"max recall with val FPR <= {config.max_fpr}",
                **chosen.to_dict(),
            },
            "threshold_min_fpr": {
                "rule": f"min FPR with val recall >= {config.min_recall}",
                **alt.to_dict(),
            },
            "both_constraints_hold_on_val": bool(chosen.recall >= config.min_recall),
            "test": {**at.to_dict(), **m.ranking_metrics(test.labels, test.scores[name])},
            "test_ci95": {
                "recall_exact": clopper_pearson(at.tp, at.positives),
                "fpr_exact": clopper_pearson(at.fp, at.negatives),
                "by_drive_bootstrap": bootstrap_by_group(
                    test.labels,
                    test.scores[name],
                    test.drives,
                    chosen.threshold,
                    resamples=config.bootstrap_resamples,
                    seed=0,
                ),
            },
            "test_calibration": reliability(test.labels, test.scores[name]),
            # Temperature + bias fitted on val; monotonic, so the threshold's crops are unchanged.
            "calibration": calibration_report(
                val.labels, val.scores[name], test.labels, test.scores[name]
            ),
            "test_slices": m.slice_metrics(
                test.labels,
                test.scores[name],
                chosen.threshold,
                test.tags,
                config.min_slice_samples,
            ),
        }
    comparisons = []
    for name, (_, card) in models.items():
        sibling = _float_sibling(name, card, models)
        if sibling is None:
            continue
        a, b = results[sibling]["test"], results[name]["test"]
        comparisons.append(
            {
                "float": sibling,
                "quantized": name,
                "delta": {k: b[k] - a[k] for k in ("recall", "fpr", "auc_pr", "roc_auc")},
                **m.decision_flips(
                    test.labels,
                    test.scores[sibling],
                    results[sibling]["threshold"]["threshold"],
                    test.scores[name],
                    results[name]["threshold"]["threshold"],
                ),
            }
        )
    report = {
        **stamp("edgeped.metrics"),
        "config": config.to_dict(),
        "dataset": {
            "root": str(dataset.root),
            "manifest_sha256": dataset.manifest_sha256,
            "val": {"crops": int(val.labels.size), "positives": int(val.labels.sum())},
            "test": {"crops": int(test.labels.size), "positives": int(test.labels.sum())},
        },
        "inputs": {
            name: {"file": str(path), "sha256": card["model"]["sha256"]}
            for name, (path, card) in models.items()
        },
        "models": results,
        "comparisons": comparisons,
    }
    return EvalResult(metrics=report, val=val, test=test)


@dataclass(frozen=True)
class EvalResult:
    """What `evaluate_run` measured: metrics.json content plus every crop's scores."""

    metrics: dict[str, Any]
    val: SplitScores
    test: SplitScores

    def to_dict(self) -> dict[str, Any]:
        """The metrics as JSON-able data (a deep copy: the result stays as measured)."""
        return copy.deepcopy(self.metrics)

    def save(self, run_dir: str | os.PathLike, tag: str = "") -> dict[str, Path]:
        """Writes metrics.json, report.md, plots, test scores and the cards' thresholds."""
        from edgeped.evaluate.outputs import write_outputs

        return write_outputs(run_dir, self.to_dict(), self.val, self.test, tag=tag)
