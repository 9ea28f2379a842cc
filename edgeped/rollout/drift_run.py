"""Drift at the edges: record the reference at eval, read windows, write the drift report.

The pure check is `edgeped.rollout.drift`; this module reads datasets and shadow logs
into features, and writes drift_reference.json / drift.json / drift.md / drift.png.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeped.errors import EdgepedError
from edgeped.fileio import (
    read_json,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from edgeped.rollout.drift import (
    FEATURES,
    REFERENCE_KIND,
    SLICE_TAGS,
    DriftConfig,
    WindowData,
    check_drift,
    feature_matrix,
    image_stats,
    reference_profile,
)

REFERENCE_NAME = "drift_reference.json"
MAX_REFERENCE_CROPS = 30_000


def dataset_window(
    data_dir: str | os.PathLike, splits: tuple[str, ...], max_crops: int | None = None
) -> WindowData:
    """Features and slice tags of a dataset's splits (whole shards, evenly spread if capped)."""
    from edgeped.data.shards import Dataset, examples_to_batch
    from edgeped.data.tfrecord import iter_records

    dataset = Dataset.open(data_dir)
    feats, tags = [], {t: [] for t in SLICE_TAGS}
    for split in splits:
        shards = dataset.manifest["splits"][split]["shards"]
        if max_crops is not None and shards:
            per = max(1, max_crops // max(1, len(splits)))
            total = sum(s["records"] for s in shards)
            keep = min(len(shards), max(1, int(np.ceil(len(shards) * per / max(total, 1)))))
            shards = [
                shards[i]
                for i in np.unique(np.linspace(0, len(shards) - 1, keep).round().astype(int))
            ]
        for shard in shards:
            path = dataset.shard_path(shard)
            with open(path, "rb") as handle:
                payloads = list(iter_records(handle, path.name))
            for start in range(0, len(payloads), 2048):
                batch = examples_to_batch(payloads[start : start + 2048], path.name)
                feats.append(feature_matrix(batch.metadata, image_stats(batch.images)))
                for t in SLICE_TAGS:
                    tags[t].append(batch.tags(t))
    if not feats:
        raise EdgepedError(f"{data_dir} has no crops in {splits}", "pass a non-empty dataset")
    return WindowData(
        features=np.concatenate(feats),
        tags={t: np.concatenate(v) for t, v in tags.items()},
        source={
            "kind": "dataset",
            "path": str(data_dir),
            "splits": list(splits),
            "manifest_sha256": dataset.manifest_sha256,
        },  # fmt: skip
    )


def reference_from_eval(
    data_dir: str | os.PathLike,
    val_scores: dict[str, np.ndarray],
    models: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The run's reference profile: train+val features, every model's val scores."""
    window = dataset_window(data_dir, ("train", "val"), MAX_REFERENCE_CROPS)
    return reference_profile(
        window.features,
        window.tags,
        val_scores,
        models,
        source={**window.source, "scores": "val split, every model", "crops": len(window.features)},
    )


def write_reference_from_eval(
    path: str | os.PathLike, metrics: dict[str, Any], val_scores: dict[str, np.ndarray]
) -> str:
    """Builds the reference of an evaluated run (metrics.json content) and writes it."""
    models = {n: {"sha256": m["model"]["sha256"]} for n, m in metrics["models"].items()}
    reference = reference_from_eval(metrics["dataset"]["root"], val_scores, models)
    return write_reference(path, reference)


def write_run_reference(run_dir: str | os.PathLike, result) -> dict[str, str] | None:
    """The drift step after `edgeped eval`: drift_reference.json from the evaluation's
    val scores, recorded in metrics.json. A side experiment (metadata dropout) makes none.

    Args:
        result: the `edgeped.evaluate.run.EvalResult` just saved into run_dir.
    """
    from edgeped.evaluate.outputs import record_in_metrics

    if result.metrics["config"].get("metadata_dropout"):
        return None
    run = Path(run_dir)
    sha = write_reference_from_eval(run / REFERENCE_NAME, result.metrics, result.val.scores)
    entry = {"file": REFERENCE_NAME, "sha256": sha}
    record_in_metrics(run, "drift_reference", entry)
    return entry


def write_reference(path: str | os.PathLike, reference: dict[str, Any]) -> str:
    """Writes drift_reference.json atomically; returns its sha256."""
    write_json_atomic(path, reference)
    return sha256_file(path)


def read_reference(path: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    """A reference profile from its file or from the run directory that holds it.

    Raises:
        EdgepedError: no reference there, or a file that is not one.
    """
    p = Path(path)
    if p.is_dir():
        p = p / REFERENCE_NAME
    ref = read_json(p, "drift reference (written by `edgeped eval`)")
    if not isinstance(ref, dict) or ref.get("kind") != REFERENCE_KIND:
        raise EdgepedError(
            f"{p} is not a drift reference profile",
            "pass a run directory evaluated by `edgeped eval`, or its drift_reference.json",
        )
    from edgeped.schemas import check_shape

    check_shape(
        ref,
        REFERENCE_KIND,
        p,
        "drift reference profile",
        "re-run `edgeped eval` on the run to write its drift_reference.json again",
    )
    return ref, p


def log_window(path: str | os.PathLike, reference: dict[str, Any]) -> WindowData:
    """Features, tags and both models' scores of a shadow log (scores kept only for models
    the reference profiled with the same sha256)."""
    from edgeped.rollout.shadow_log import read_log

    records = read_log(path)
    scores = {}
    for side, info in (("baseline", records.baseline_info), ("candidate", records.candidate_info)):
        ref = reference["scores"].get(info.get("name"))
        if ref is not None and ref.get("sha256") == info.get("sha256"):
            scores[info["name"]] = getattr(records, side).scores
    return WindowData(
        features=feature_matrix(records.metadata, records.image_stats),
        tags={t: v for t, v in records.tags.items() if t in SLICE_TAGS},
        scores=scores,
        source={
            "kind": "shadow_log",
            "path": str(path),
            "sha256": records.source["sha256"],
            "integrity": records.integrity.to_dict(),
        },  # fmt: skip
    )


def load_window(
    source: str | os.PathLike, reference: dict[str, Any], splits: tuple[str, ...]
) -> WindowData:
    """A shadow log (file, or a `shadow run` directory) or a dataset directory."""
    p = Path(source)
    if p.is_dir() and (p / "shadow_log.jsonl").is_file():
        p = p / "shadow_log.jsonl"
    if p.is_file():
        return log_window(p, reference)
    if p.is_dir() and (p / "manifest.json").is_file():
        return dataset_window(p, splits)
    raise EdgepedError(
        f"{p} is neither a shadow log nor a dataset",
        "pass shadow_log.jsonl (or its `shadow run` directory) or a dataset directory",
    )


def run_drift(
    reference: str | os.PathLike,
    window: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    splits: tuple[str, ...] = ("train", "val", "test"),
    config: DriftConfig | None = None,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Checks a window against a reference; writes drift.json/.md/.png if ``out_dir``."""
    ref, ref_path = read_reference(reference)
    data = load_window(window, ref, splits)
    report = check_drift(ref, data, config)
    report["reference"] = {**report["reference"], "file": str(ref_path),
                           "sha256": sha256_file(ref_path)}  # fmt: skip
    files: dict[str, Path] = {}
    if out_dir is not None:
        out = Path(out_dir)
        files = {
            "json": out / "drift.json",
            "markdown": out / "drift.md",
            "plot": out / "drift.png",
        }
        write_bytes_atomic(files["plot"], drift_png(report))
        write_json_atomic(files["json"], report)
        write_text_atomic(files["markdown"], drift_markdown(report, files["plot"].name))
    return report, files


def _f(v, spec=".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def drift_markdown(report: dict[str, Any], plot: str) -> str:
    """The drift report as Markdown: one row per feature and score, then slices."""
    w = report["window"]
    lines = [
        f"# Drift: {report['status'].upper()}",
        "",
        f"- window: {w.get('kind')} `{w.get('path')}`, {w['crops']} crops",
        f"- reference: `{report['reference'].get('file')}`",
        f"- PSI warn {report['config']['psi_warn']} / alert {report['config']['psi_alert']}; "
        f"KS alpha {report['config']['ks_alpha']} Bonferroni over {report['ks_tests']} tests "
        f"= {report['ks_alpha_bonferroni']:.2g}; missing-rate change warn "
        f"{report['config']['missing_warn']} / alert {report['config']['missing_alert']}",
        "",
        "| feature | status | PSI | KS D | KS p | missing (ref -> now) |",
        "|---|---|---|---|---|---|",
    ]
    for group in ("features", "scores"):
        for name, r in report[group].items():
            label = name if group == "features" else f"score: {name}"
            lines.append(
                f"| {label} | {r['status']} | {_f(r['psi'])} | {_f(r['ks_statistic'])} | "
                f"{_f(r['ks_p'], '.2g')} | {r['reference_missing_rate']:.1%} -> "
                f"{r['missing_rate']:.1%} |"
            )
    for tag, rows in report["slices"].items():
        lines += [
            "",
            f"## By {tag}",
            "",
            "| value | crops | status | flagged |",
            "|---|---|---|---|",
        ]
        for value, row in rows.items():
            flagged = [k for k, r in row["features"].items() if r["status"] in ("warn", "alert")]
            lines.append(f"| {value} | {row['crops']} | {row['status']} | {', '.join(flagged)} |")
    lines += ["", f"![PSI per feature]({plot})", ""]
    return "\n".join(lines)


def drift_png(report: dict[str, Any]) -> bytes:
    """PSI per feature (and score) against the warn and alert lines."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(n, r) for n, r in report["features"].items()] + [
        (f"score:{n}", r) for n, r in report["scores"].items()
    ]
    names = [n for n, _ in rows]
    values = [r["psi"] or 0.0 for _, r in rows]
    colours = {"alert": "tab:red", "warn": "tab:orange", "ok": "tab:green", "too_small": "0.6"}
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.5))
    ax.barh(names, values, color=[colours[r["status"]] for _, r in rows])
    ax.axvline(report["config"]["psi_warn"], color="tab:orange", ls="--", lw=1, label="warn")
    ax.axvline(report["config"]["psi_alert"], color="tab:red", ls="--", lw=1, label="alert")
    ax.invert_yaxis()
    ax.set(xlabel="PSI (frozen reference bins)",
           title=f"drift {report['status']}: {report['window']['crops']} crops")  # fmt: skip
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


__all__ = ["FEATURES", "dataset_window", "reference_from_eval", "run_drift"]
