"""Merging robustness reports of a suite split across processes (disjoint corruption lists)."""

from __future__ import annotations

from edgeped.errors import EdgepedError
from edgeped.evaluate.robustness import mean_recall_interval, summarise


def merge_reports(reports: list[dict]) -> dict:
    """One robustness report from parts that ran disjoint corruptions on the same models/data.

    The suite can be split across processes (`--corruptions` lists); the merged report
    recomputes every summary from the cells.

    Raises:
        EdgepedError: the parts differ in models, model sha256, dataset or severities,
            or two parts ran the same corruption.
    """
    first = reports[0]
    key = (
        first["dataset"]["manifest_sha256"],
        first["dataset"]["test"],
        first["config"]["severities"],
        {n: e["model"]["sha256"] for n, e in first["models"].items()},
    )
    seen: set[str] = set()
    for r in reports:
        mine = (
            r["dataset"]["manifest_sha256"],
            r["dataset"]["test"],
            r["config"]["severities"],
            {n: e["model"]["sha256"] for n, e in r["models"].items()},
        )
        if mine != key:
            raise EdgepedError(
                "robustness parts differ in dataset, severities or models",
                "merge only parts run on the same run directory and data",
            )
        overlap = seen & set(r["corruptions"])
        if overlap:
            raise EdgepedError(
                f"two parts ran {', '.join(sorted(overlap))}", "split the corruptions disjointly"
            )
        seen |= set(r["corruptions"])
    merged = {
        **first,
        "config": {
            **first["config"],
            "corruptions": [c for r in reports for c in r["corruptions"]],
        },
        "corruptions": {c: v for r in reports for c, v in r["corruptions"].items()},
        "models": {},
        "quantization_gaps": [],
        "gallery": {
            **first["gallery"],
            "flips": [f for r in reports for f in r["gallery"]["flips"]],
        },
    }
    families = None
    if all(r.get("families") for r in reports):
        families = {
            group: [c for r in reports for c in r["families"][group]]
            for group in ("trained", "held_out")
        }
    merged["families"] = families
    resamples = first["config"]["bootstrap_resamples"]
    for name, entry in first["models"].items():
        cells = {c: v for r in reports for c, v in r["models"][name]["corruptions"].items()}
        by_drive = {
            **entry["by_drive"],
            "tp": {k: v for r in reports for k, v in r["models"][name]["by_drive"]["tp"].items()},
        }
        summary = summarise(entry["clean"]["recall"], cells, families)
        summary["mean_corrupted_recall_ci95_by_drive"] = mean_recall_interval(by_drive, resamples)
        merged["models"][name] = {
            **entry,
            "corruptions": cells,
            "by_drive": by_drive,
            "summary": summary,
        }
    for gap in first["quantization_gaps"]:
        q, f = merged["models"][gap["quantized"]], merged["models"][gap["float"]]
        parts = [
            g for r in reports for g in r["quantization_gaps"] if g["quantized"] == gap["quantized"]
        ]
        merged["quantization_gaps"].append(
            {
                **gap,
                "mean_corrupted_recall_delta": q["summary"]["mean_corrupted_recall"]
                - f["summary"]["mean_corrupted_recall"],
                "recall_delta": {c: v for g in parts for c, v in g["recall_delta"].items()},
                "decision_flip_rate": {
                    c: v for g in parts for c, v in g["decision_flip_rate"].items()
                },
            }
        )
    merged.pop("plots", None)
    return merged
