"""Compares models across runs (variants, ablations, held-out conditions) from their metrics."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgeped.errors import EdgepedError
from edgeped.fileio import read_json, sha256_file
from edgeped.provenance import stamp
from edgeped.schemas import check_shape


@dataclass(frozen=True)
class Source:
    """One metrics file and the label its rows carry."""

    label: str
    metrics: Path

    @classmethod
    def parse(cls, text: str) -> Source:
        """`LABEL=PATH` or `PATH`; PATH is a run directory or a metrics*.json file."""
        label, sep, path = text.partition("=")
        if not sep:
            label, path = "", text
        p = Path(path)
        if p.is_dir():
            p = p / "metrics.json"
        return cls(label or p.parent.name, p)


def _slice_value(result: dict, slice_spec: str, key: str):
    tag, _, value = slice_spec.partition("=")
    entry = (result.get("test_slices") or {}).get(tag, {}).get(value)
    return None if entry is None else entry.get(key)


def compare(sources: list[Source], slices: tuple[str, ...] = ()) -> dict:
    """Collects one row per (source, model) with size, quality, CIs and chosen slices.

    Raises:
        EdgepedError: no sources; a file that is not an edgeped metrics file or
            lacks a section a row needs; a slice that is not TAG=VALUE or that no
            metrics file has.
    """
    if not sources:
        raise EdgepedError(
            "nothing to compare", "pass one or more run directories or metrics files"
        )
    for spec in slices:
        tag, sep, value = spec.partition("=")
        if not sep or not tag or not value:
            raise EdgepedError(
                f"--slice {spec!r} is not TAG=VALUE", "pass e.g. --slice lighting=night"
            )
    rows, inputs, seen = [], {}, set()
    for src in sources:
        metrics = read_json(src.metrics, "metrics")
        if not isinstance(metrics, dict) or metrics.get("kind") != "edgeped.metrics":
            raise EdgepedError(
                f"{src.metrics} is not an edgeped metrics file",
                "pass RUN_DIR or RUN_DIR/metrics*.json from `edgeped eval`",
            )
        check_shape(
            metrics,
            "edgeped.metrics",
            src.metrics,
            "metrics file",
            "the file is damaged: re-run `edgeped eval`",
        )
        inputs[src.label] = {"file": str(src.metrics), "sha256": sha256_file(src.metrics)}
        models = metrics.get("models")
        if not isinstance(models, dict) or not models:
            raise EdgepedError(
                f"{src.metrics} has no models section (got {models!r:.40})",
                "the file is damaged: re-run `edgeped eval`",
            )
        for name, r in models.items():
            try:
                rows.append(_row(src, name, r, metrics, slices))
                for tag, values in (r.get("test_slices") or {}).items():
                    seen.update(f"{tag}={v}" for v in values)
            except (KeyError, TypeError, AttributeError) as exc:
                raise EdgepedError(
                    f"{src.metrics}: model {name!r} lacks a section or value a comparison "
                    f"needs ({type(exc).__name__}: {exc})",
                    "the file is damaged or from an older edgeped: re-run `edgeped eval`",
                ) from exc
    unknown = [spec for spec in slices if spec not in seen]
    if unknown:
        raise EdgepedError(
            f"no metrics file has the slice(s) {', '.join(unknown)}",
            f"choose from {', '.join(sorted(seen)) or '(none: the files have no slices)'}",
        )
    return {**stamp("edgeped.comparison"), "inputs": inputs, "slices": list(slices), "rows": rows}


def _row(src: Source, name: str, r: dict, metrics: dict, slices: tuple[str, ...]) -> dict:
    t, boot = r["test"], r["test_ci95"]["by_drive_bootstrap"]
    return {
        "source": src.label,
        "model": name,
        "mode": r["model"]["mode"],
        "size_bytes": r["model"]["size_bytes"],
        "parameters": r["model"]["parameters"],
        "recall": t["recall"],
        "recall_ci95": boot["recall"],
        "fpr": t["fpr"],
        "auc_pr": t["auc_pr"],
        "auc_pr_ci95": boot["auc_pr"],
        "roc_auc": t["roc_auc"],
        "ece": r["test_calibration"]["ece"],
        "metadata_dropout": (metrics.get("config") or {}).get("metadata_dropout", 0.0),
        "slices": {
            s: {"recall": _slice_value(r, s, "recall"), "fpr": _slice_value(r, s, "fpr")}
            for s in slices
        },
    }


def render_markdown(result: dict) -> str:
    from edgeped.evaluate.report import _ci, _num, _pct, _table

    header = [
        "source",
        "model",
        "mode",
        "size KiB",
        "params",
        "recall (by-drive 95% CI)",
        "FPR",
        "AUC-PR (95% CI)",
        "ECE",
    ] + [f"{s} recall / FPR" for s in result["slices"]]
    rows = []
    for r in result["rows"]:
        rows.append(
            [
                r["source"],
                r["model"],
                r["mode"],
                f"{r['size_bytes'] / 1024:.1f}",
                f"{r['parameters']:,}",
                f"{_pct(r['recall'])} {_ci(r['recall_ci95'])}",
                _pct(r["fpr"]),
                f"{_num(r['auc_pr'])} {_ci(r['auc_pr_ci95'], pct=False)}",
                _num(r["ece"]),
            ]
            + [f"{_pct(v['recall'])} / {_pct(v['fpr'])}" for v in r["slices"].values()]
        )
    return "\n".join(
        [
            "# Model comparison",
            "",
            "Recall and FPR on test at each model's own val-chosen threshold (FPR <= 1% on val).",
            "",
        ]
        + _table(header, rows)
    )


def write_comparison(out_dir: str | os.PathLike, result: dict) -> dict[str, Path]:
    from edgeped.evaluate.plots import recall_vs_size_png
    from edgeped.fileio import write_json_atomic, write_text_atomic

    out = Path(out_dir)
    write_json_atomic(out / "comparison.json", result)
    write_text_atomic(out / "comparison.md", render_markdown(result))
    points = {
        f"{r['source']}:{r['model']}": (r["size_bytes"] / 1024, r["recall"], r["recall_ci95"])
        for r in result["rows"]
    }
    plot = recall_vs_size_png(points, out / "recall_vs_size.png", 0.92, 0.01)
    return {"json": out / "comparison.json", "markdown": out / "comparison.md", "plot": plot}
