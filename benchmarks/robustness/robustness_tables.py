"""Corruption tables from robustness.json files, the augmentation comparison, a sample grid.

    python -m benchmarks.robustness.robustness_tables table LABEL=RUN/robustness.json ... \\
        --models student_qat_int8,student_float32 --tag pfd-default
    python -m benchmarks.robustness.robustness_tables augment RUN/robustness.json \\
        --pair seed=0,on=aug-on-s0_float32,off=aug-off-s0_float32 ...
    python -m benchmarks.robustness.robustness_tables samples DATA_DIR
    python -m benchmarks.robustness.robustness_tables study default=RUN_S0,RUN_S1,RUN_S2 \\
        robust=... --tag pfd
    python -m benchmarks.robustness.robustness_tables study \\
        "before=benchmarks/results/robustness/study-20261207-pfd-default.json#LABEL" \\
        after=RUN_S0,RUN_S1,RUN_S2 --against before
    python -m benchmarks.robustness.robustness_tables jpeg RUN --tag pfd

Each writes to benchmarks/results/robustness/ under the harness's name scheme, `--tag` the
qualifier after the day: `table` robustness-<YYYYMMDD>[-TAG].{json,md}, `augment`
robustness-<YYYYMMDD>-augment[-TAG].{json,md}, `samples` samples-<YYYYMMDD>[-TAG].png,
`study` study-<YYYYMMDD>[-TAG].{json,md,png}, `jpeg` jpeg-codecs-<YYYYMMDD>[-TAG].{json,md};
`--out STEM` writes STEM.json etc. instead. Every JSON carries the provenance keys of
`benchmarks.harness`.

`study` reads each run's full-suite robustness.json and metrics.json and, per recipe, gives
the shipped int8 model's figures over seeds (mean, min-max, a t interval of the mean):
clean recall and FPR, mean corrupted recall / clean, the worst cell up to severity 3 /
clean, the held-out and trained-on families / clean, mean corrupted FPR, per family means,
plus a PNG of recall / clean per family. A run may also be `STUDY.json#LABEL`: the per-run
figures an earlier study recorded under LABEL (every seed of it; last in the list, as the
label may hold commas), so a recipe measured before can stand beside a new one without its
run folders. `--against LABEL` adds Welch's t test of every figure of every other recipe
against LABEL's (difference of means, p). `jpeg` scores the shipped model under the jpeg
family with the old numpy codec and with Pillow's, on the same crops.

`table` writes recall per corruption and severity, the mean, the worst, the relative drop,
and each quantised model's gap to its float parent.
`augment` compares models trained with and without the photometric augmentations on
the same test crops: clean recall, mean corrupted recall over the corruptions that
have a related training augmentation and over those that have none, and the paired
difference with a 95% bootstrap-over-drives interval (both models resampled together).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks import harness

# subcommand -> (subject, qualifiers before --tag) of its default result name
NAMES = {
    "table": ("robustness", ()),
    "augment": ("robustness", ("augment",)),
    "samples": ("samples", ()),
    "study": ("study", ()),
    "jpeg": ("jpeg-codecs", ()),
}


def out_path(args: argparse.Namespace, ext: str = "json") -> Path:
    """--out STEM with `ext`, or the subcommand's default name in results/robustness/."""
    if args.out is not None:
        return args.out.with_suffix(f".{ext}")
    subject, qualifiers = NAMES[args.cmd]
    return harness.result_path("robustness", subject, *qualifiers, args.tag, ext=ext)


def table_result(
    reports: dict[str, tuple[str, dict]], models: list[str], record: dict
) -> tuple[dict, str]:
    """Recall per corruption and severity, with quantisation gaps, per labelled report.

    Args:
        reports: label -> (path, the robustness.json it holds).
        models: the models to tabulate (empty: every model of each report).
        record: the provenance record (`harness.provenance`) the result extends.

    Returns:
        The result record and its Markdown.
    """
    record, md = {**record, "sources": {}}, []
    for label, (path, report) in reports.items():
        models_here = models or list(report["models"])
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
        for name in models_here:
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
            if gap["quantized"] not in models_here or gap["float"] not in models_here:
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
    return record, "\n".join(md) + "\n"


def table(args: argparse.Namespace) -> int:
    record = harness.provenance("robustness_table", args.argv)
    reports = {}
    for spec in args.sources:
        label, _, path = spec.partition("=")
        reports[label] = (path, json.loads(Path(path).read_text()))
    models = args.models.split(",") if args.models else []
    record, md = table_result(reports, models, record)
    harness.write_result(out_path(args), harness.finish(record), md)
    print(md, end="")
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


def augment_result(source: str, report: dict, pairs: list[str], record: dict) -> tuple[dict, str]:
    """Models with and without the augmentations, paired on the same test crops.

    Args:
        source: the robustness.json's path (recorded).
        report: its content.
        pairs: `seed=N,on=MODEL,off=MODEL` specs.
        record: the provenance record (`harness.provenance`) the result extends.

    Returns:
        The result record and its Markdown.
    """
    related = [c for c, v in report["corruptions"].items() if v["related_augmentation"]]
    held_out = [c for c in report["corruptions"] if c not in related]
    sev = [str(s) for s in report["config"]["severities"]]
    groups = {
        "clean": None,
        "related corruptions": [f"{c}/{s}" for c in related for s in sev],
        "held-out corruptions": [f"{c}/{s}" for c in held_out for s in sev],
        "all corruptions": [f"{c}/{s}" for c in report["corruptions"] for s in sev],
    }
    record = {**record, "source": source, "related": related, "held_out": held_out, "pairs": []}
    md = [
        "| seed | group | with augmentations | without | difference [95% CI, paired by drive] |",
        "|---|---|---:|---:|---|",
    ]
    for spec in pairs:
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
    return record, "\n".join(md) + "\n"


def augment(args: argparse.Namespace) -> int:
    record = harness.provenance("robustness_augment", args.argv)
    report = json.loads(Path(args.source).read_text())
    record, md = augment_result(args.source, report, args.pair, record)
    harness.write_result(out_path(args), harness.finish(record), md)
    print(md, end="")
    return 0


def samples(args: argparse.Namespace) -> int:
    from edgeped.data.shards import Dataset
    from edgeped.evaluate.robustness_plots import samples_png

    out = out_path(args, "png")
    out.parent.mkdir(parents=True, exist_ok=True)
    batch = Dataset.open(args.data).read("test", limit=256)
    i = int(np.flatnonzero(batch.labels == 1)[args.index])
    samples_png(batch.images[i], batch.metadata[i], str(batch.crop_id[i]), out)
    print(out, batch.crop_id[i])
    return 0


def _t_interval(values: list[float], hi: float | None = None) -> list[float] | None:
    """95% t interval of the mean, clipped to [0, hi]: no figure here is negative, and a
    rate (recall, FPR) is at most 1, so a wider interval is the small-sample t's, not the data's."""
    from scipy import stats

    if len(values) < 2:
        return None
    mean, sem = float(np.mean(values)), float(stats.sem(values))
    half = float(stats.t.ppf(0.975, len(values) - 1)) * sem
    upper = mean + half if hi is None else min(hi, mean + half)
    return [max(0.0, mean - half), upper]


def _spread(values: list[float], hi: float | None = None) -> dict:
    return {
        "mean": float(np.mean(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
        "ci95_of_mean": _t_interval(values, hi),
        "values": values,
    }


def _run_figures(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    report = json.loads((run / "robustness.json").read_text())
    if report["config"].get("suite") != "full":
        raise SystemExit(
            f"{run}/robustness.json is not the full suite: edgeped eval --corruptions all"
        )
    shipped = metrics["shipping"]["model"]
    entry = report["models"][shipped]
    s = entry["summary"]
    clean = s["clean_recall"]
    fam = s.get("families") or {}
    return {
        "run": str(run),
        "shipped": shipped,
        "clean_recall": clean,
        "clean_fpr": entry["clean"]["fpr"],
        "recall_ratio": s["recall_ratio"],
        # What a safety review counts: the share of pedestrians found under shift.
        "mean_corrupted_recall": s["mean_corrupted_recall"],
        "worst_mild_ratio": s["worst_mild"]["recall_ratio"],
        "worst_mild_cell": f"{s['worst_mild']['corruption']} {s['worst_mild']['severity']}",
        "held_out_ratio": (fam.get("held_out") or {}).get("recall_ratio"),
        "trained_ratio": (fam.get("trained") or {}).get("recall_ratio"),
        "mean_corrupted_fpr": s["mean_corrupted_fpr"],
        "fpr_alerts": s["fpr_alerts"],
        "family_ratio": {n: v / clean for n, v in s["corrupted_recall"].items()},
        "cells": {
            n: {k: c["recall"] for k, c in cells.items()}
            for n, cells in entry["corruptions"].items()
        },
        "cell_fpr": {
            n: {k: c["fpr"] for k, c in cells.items()} for n, cells in entry["corruptions"].items()
        },
        "families": report.get("families"),
    }


STUDY_KEYS = (
    ("clean_recall", "clean recall"),
    ("clean_fpr", "clean FPR"),
    ("mean_corrupted_recall", "mean corrupted recall"),
    ("recall_ratio", "mean corrupted / clean"),
    ("worst_mild_ratio", "worst cell sev<=3 / clean"),
    ("held_out_ratio", "held-out / clean"),
    ("trained_ratio", "trained-on / clean"),
    ("mean_corrupted_fpr", "mean corrupted FPR"),
)


# The study's rates, whose intervals stop at 1 (the ratios to clean recall can pass it).
RATE_BOUND = dict.fromkeys(
    ("clean_recall", "clean_fpr", "mean_corrupted_recall", "mean_corrupted_fpr"), 1.0
)


def study_result(variants: dict[str, list[dict]], record: dict) -> tuple[dict, str]:
    """Per recipe, the shipped int8 model's figures over seeds, and per family.

    Args:
        variants: recipe label -> one `_run_figures` dict per seed.
        record: the provenance record (`harness.provenance`) the result extends.

    Returns:
        The result record and its Markdown.
    """
    record = {**record, "variants": {}}
    md = [
        "Shipped int8 model per run, threshold from clean val; full suite (every family x "
        "severities 1-5). Mean over seeds (min-max) [95% t interval of the mean, clipped to "
        "the figure's range].",
        "",
        "| recipe | seeds | " + " | ".join(label for _, label in STUDY_KEYS) + " |",
        "|---|---:|" + "---:|" * len(STUDY_KEYS),
    ]
    families_md = []
    for label, figures in variants.items():
        summary = {
            key: _spread([f[key] for f in figures if f[key] is not None], RATE_BOUND.get(key))
            for key, _ in STUDY_KEYS
        }
        names = list(figures[0]["family_ratio"])
        per_family = {n: _spread([f["family_ratio"][n] for f in figures]) for n in names}
        record["variants"][label] = {"runs": figures, "summary": summary, "families": per_family}

        def cell(sp, pct=False):
            fmt = (lambda v: f"{100 * v:.2f}%") if pct else (lambda v: f"{v:.3f}")
            ci = sp["ci95_of_mean"]
            return f"{fmt(sp['mean'])} ({fmt(sp['min'])}-{fmt(sp['max'])})" + (
                f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else ""
            )

        md.append(
            f"| {label} | {len(figures)} | "
            + " | ".join(cell(summary[k], pct="fpr" in k) for k, _ in STUDY_KEYS)
            + " |"
        )
        held = set((figures[0]["families"] or {}).get("held_out") or [])
        families_md += [
            f"### {label}: recall / clean per family (mean over severities 1-5 and seeds)",
            "",
            "| family | held out? | mean (min-max) | worst severity-3 cell / clean |",
            "|---|---|---:|---:|",
        ]
        for n in names:
            s3 = [f["cells"][n]["3"] / f["clean_recall"] for f in figures if "3" in f["cells"][n]]
            families_md.append(
                f"| {n} | {'yes' if n in held else 'no'} | {per_family[n]['mean']:.3f} "
                f"({per_family[n]['min']:.3f}-{per_family[n]['max']:.3f}) | "
                f"{min(s3):.3f} |"
            )
        families_md.append("")
    return record, "\n".join(md + [""] + families_md) + "\n"


def _recorded_runs(spec: str) -> list[dict]:
    """The per-run figures an earlier study recorded: `STUDY.json#LABEL`."""
    path, _, label = spec.partition("#")
    try:
        recorded = json.loads(Path(path).read_text())["variants"]
    except (OSError, ValueError, KeyError) as err:
        raise SystemExit(f"{path}: not a study result ({err}); give STUDY.json#LABEL") from err
    if label not in recorded:
        raise SystemExit(f"{path} has no recipe {label!r}; it has {sorted(recorded)}")
    return list(recorded[label]["runs"])


def _study_runs(runs: str) -> list[dict]:
    """`RUN,RUN,...`, optionally ending in `STUDY.json#LABEL` (the label may hold commas)."""
    recorded = ""
    if ".json#" in runs:
        at = runs.index(".json#")
        start = runs.rfind(",", 0, at) + 1
        runs, recorded = runs[: max(0, start - 1)], runs[start:]
    figures = [_run_figures(Path(spec)) for spec in runs.split(",") if spec]
    return figures + (_recorded_runs(recorded) if recorded else [])


def welch_rows(variants: dict[str, dict], against: str) -> dict[str, dict[str, dict]]:
    """Per recipe other than `against` and per study figure: the difference of the means and
    Welch's t test p (None where either side has fewer than two seeds or no spread)."""
    from scipy import stats

    base = variants[against]["summary"]
    out = {}
    for label, entry in variants.items():
        if label == against:
            continue
        rows = {}
        for key, _ in STUDY_KEYS:
            a, b = entry["summary"][key]["values"], base[key]["values"]
            p = None
            if len(a) > 1 and len(b) > 1 and (np.ptp(a) > 0 or np.ptp(b) > 0):
                p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
            rows[key] = {"difference": float(np.mean(a) - np.mean(b)), "p": p}
        out[label] = rows
    return out


def welch_md(rows: dict[str, dict[str, dict]], against: str) -> str:
    md = [
        f"### Against {against}: difference of the means [Welch's t test p]",
        "",
        "| recipe | " + " | ".join(label for _, label in STUDY_KEYS) + " |",
        "|---|" + "---:|" * len(STUDY_KEYS),
    ]
    for label, figures in rows.items():
        cells = []
        for key, _ in STUDY_KEYS:
            d, p = figures[key]["difference"], figures[key]["p"]
            diff = f"{100 * d:+.2f} pt" if "fpr" in key else f"{d:+.3f}"
            cells.append(diff + (f" [p = {p:.2f}]" if p is not None else " [-]"))
        md.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(md) + "\n"


def study(args: argparse.Namespace) -> int:
    variants = {}
    for spec in args.variants:
        label, _, runs = spec.partition("=")
        if not label or not runs:
            raise SystemExit(f"{spec!r}: give LABEL=RUN,RUN,... or LABEL=STUDY.json#LABEL")
        variants[label] = _study_runs(runs)
    if args.against and args.against not in variants:
        raise SystemExit(f"--against {args.against!r} is none of the recipes {sorted(variants)}")
    record, md = study_result(variants, harness.provenance("robustness_study", args.argv))
    welch = ""
    if args.against:
        rows = welch_rows(record["variants"], args.against)
        record["welch_against"] = {"recipe": args.against, "recipes": rows}
        welch = welch_md(rows, args.against)
        table_end = md.index("\n### ") + 1 if "\n### " in md else len(md)
        md = md[:table_end] + "\n" + welch + md[table_end:]
    harness.finish(record)
    out = out_path(args)
    _study_png(record, out.with_suffix(".png"))
    harness.write_result(out, record, md)
    print(md.split("\n### ")[0].rstrip("\n"))  # the recipe table; families are in the .md
    if welch:
        print("\n" + welch)
    return 0


def _study_png(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(record["variants"])
    names = list(next(iter(record["variants"].values()))["families"])
    fig, ax = plt.subplots(figsize=(11, 4 + 0.25 * ((len(variants) + 1) // 2)))
    width = 0.8 / len(variants)
    for i, v in enumerate(variants):
        fam = record["variants"][v]["families"]
        means = [fam[n]["mean"] for n in names]
        # Clipped at 0: equal values can put their float mean a rounding step past min or max.
        lo = [max(0.0, fam[n]["mean"] - fam[n]["min"]) for n in names]
        hi = [max(0.0, fam[n]["max"] - fam[n]["mean"]) for n in names]
        xs = np.arange(len(names)) + i * width
        ax.bar(xs, means, width, yerr=[lo, hi], capsize=2, label=v)
    ax.axhline(0.9, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=40, ha="right")
    ax.set_ylabel("recall / clean recall (severities 1-5)")
    ax.set_ylim(0, 1.1)
    # Below the axes, so that no bar hides behind it however many recipes there are.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, frameon=False)
    ax.set_title("Shipped int8 model under each camera shift, mean over seeds (bars: min-max)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def jpeg_result(run: str, model: str, rows: dict, record: dict) -> tuple[dict, str]:
    """Recall per codec and severity as a record (extending `record`) and its Markdown."""
    from edgeped.evaluate.corruptions import CORRUPTIONS

    record = {**record, "run": run, "model": model, "recall": rows}
    md = [
        f"jpeg family, `{model}` of `{run}`, test pedestrians, clean-val threshold.",
        "",
        "| codec | "
        + " | ".join(f"sev {s} (q{CORRUPTIONS['jpeg'].params(s)['quality']})" for s in range(1, 6))
        + " |",
        "|---|" + "---:|" * 5,
    ] + [
        f"| {k} | " + " | ".join(f"{v[str(s)]:.3f}" for s in range(1, 6)) + " |"
        for k, v in rows.items()
    ]
    return record, "\n".join(md) + "\n"


def jpeg(args: argparse.Namespace) -> int:
    """The jpeg family under both codecs, same crops, same threshold."""
    from benchmarks.robustness.jpeg_numpy import jpeg_roundtrip
    from edgeped.data.preprocess import Preprocessing
    from edgeped.data.shards import Dataset
    from edgeped.evaluate.corruptions import CORRUPTIONS, corrupt_batch, to_linear, to_u8
    from edgeped.evaluate.inference import TfliteScorer

    record = harness.provenance("robustness_jpeg", args.argv)
    run = Path(args.run)
    metrics = json.loads((run / "metrics.json").read_text())
    shipped = metrics["shipping"]["model"]
    card = json.loads((run / f"{shipped}.card.json").read_text())
    threshold = metrics["models"][shipped]["threshold"]["threshold"]
    data = Dataset.open(args.data or card["source"]["dataset"])
    scorer = TfliteScorer(run / f"{shipped}.tflite", Preprocessing.from_dict(card["preprocessing"]))
    rows = {"numpy DCT (before)": {}, "Pillow libjpeg (now)": {}}
    for s in range(1, 6):
        quality = CORRUPTIONS["jpeg"].params(s)["quality"]
        hits = {k: [] for k in rows}
        for batch in data.iter_batches("test", batch_records=512):
            pos = batch.labels == 1
            if not pos.any():
                continue
            images, meta, ids = batch.images[pos], batch.metadata[pos], batch.crop_id[pos]
            old = np.stack(
                [to_u8(to_linear(jpeg_roundtrip(to_u8(to_linear(im)), quality))) for im in images]
            )
            new, _ = corrupt_batch(images, meta, ids, "jpeg", s)
            for k, imgs in (("numpy DCT (before)", old), ("Pillow libjpeg (now)", new)):
                hits[k].append(scorer.score(imgs, meta).probability >= threshold)
        for k in rows:
            rows[k][str(s)] = float(np.concatenate(hits[k]).mean())
    record, md = jpeg_result(str(run), shipped, rows, harness.finish(record))
    harness.write_result(out_path(args), record, md)
    print(md, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Results go to benchmarks/results/robustness/ (see the module docstring).",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table")
    t.add_argument("sources", nargs="+", help="LABEL=path/to/robustness.json")
    t.add_argument("--models", default="")
    a = sub.add_parser("augment")
    a.add_argument("source")
    a.add_argument("--pair", action="append", required=True, help="seed=N,on=MODEL,off=MODEL")
    s = sub.add_parser("samples")
    s.add_argument("data")
    s.add_argument("--index", type=int, default=0, help="which test pedestrian")
    st = sub.add_parser("study")
    st.add_argument(
        "variants",
        nargs="+",
        help="LABEL=RUN,RUN,... (one run per seed; the last may be STUDY.json#LABEL, the runs an "
        "earlier study recorded under LABEL)",
    )
    st.add_argument(
        "--against", default="", help="Welch's t test of every other recipe against this one"
    )
    j = sub.add_parser("jpeg")
    j.add_argument("run")
    j.add_argument("--data", default="")
    for cmd, p in sub.choices.items():
        subject, qualifiers = NAMES[cmd]
        default = "-".join([subject, "<YYYYMMDD>", *qualifiers, "TAG"])
        p.add_argument(
            "--tag", default="", help=f"qualifier of the default name ({default}, e.g. pfd)"
        )
        p.add_argument(
            "--out",
            type=Path,
            help="output stem, its suffix replaced by each file's (default: "
            f"benchmarks/results/robustness/{default})",
        )
    args = parser.parse_args(argv)
    args.argv = argv
    commands = {
        "table": table,
        "augment": augment,
        "samples": samples,
        "study": study,
        "jpeg": jpeg,
    }
    return commands[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
