"""Corruption tables from robustness.json files, the augmentation comparison, a sample grid.

    python benchmarks/robustness_tables.py table LABEL=RUN/robustness.json ... \\
        --models student_qat_int8,student_float32 --out benchmarks/results/robustness-X
    python benchmarks/robustness_tables.py augment RUN/robustness.json \\
        --pair on=aug-on-s0_float32,off=aug-off-s0_float32 ... --out benchmarks/results/robustness-augment
    python benchmarks/robustness_tables.py samples DATA_DIR --out benchmarks/results/robustness-samples.png

`table` writes OUT.json and OUT.md: recall per corruption and severity, the mean, the
worst, the relative drop, and each quantised model's gap to its float parent.
`augment` compares models trained with and without the photometric augmentations on
the same test crops: clean recall, mean corrupted recall over the corruptions that
have a related training augmentation and over those that have none, and the paired
difference with a 95% bootstrap-over-drives interval (both models resampled together).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


def _header(args) -> dict:
    return {
        "command": " ".join(["python", *sys.argv]),
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cores": os.cpu_count()},
        "python": platform.python_version(),
    }


def _write(out: Path, record: dict, markdown: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, text in (
        (out.with_suffix(".json"), json.dumps(record, indent=1) + "\n"),
        (out.with_suffix(".md"), markdown),
    ):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def table(args) -> int:
    record, md = {**_header(args), "sources": {}}, []
    for spec in args.sources:
        label, _, path = spec.partition("=")
        report = json.loads(Path(path).read_text())
        models = args.models.split(",") if args.models else list(report["models"])
        sev = [str(s) for s in report["config"]["severities"]]
        ds = report["dataset"]
        entry = {"file": path, "dataset": ds, "config": report["config"], "models": {}}
        md += [
            f"### {label}",
            "",
            f"Test {ds['test']['crops']} crops ({ds['test']['positives']} pedestrians"
            + (
                f", background kept {ds['test_negatives_kept']}"
                if "test_negatives_kept" in ds
                else ""
            )
            + f"), threshold on clean val (FPR <= {report['config']['max_fpr']}).",
            "",
        ]
        for name in models:
            m = report["models"][name]
            s = m["summary"]
            rows = {c: [cells[x]["recall"] for x in sev] for c, cells in m["corruptions"].items()}
            entry["models"][name] = {
                "clean_recall": s["clean_recall"],
                "clean_recall_ci95_by_drive": m["clean"]["ci95"]["recall_by_drive"],
                "clean_fpr": m["clean"]["fpr"],
                "recall": rows,
                "recall_ci95_by_drive": {
                    c: [cells[x]["ci95"]["recall_by_drive"] for x in sev]
                    for c, cells in m["corruptions"].items()
                },
                "fpr": {c: [cells[x]["fpr"] for x in sev] for c, cells in m["corruptions"].items()},
                "mean_corrupted_recall": s["mean_corrupted_recall"],
                "mean_corrupted_recall_ci95_by_drive": s.get("mean_corrupted_recall_ci95_by_drive"),
                "mean_corrupted_fpr": s["mean_corrupted_fpr"],
                "relative_drop": s["relative_drop"],
                "worst": s["worst"],
            }
            ci = s.get("mean_corrupted_recall_ci95_by_drive")
            md += [
                f"**{name}**: clean recall {s['clean_recall']:.3f} (FPR {m['clean']['fpr']:.4f}); "
                f"mean corrupted {s['mean_corrupted_recall']:.3f}"
                + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
                + f", relative drop {100 * s['relative_drop']:.1f}%, mean corrupted FPR "
                f"{s['mean_corrupted_fpr']:.4f}; worst {s['worst']['recall']:.3f} "
                f"({s['worst']['corruption']} {s['worst']['severity']}).",
                "",
                "| corruption | " + " | ".join(f"s{x}" for x in sev) + " | mean |",
                "|---|" + "---:|" * (len(sev) + 1),
            ]
            for c, r in rows.items():
                md.append(
                    f"| {c} | " + " | ".join(f"{v:.3f}" for v in r) + f" | {np.mean(r):.3f} |"
                )
            md.append("")
        for gap in report.get("quantization_gaps", []):
            if gap["quantized"] not in models or gap["float"] not in models:
                continue
            entry.setdefault("gaps", []).append(gap)
            d = gap["recall_delta"]
            worst = min((v, c, x) for c, sv in d.items() for x, v in sv.items())
            md += [
                f"**{gap['quantized']} minus {gap['float']}**: clean {gap['clean_recall_delta']:+.3f}, "
                f"mean corrupted {gap['mean_corrupted_recall_delta']:+.3f}, largest loss "
                f"{worst[0]:+.3f} ({worst[1]} {worst[2]}).",
                "",
                "| corruption | " + " | ".join(f"s{x}" for x in sev) + " | flips s5 |",
                "|---|" + "---:|" * (len(sev) + 1),
            ]
            for c, sv in d.items():
                md.append(
                    f"| {c} | "
                    + " | ".join(f"{sv[x]:+.3f}" for x in sev)
                    + f" | {100 * gap['decision_flip_rate'][c][sev[-1]]:.1f}% |"
                )
            md.append("")
        record["sources"][label] = entry
    _write(args.out, record, "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


def _paired(a: dict, b: dict, cells: list[str] | None, resamples: int = 2000, seed: int = 0):
    """Mean recall over cells (None = clean) of a minus b, with a paired drive bootstrap."""
    assert a["drives"] == b["drives"], "the two models were scored on different test crops"
    pos = np.asarray(a["positives"], float)

    def tp(h):
        return np.asarray([h["clean_tp"]] if cells is None else [h["tp"][k] for k in cells], float)

    ta, tb = tp(a), tp(b)
    point = float((ta.sum(1) / pos.sum()).mean() - (tb.sum(1) / pos.sum()).mean())
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(pos), size=(resamples, len(pos)))
    counts = np.zeros((resamples, len(pos)))
    np.add.at(counts, (np.arange(resamples)[:, None], picks), 1)
    den = (counts @ pos)[:, None]
    diff = ((counts @ ta.T) / den).mean(1) - ((counts @ tb.T) / den).mean(1)
    return point, [float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))]


def augment(args) -> int:
    report = json.loads(Path(args.source).read_text())
    related = [c for c, v in report["corruptions"].items() if v["related_augmentation"]]
    held_out = [c for c in report["corruptions"] if c not in related]
    sev = [str(s) for s in report["config"]["severities"]]
    groups = {
        "clean": None,
        "related corruptions": [f"{c}/{s}" for c in related for s in sev],
        "held-out corruptions": [f"{c}/{s}" for c in held_out for s in sev],
        "all corruptions": [f"{c}/{s}" for c in report["corruptions"] for s in sev],
    }
    record = {
        **_header(args),
        "source": args.source,
        "related": related,
        "held_out": held_out,
        "pairs": [],
    }
    md = [
        "| seed | group | with augmentations | without | difference [95% CI, paired by drive] |",
        "|---|---|---:|---:|---|",
    ]
    for spec in args.pair:
        names = dict(part.split("=", 1) for part in spec.split(","))
        on, off = report["models"][names["on"]], report["models"][names["off"]]
        pair = {"on": names["on"], "off": names["off"], "groups": {}}
        for group, cells in groups.items():

            def mean(m, cells=cells):
                h = m["by_drive"]
                pos = sum(h["positives"])
                if cells is None:
                    return sum(h["clean_tp"]) / pos
                return float(np.mean([sum(h["tp"][k]) / pos for k in cells]))

            point, ci = _paired(on["by_drive"], off["by_drive"], cells)
            pair["groups"][group] = {
                "on": mean(on),
                "off": mean(off),
                "difference": point,
                "ci95": ci,
            }
            md.append(
                f"| {names.get('seed', '')} | {group} | {mean(on):.3f} | {mean(off):.3f} | "
                f"{point:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}] |"
            )
        record["pairs"].append(pair)
    _write(args.out, record, "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


def samples(args) -> int:
    from edgeped.data.shards import Dataset
    from edgeped.evaluate.robustness_plots import samples_png

    batch = Dataset.open(args.data).read("test", limit=256)
    i = int(np.flatnonzero(batch.labels == 1)[args.index])
    samples_png(batch.images[i], batch.metadata[i], str(batch.crop_id[i]), args.out)
    print(args.out, batch.crop_id[i])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table")
    t.add_argument("sources", nargs="+", help="LABEL=path/to/robustness.json")
    t.add_argument("--models", default="")
    t.add_argument("--out", type=Path, required=True, help="output stem (.json and .md)")
    a = sub.add_parser("augment")
    a.add_argument("source")
    a.add_argument("--pair", action="append", required=True, help="seed=N,on=MODEL,off=MODEL")
    a.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("samples")
    s.add_argument("data")
    s.add_argument("--index", type=int, default=0, help="which test pedestrian")
    s.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    return {"table": table, "augment": augment, "samples": samples}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
