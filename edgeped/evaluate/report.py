"""Renders metrics.json as a Markdown report a reviewer can read.

It opens with which model ships and why (`shipping_choice`), then the tables. Units:
sizes in KiB, rates in %, differences between two rates in signed percentage points
(pp), slices by their readable names (`kind=pedestrian`, see `edgeped.evaluate.names`).
"""

from __future__ import annotations

from edgeped.evaluate.names import slice_label


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.{digits}f}%"


def _pp(value: float | None, digits: int = 2) -> str:
    """A difference of two rates, in signed percentage points."""
    return "n/a" if value is None or value != value else f"{100 * value:+.{digits}f} pp"


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def _ci(interval, pct: bool = True) -> str:
    if interval is None:
        return "n/a"
    lo, hi = interval
    return f"[{_pct(lo)}, {_pct(hi)}]" if pct else f"[{_num(lo)}, {_num(hi)}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _overlap(a, b) -> bool:
    return a is not None and b is not None and a[0] <= b[1] and b[0] <= a[1]


def shipping_choice(report: dict) -> dict:
    """Which model ships: the int8 model (the ECU runs int8) that meets the constraint on
    val and has the highest val recall at its threshold, then lower val FPR, then smaller.

    The choice is made on validation, like the threshold; test figures are reported,
    never used to pick. Falls back to every model when the run has no int8 model.
    Returns the choice, the runner-up, the reasons in words, and whether the two test
    recalls' by-drive 95% intervals overlap (then the test set cannot tell them apart).
    """
    models = report["models"]
    pool = [n for n, r in models.items() if r["model"]["mode"].endswith("int8")] or list(models)

    def rank(name: str):
        r = models[name]
        return (
            bool(r["both_constraints_hold_on_val"]),
            r["threshold"]["recall"],
            -r["threshold"]["fpr"],
            -r["model"]["size_bytes"],
        )

    ordered = sorted(pool, key=rank, reverse=True)
    best = ordered[0]
    r = models[best]
    boot = r["test_ci95"]["by_drive_bootstrap"]
    cfg = report["config"]
    reasons = [
        "int8, the format the ECU runs"
        if r["model"]["mode"].endswith("int8")
        else "no int8 model in this run",
        f"highest val recall among {len(pool)} candidate(s): {_pct(r['threshold']['recall'])} "
        f"at val FPR {_pct(r['threshold']['fpr'])} (chosen on val, like the threshold)",
        f"on test: recall {_pct(r['test']['recall'])} (by-drive 95% interval "
        f"{_ci(boot['recall'])}) at FPR {_pct(r['test']['fpr'])}",
        f"the val constraint holds (recall >= {cfg['min_recall']} at FPR <= {cfg['max_fpr']})"
        if r["both_constraints_hold_on_val"]
        else f"but NO candidate meets the val constraint (recall >= {cfg['min_recall']} at "
        f"FPR <= {cfg['max_fpr']})",
    ]
    runner_up = ordered[1] if len(ordered) > 1 else None
    within = None
    if runner_up:
        within = _overlap(
            boot["recall"], models[runner_up]["test_ci95"]["by_drive_bootstrap"]["recall"]
        )
    return {
        "model": best,
        "meets_val_constraint": bool(r["both_constraints_hold_on_val"]),
        "reasons": reasons,
        "runner_up": runner_up,
        "lead_within_intervals": within,
    }


def _shipping_lines(report: dict) -> list[str]:
    choice = shipping_choice(report)
    name = choice["model"]
    r = report["models"][name]
    out = [
        f"**Ships: `{name}`** ({r['model']['mode']}, {r['model']['size_bytes'] / 1024:.1f} KiB, "
        f"threshold {_num(r['threshold']['threshold'])}):",
        "",
        *[f"- {reason}" for reason in choice["reasons"]],
    ]
    if choice["runner_up"]:
        other = report["models"][choice["runner_up"]]
        boot = other["test_ci95"]["by_drive_bootstrap"]
        verdict = (
            "the two test intervals overlap, so this test set cannot tell them apart"
            if choice["lead_within_intervals"]
            else "the two test intervals do not overlap"
        )
        out.append(
            f"- runner-up `{choice['runner_up']}`: val recall "
            f"{_pct(other['threshold']['recall'])}; test recall {_pct(other['test']['recall'])} "
            f"{_ci(boot['recall'])}, FPR {_pct(other['test']['fpr'])}; {verdict}"
        )
    return out + [""]


def render_markdown(report: dict) -> str:
    cfg = report["config"]
    ds = report["dataset"]
    out = [
        "# edgeped evaluation report",
        "",
        *_shipping_lines(report),
        f"Dataset `{ds['root']}` (manifest sha256 `{ds['manifest_sha256'][:12]}`): "
        f"val {ds['val']['crops']} crops ({ds['val']['positives']} pedestrians), "
        f"test {ds['test']['crops']} crops ({ds['test']['positives']} pedestrians).",
        "",
        f"Operating point: threshold chosen on **val** as the highest recall with FPR <= "
        f"{cfg['max_fpr']}; the test columns are measured at that threshold. Every model "
        "is the `.tflite` itself, run through LiteRT.",
        "",
    ]
    if cfg.get("metadata_dropout"):
        out += [
            f"**Metadata dropped** (set missing) for {_pct(cfg['metadata_dropout'], 0)} of "
            "val/test records before scoring.",
            "",
        ]
    out += ["## Models on test", ""]
    rows = []
    for name, r in report["models"].items():
        t = r["test"]
        rows.append(
            [
                name,
                r["model"]["mode"],
                f"{r['model']['size_bytes'] / 1024:.1f} KiB",
                f"{r['model']['parameters']:,}",
                _num(r["threshold"]["threshold"]),
                _pct(t["recall"]),
                _pct(t["fpr"]),
                _num(t["auc_pr"]),
                _num(t["roc_auc"]),
                "yes" if r["both_constraints_hold_on_val"] else "no",
            ]
        )
    out += _table(
        [
            "model",
            "mode",
            "size",
            "params",
            "threshold",
            "recall",
            "FPR",
            "AUC-PR",
            "ROC-AUC",
            f"val recall >= {cfg['min_recall']} at FPR <= {cfg['max_fpr']}",
        ],
        rows,
    )
    out += [
        "95% intervals on test: exact binomial (crops independent) and bootstrap over "
        "drives (crops of a drive move together; the honest one):",
        "",
    ]
    rows = []
    for name, r in report["models"].items():
        ci = r["test_ci95"]
        boot = ci["by_drive_bootstrap"]
        rows.append(
            [
                name,
                _ci(ci["recall_exact"]),
                _ci(boot["recall"]),
                _ci(ci["fpr_exact"]),
                _ci(boot["fpr"]),
                _ci(boot["auc_pr"], pct=False),
                _num(r["test_calibration"]["ece"]),
            ]
        )
    out += _table(
        [
            "model",
            "recall exact",
            "recall by drive",
            "FPR exact",
            "FPR by drive",
            "AUC-PR by drive",
            "ECE",
        ],
        rows,
    )
    out += [
        "Second reading of the constraint (lowest val FPR with val recall >= "
        f"{cfg['min_recall']}):",
        "",
    ]
    out += _table(
        ["model", "threshold", "val recall", "val FPR"],
        [
            [
                n,
                _num(r["threshold_min_fpr"]["threshold"]),
                _pct(r["threshold_min_fpr"]["recall"]),
                _pct(r["threshold_min_fpr"]["fpr"]),
            ]
            for n, r in report["models"].items()
        ],
    )
    if report["comparisons"]:
        out += ["## Quantised vs float (test)", ""]
        out += _table(
            [
                "float",
                "quantised",
                "d recall",
                "d FPR",
                "d AUC-PR",
                "decision flips",
                "flips on pedestrians",
                "mean |d score|",
            ],
            [
                [
                    c["float"],
                    c["quantized"],
                    _pp(c["delta"]["recall"]),
                    _pp(c["delta"]["fpr"]),
                    _num(c["delta"]["auc_pr"]),
                    f"{c['flips']} ({_pct(c['flip_rate'])})",
                    _pct(c["flip_rate_positives"]),
                    _num(c["score_mean_abs_diff"]),
                ]
                for c in report["comparisons"]
            ],
        )
    audit = [
        (n, c)
        for n, r in report["models"].items()
        if r["model"]["mode"].endswith("int8")
        for c in r["model"].get("concatenations", [])
    ]
    if audit:
        out += [
            "## int8 audit: where the metadata branch joins the image features",
            "",
            "Input scales of each int8 CONCATENATION; a large ratio means the smaller-range "
            "branch keeps few int8 steps.",
            "",
        ]
        out += _table(
            ["model", "input scales", "output scale", "ratio"],
            [
                [
                    n,
                    ", ".join(f"{t['scale']:.4g}" for t in c["inputs"]),
                    ", ".join(f"{t['scale']:.4g}" for t in c["outputs"]),
                    _num(c["input_scale_ratio"], 2),
                ]
                for n, c in audit
            ],
        )
    out += [
        "## Slices (test, at each model's threshold)",
        "",
        f"Values marked `*` rest on fewer than {cfg['min_slice_samples']} crops of the class "
        "that defines them and are too small to judge.",
        "",
    ]
    for name, r in report["models"].items():
        out += [f"### {name}", ""]
        rows = []
        for tag, values in r["test_slices"].items():
            for value, s in values.items():
                rec = _pct(s["recall"]) + ("" if s["recall_judgeable"] else "*")
                fpr = _pct(s["fpr"]) + ("" if s["fpr_judgeable"] else "*")
                rows.append(
                    [
                        slice_label(tag, value),
                        str(s["crops"]),
                        str(s["positives"]),
                        rec if s["recall"] is not None else "-",
                        fpr if s["fpr"] is not None else "-",
                    ]
                )
        out += _table(["slice", "crops", "pedestrians", "recall", "FPR"], rows)
    plots = report.get("plots", {})
    galleries = {k: v for k, v in plots.items() if k.startswith("gallery") and v.endswith(".png")}
    if galleries:
        out += (
            [
                f"## Errors of `{report.get('gallery_model', '')}` at its operating threshold",
                "",
                "Every error crop is listed in `gallery/errors.json`; the pictures show the "
                "worst of each kind, overall and per slice.",
                "",
            ]
            + [f"![{k}]({v})" for k, v in galleries.items()]
            + [""]
        )
    out += _robustness_lines(report.get("robustness"))
    pictures = {k: v for k, v in plots.items() if not k.startswith("gallery")}
    if pictures:
        out += ["## Pictures", ""] + [f"![{k}]({v})" for k, v in pictures.items()] + [""]
    return "\n".join(out)


def _robustness_lines(section: dict | None) -> list[str]:
    """The robustness summary eval attaches (robustness.json has the full tables)."""
    if not section:
        return [
            "## Robustness under camera shifts",
            "",
            "Not measured by this evaluation: the gate's robustness budgets fail closed. "
            "`edgeped eval RUN_DIR` runs the quick suite; `--corruptions all` the full one.",
            "",
        ]
    out = [
        "## Robustness under camera shifts",
        "",
        f"{section['suite']} suite ({section['cells']}), threshold from clean val; details in "
        f"`{section['file']}` and `{section['report']}`.",
        "",
    ]
    rows = []
    for name, s in section["models"].items():
        fam = s.get("families") or {}
        held = (fam.get("held_out") or {}).get("recall_ratio")
        mild = s.get("worst_mild") or {}
        alerts = s.get("fpr_alerts") or []
        rows.append(
            [
                f"`{name}`",
                _num(s["clean_recall"], 3),
                _num(s["mean_corrupted_recall"], 3),
                _num(s.get("recall_ratio"), 3),
                f"{_num(mild.get('recall_ratio'), 3)} ({mild.get('corruption', '-')} "
                f"{mild.get('severity', '-')})",
                _num(held, 3),
                _pct(s["mean_corrupted_fpr"]),
                ", ".join(f"{a['corruption']} {a['severity']}" for a in alerts[:6])
                + (" ..." if len(alerts) > 6 else "")
                or "none",
            ]
        )
    out += _table(
        [
            "model",
            "clean recall",
            "mean corrupted",
            "x clean",
            "worst at severity <= 3 (x clean)",
            "held-out x clean",
            "mean FPR",
            "FPR > 2%",
        ],
        rows,
    )
    return out
