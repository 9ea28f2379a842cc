"""The shipped .tflite models on the corrupted test split, at the threshold chosen on clean val.

For every model, corruption and severity: recall, FPR and AUC-PR with 95% intervals
(exact binomial, and a bootstrap over drives); per model the mean over corruptions
and severities, the worst case, and the relative drop against clean; for each
quantised model the gap to its float parent under the same corruption; and the
crops that flip from hit to miss (for the gallery). numpy + LiteRT only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeped.convert.model_card import CardFacts, card_path
from edgeped.data.shards import Dataset
from edgeped.errors import EdgepedError
from edgeped.evaluate import metrics as m
from edgeped.evaluate.corruptions import CORRUPTIONS, SEVERITIES, corrupt_batch
from edgeped.evaluate.inference import TfliteScorer
from edgeped.evaluate.run import _float_sibling, find_models, score_split
from edgeped.evaluate.scores import SplitScores
from edgeped.evaluate.uncertainty import bootstrap_by_group, clopper_pearson
from edgeped.fileio import sha256_file, write_json_atomic, write_text_atomic
from edgeped.provenance import stamp

ROBUSTNESS_KIND = "edgeped.robustness"
ROBUSTNESS_FILE = "robustness.json"


@dataclass(frozen=True)
class RobustnessConfig:
    """What the suite runs: which corruptions and severities, the threshold rule, intervals."""

    corruptions: tuple[str, ...] = tuple(CORRUPTIONS)
    severities: tuple[int, ...] = SEVERITIES
    seed: int = 0
    max_fpr: float = 0.01
    batch: int = 64
    threads: int = 2
    bootstrap_resamples: int = 500
    auc_resamples: int = 100
    gallery_per_corruption: int = 4
    # Keep every test pedestrian but only about this many background crops (0 = all),
    # chosen by a hash of the crop id; recall is unchanged, FPR gets a wider interval
    # and AUC-PR is that of the subsample (precision rises as negatives are dropped).
    max_negatives: int = 0
    # The same for pedestrians (0 = all): the quick suite's recall then has a wider interval.
    max_positives: int = 0
    # "full": every family at severities 1-5; "quick": the default of `edgeped eval`;
    # "custom": any other choice. Recorded so the gate can say what it judged.
    suite: str = "custom"

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise ValueError(f"suite must be one of {SUITES}, got {self.suite!r}")
        unknown = [c for c in self.corruptions if c not in CORRUPTIONS]
        if not self.corruptions or unknown:
            raise ValueError(
                f"corruptions must name registered corruptions ({', '.join(CORRUPTIONS)}), "
                f"got {self.corruptions!r}"
            )
        if not self.severities or any(s not in SEVERITIES for s in self.severities):
            raise ValueError(f"severities must be a subset of {SEVERITIES}, got {self.severities}")
        if not 0 < self.max_fpr < 1:
            raise ValueError(f"max_fpr must be in (0, 1), got {self.max_fpr}")
        if self.bootstrap_resamples < 10 or self.auc_resamples < 0:
            raise ValueError(
                "bootstrap_resamples must be >= 10 and auc_resamples >= 0, got "
                f"{self.bootstrap_resamples}, {self.auc_resamples}"
            )
        if self.max_negatives < 0 or self.max_positives < 0:
            raise ValueError(
                "max_negatives and max_positives must be >= 0 (0 = all), got "
                f"{self.max_negatives}, {self.max_positives}"
            )
        if self.batch < 1 or self.threads < 1 or self.gallery_per_corruption < 0:
            raise ValueError(
                "batch and threads must be >= 1 and gallery_per_corruption >= 0, got "
                f"{self.batch}, {self.threads}, {self.gallery_per_corruption}"
            )
        object.__setattr__(self, "corruptions", tuple(self.corruptions))
        object.__setattr__(self, "severities", tuple(sorted(set(self.severities))))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["corruptions"], out["severities"] = list(self.corruptions), list(self.severities)
        return out


SUITES = ("full", "quick", "custom")
# A shift that raises FPR above this at the clean-val threshold is named in the report
# (and judged by the gate's robustness.max_corrupted_fpr budget).
FPR_ALERT = 0.02
RATIO_SEVERITY = 3  # the gate's per-cell rule covers severities up to this one


def full_suite(max_fpr: float = 0.01, threads: int = 2) -> RobustnessConfig:
    """Every family at severities 1-5 on every test crop (`--corruptions all`)."""
    return RobustnessConfig(max_fpr=max_fpr, threads=threads, suite="full")


def quick_suite(max_fpr: float = 0.01, threads: int = 2) -> RobustnessConfig:
    """What `edgeped eval` runs by default: every family at severities 1, 3 and 5, on up to
    300 pedestrians and 300 background crops of test (about a minute on 2 cores)."""
    return RobustnessConfig(
        severities=(1, 3, 5),
        max_fpr=max_fpr,
        threads=threads,
        max_negatives=300,
        max_positives=300,
        bootstrap_resamples=200,
        auc_resamples=0,
        gallery_per_corruption=2,
        suite="quick",
    )


@dataclass
class Flip:
    """A test pedestrian the model finds clean and misses under a corruption."""

    crop_id: str
    corruption: str
    severity: int
    clean_score: float
    corrupted_score: float
    clean_image: np.ndarray
    corrupted_image: np.ndarray


@dataclass
class RobustnessResult:
    """The report (robustness.json content) and the flip crops for the gallery."""

    report: dict
    gallery_model: str
    flips: list[Flip] = field(default_factory=list)

    def save(self, run_dir: str | os.PathLike, tag: str = "") -> dict[str, Path]:
        return write_robustness(run_dir, self, tag)


def _cell(labels, scores, drives, threshold, config: RobustnessConfig) -> dict:
    """Recall, FPR, AUC-PR and their intervals at one threshold."""
    at = m.rates_at(labels, scores, threshold)
    boot = bootstrap_by_group(
        labels,
        scores,
        drives,
        threshold,
        resamples=config.bootstrap_resamples,
        auc_resamples=config.auc_resamples,
        seed=0,
    )
    return {
        "recall": at.recall,
        "fpr": at.fpr,
        "tp": at.tp,
        "fp": at.fp,
        "positives": at.positives,
        "negatives": at.negatives,
        "auc_pr": m.ranking_metrics(labels, scores)["auc_pr"],
        "ci95": {
            "recall_exact": clopper_pearson(at.tp, at.positives),
            "fpr_exact": clopper_pearson(at.fp, at.negatives),
            "recall_by_drive": boot["recall"],
            "fpr_by_drive": boot["fpr"],
            "auc_pr_by_drive": boot["auc_pr"],
        },
    }


def hits_by_drive(labels, drives, clean_scores, corrupted: dict, threshold: float) -> dict:
    """Pedestrians and hits per drive, clean and per corruption/severity (for paired bootstraps)."""
    uniq, inverse = np.unique(np.asarray(drives).astype(str), return_inverse=True)
    pos = labels == 1

    def per_drive(hit: np.ndarray) -> list[int]:
        return np.bincount(inverse, weights=(hit & pos), minlength=len(uniq)).astype(int).tolist()

    return {
        "drives": uniq.tolist(),
        "positives": np.bincount(inverse, weights=pos, minlength=len(uniq)).astype(int).tolist(),
        "clean_tp": per_drive(clean_scores >= threshold),
        "tp": {
            f"{c}/{s}": per_drive(sc >= threshold)
            for c, by_sev in corrupted.items()
            for s, sc in by_sev.items()
        },
    }


def mean_recall_interval(
    by_drive: dict, resamples: int, cells: list[str] | None = None, seed: int = 0
) -> tuple[float, float] | None:
    """95% bootstrap-over-drives interval of the mean recall over `cells` (default: all)."""
    keys = cells or list(by_drive["tp"])
    pos = np.asarray(by_drive["positives"], float)
    tp = np.asarray([by_drive["tp"][k] for k in keys], float)  # (cells, drives)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(pos), size=(resamples, len(pos)))
    counts = np.zeros((resamples, len(pos)))
    np.add.at(counts, (np.arange(resamples)[:, None], picks), 1)
    den = counts @ pos
    ok = den > 0
    if not ok.any():
        return None
    means = ((counts @ tp.T)[ok] / den[ok, None]).mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


def _ratio(value: float, clean: float) -> float | None:
    return None if not clean else value / clean


def summarise(
    clean_recall: float,
    cells: dict[str, dict[str, dict]],
    families: dict[str, list[str]] | None = None,
) -> dict:
    """Mean over corruptions and severities, per-corruption means, the worst cell, the drop;
    recall as a share of clean (overall, per cell up to severity 3, trained-on and held-out
    families apart) and the cells whose FPR passes FPR_ALERT."""
    per = {name: float(np.mean([c["recall"] for c in sev.values()])) for name, sev in cells.items()}
    flat = [(c["recall"], name, int(s)) for name, sev in cells.items() for s, c in sev.items()]
    worst = min(flat)
    mean = float(np.mean([r for r, _, _ in flat]))

    def drop(value: float) -> float | None:
        return None if not clean_recall else (clean_recall - value) / clean_recall

    mild = [(r, n, sv) for r, n, sv in flat if sv <= RATIO_SEVERITY]
    worst_mild = min(mild) if mild else None
    groups = {}
    for group, names in (families or {}).items():
        vals = [r for r, n, _ in flat if n in names]
        if vals:
            groups[group] = {
                "families": [n for n in names if n in cells],
                "mean_recall": float(np.mean(vals)),
                "recall_ratio": _ratio(float(np.mean(vals)), clean_recall),
            }
    fpr_alerts = sorted(
        (
            {"corruption": name, "severity": int(sv), "fpr": float(c["fpr"])}
            for name, sev in cells.items()
            for sv, c in sev.items()
            if c["fpr"] > FPR_ALERT
        ),
        key=lambda a: (-a["fpr"], a["corruption"], a["severity"]),
    )
    return {
        "recall_ratio": _ratio(mean, clean_recall),
        "worst_mild": None
        if worst_mild is None
        else {
            "recall": worst_mild[0],
            "corruption": worst_mild[1],
            "severity": worst_mild[2],
            "recall_ratio": _ratio(worst_mild[0], clean_recall),
            "severity_at_most": RATIO_SEVERITY,
        },
        "families": groups,
        "fpr_alerts": fpr_alerts,
        "max_corrupted_fpr": max(float(c["fpr"]) for sev in cells.values() for c in sev.values()),
        "clean_recall": clean_recall,
        "mean_corrupted_recall": mean,
        "mean_corrupted_fpr": float(
            np.mean([c["fpr"] for sev in cells.values() for c in sev.values()])
        ),
        "mean_corrupted_auc_pr": float(
            np.nanmean([c["auc_pr"] for sev in cells.values() for c in sev.values()])
        ),
        "relative_drop": drop(mean),
        "worst": {"recall": worst[0], "corruption": worst[1], "severity": worst[2]},
        "corrupted_recall": per,
        "relative_drop_by_corruption": {n: drop(v) for n, v in per.items()},
    }


def _keep(crop_ids: np.ndarray, labels: np.ndarray, share: float) -> np.ndarray:
    """Every pedestrian, and the background crops whose id hashes below `share`."""
    if share >= 1.0:
        return np.ones(len(labels), bool)
    u = np.array(
        [int(hashlib.sha256(str(c).encode()).hexdigest()[:8], 16) / 2**32 for c in crop_ids]
    )
    return (labels == 1) | (u < share)


def _keep_both(crop_ids, labels, neg_share: float, pos_share: float) -> np.ndarray:
    """Background crops kept at neg_share and pedestrians at pos_share, by crop-id hash."""
    keep_neg = _keep(crop_ids, labels, neg_share)
    keep_pos = _keep(crop_ids, 1 - np.asarray(labels), pos_share)
    return np.where(np.asarray(labels) == 1, keep_pos, keep_neg)


def _test_batches(dataset: Dataset, share: float, pos_share: float = 1.0):
    for batch in dataset.iter_batches("test", batch_records=512):
        keep = _keep_both(batch.crop_id, batch.labels, share, pos_share)
        if keep.any():
            yield batch.take(np.flatnonzero(keep))


def run_families(run: Path, names: tuple[str, ...]) -> dict[str, list[str]] | None:
    """The run's trained-on and held-out families, from its config.json's [augment]."""
    from edgeped.evaluate.corruptions import family_split
    from edgeped.fileio import read_json

    path = run / "config.json"
    if not path.is_file():
        return None
    try:
        augment = (read_json(path, "run config").get("config") or {}).get("augment")
    except EdgepedError:
        return None
    return family_split(augment, names) if isinstance(augment, dict) else None


def _gallery_model(models: dict[str, tuple[Path, dict]], preferred: str | None) -> str:
    if preferred:
        if preferred not in models:
            raise EdgepedError(
                f"no model {preferred!r} to draw the flip gallery for",
                f"use one of: {', '.join(models)}",
            )
        return preferred
    quantised = [n for n, (_, c) in models.items() if c["model"]["mode"] != "float32"]
    return "student_qat_int8" if "student_qat_int8" in models else (quantised or list(models))[0]


def evaluate_robustness(
    run_dir: str | os.PathLike,
    config: RobustnessConfig = RobustnessConfig(),
    *,
    only: tuple[str, ...] | None = None,
    data_dir: str | None = None,
    gallery_model: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> RobustnessResult:
    """Scores clean val (threshold), clean test and every corrupted test copy; no files written.

    Raises:
        EdgepedError: no models, a model that does not match its card, an empty split or a
            split with one class, another dataset than the models were converted against.
    """
    run = Path(run_dir)
    models = find_models(run, only)
    first_card = next(iter(models.values()))[1]
    dataset = Dataset.open(data_dir or first_card["source"]["dataset"])
    if not data_dir:
        for name, (_, card) in models.items():
            if card["source"]["dataset_manifest_sha256"] != dataset.manifest_sha256:
                raise EdgepedError(
                    f"{name} was converted against another dataset than {dataset.root}",
                    "pass --data with the dataset to evaluate on, or re-run convert",
                )
    scorers = {
        name: TfliteScorer(
            path,
            CardFacts.from_card(card, card_path(path)).host_preprocessing(),
            batch=config.batch,
            num_threads=config.threads,
        )
        for name, (path, card) in models.items()
    }
    flips_for = _gallery_model(models, gallery_model)
    val = score_split(dataset, "val", scorers, progress)
    test = score_split(dataset, "test", scorers, progress)
    negatives = int((test.labels == 0).sum())
    positives = int((test.labels == 1).sum())
    share = 1.0 if not config.max_negatives else min(1.0, config.max_negatives / max(negatives, 1))
    pos_share = (
        1.0 if not config.max_positives else min(1.0, config.max_positives / max(positives, 1))
    )
    chosen = _keep_both(test.crop_ids, test.labels, share, pos_share)
    test = SplitScores(
        test.labels[chosen],
        {t: v[chosen] for t, v in test.tags.items()},
        {n: v[chosen] for n, v in test.scores.items()},
        test.drives[chosen],
        test.crop_ids[chosen],
    )
    thresholds = {
        n: m.threshold_max_recall(val.labels, val.scores[n], config.max_fpr) for n in models
    }
    if test.labels.min() == test.labels.max():
        raise EdgepedError(
            "the test split holds one class only",
            "use a test split with pedestrians and background",
        )
    clean_hit = test.scores[flips_for] >= thresholds[flips_for].threshold
    corrupted: dict[str, dict[str, dict[int, np.ndarray]]] = {n: {} for n in models}
    flips: list[Flip] = []
    total = len(config.corruptions) * len(config.severities)
    step = 0
    for cname in config.corruptions:
        kept = 0
        for severity in config.severities:
            step += 1
            parts: dict[str, list[np.ndarray]] = {n: [] for n in models}
            offset = 0
            for batch in _test_batches(dataset, share, pos_share):
                images, meta = corrupt_batch(
                    batch.images, batch.metadata, batch.crop_id, cname, severity, config.seed
                )
                for name, scorer in scorers.items():
                    parts[name].append(scorer.score(images, meta).probability)
                new = parts[flips_for][-1]
                rows = np.arange(offset, offset + len(batch))
                missed = (
                    clean_hit[rows]
                    & (test.labels[rows] == 1)
                    & (new < thresholds[flips_for].threshold)
                )
                for j in np.flatnonzero(missed):
                    if kept >= config.gallery_per_corruption:
                        break
                    flips.append(
                        Flip(
                            str(batch.crop_id[j]),
                            cname,
                            severity,
                            float(test.scores[flips_for][offset + j]),
                            float(new[j]),
                            batch.images[j].copy(),
                            images[j].copy(),
                        )
                    )
                    kept += 1
                offset += len(batch)
            for name in models:
                corrupted[name].setdefault(cname, {})[severity] = np.concatenate(parts[name])
            progress(f"corrupted test: {cname} severity {severity} ({step}/{total})")
    families = run_families(run, config.corruptions)
    results = {}
    for name, (path, card) in models.items():
        thr = thresholds[name].threshold
        clean = _cell(test.labels, test.scores[name], test.drives, thr, config)
        cells = {
            c: {
                str(s): _cell(test.labels, sc, test.drives, thr, config) for s, sc in by_sev.items()
            }
            for c, by_sev in corrupted[name].items()
        }
        results[name] = {
            "model": {
                "file": path.name,
                "sha256": card["model"]["sha256"],
                "mode": card["model"]["mode"],
            },
            "threshold": {
                "rule": f"max recall with clean val FPR <= {config.max_fpr}",
                **thresholds[name].to_dict(),
            },
            "clean": clean,
            "corruptions": cells,
            "summary": summarise(clean["recall"], cells, families),
            "by_drive": hits_by_drive(
                test.labels, test.drives, test.scores[name], corrupted[name], thr
            ),
        }
        results[name]["summary"]["mean_corrupted_recall_ci95_by_drive"] = mean_recall_interval(
            results[name]["by_drive"], config.bootstrap_resamples
        )
    gaps = []
    for name, (_, card) in models.items():
        parent = _float_sibling(name, card, models)
        if parent is None:
            continue
        q, f = results[name], results[parent]
        gap = {
            c: {s: q["corruptions"][c][s]["recall"] - f["corruptions"][c][s]["recall"] for s in sev}
            for c, sev in q["corruptions"].items()
        }
        flip_rate = {
            c: {
                str(s): float(
                    np.mean(
                        (corrupted[name][c][s] >= thresholds[name].threshold)
                        != (corrupted[parent][c][s] >= thresholds[parent].threshold)
                    )
                )
                for s in corrupted[name][c]
            }
            for c in corrupted[name]
        }
        gaps.append(
            {
                "quantized": name,
                "float": parent,
                "clean_recall_delta": q["clean"]["recall"] - f["clean"]["recall"],
                "mean_corrupted_recall_delta": q["summary"]["mean_corrupted_recall"]
                - f["summary"]["mean_corrupted_recall"],
                "recall_delta": gap,
                "decision_flip_rate": flip_rate,
            }
        )
    report = {
        **stamp(ROBUSTNESS_KIND),
        "config": config.to_dict(),
        "dataset": {
            "root": str(dataset.root),
            "manifest_sha256": dataset.manifest_sha256,
            "val": {"crops": int(val.labels.size), "positives": int(val.labels.sum())},
            "test": {"crops": int(test.labels.size), "positives": int(test.labels.sum())},
            "test_negatives_kept": f"{int((test.labels == 0).sum())} of {negatives}",
            "test_positives_kept": f"{int((test.labels == 1).sum())} of {positives}",
        },
        "families": families,
        "inputs": {
            name: {"file": str(path), "sha256": sha256_file(path)}
            for name, (path, _) in models.items()
        },
        "corruptions": {
            c: {
                "models": CORRUPTIONS[c].models,
                "metadata": CORRUPTIONS[c].metadata,
                "related_augmentation": CORRUPTIONS[c].related_augmentation,
                "augment_keys": list(CORRUPTIONS[c].augment_keys),
                "severities": {str(s): CORRUPTIONS[c].params(s) for s in config.severities},
            }
            for c in config.corruptions
        },
        "models": results,
        "quantization_gaps": gaps,
        "gallery": {
            "model": flips_for,
            "rule": "test pedestrians hit on clean and missed corrupted, mildest severity first",
            "flips": [
                {
                    k: getattr(f, k)
                    for k in ("crop_id", "corruption", "severity", "clean_score", "corrupted_score")
                }
                for f in flips
            ],
        },
    }
    return RobustnessResult(report, flips_for, flips)


def write_robustness(
    run_dir: str | os.PathLike, result: RobustnessResult, tag: str = ""
) -> dict[str, Path]:
    """Writes robustness[-TAG].json, robustness[-TAG].md and the severity, gallery and
    sample plots under plots-robustness[-TAG]/; returns their paths."""
    from edgeped.evaluate.robustness_plots import (
        flip_gallery_png,
        render_markdown,
        severity_png,
    )

    run = Path(run_dir)
    suffix = f"-{tag}" if tag else ""
    plot_dir = run / f"plots-robustness{suffix}"
    report = dict(result.report)
    plots = {
        "severity": severity_png(report, plot_dir / "recall_vs_severity.png"),
        "flips": flip_gallery_png(result.flips, result.gallery_model, plot_dir / "flips.png"),
    }
    report["plots"] = {k: str(p.relative_to(run)) for k, p in plots.items()}
    json_path, md_path = run / f"robustness{suffix}.json", run / f"robustness{suffix}.md"
    write_json_atomic(json_path, report)
    write_text_atomic(md_path, render_markdown(report))
    return {"json": json_path, "report": md_path, **plots}
