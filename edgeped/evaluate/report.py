"""Renders metrics.json as a Markdown report a reviewer can read."""

from __future__ import annotations


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.{digits}f}%"


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


def render_markdown(report: dict) -> str:
    cfg = report["config"]
    ds = report["dataset"]
    out = [
        "# edgeped evaluation report",
        "",
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
                    _pct(c["delta"]["recall"]),
                    _pct(c["delta"]["fpr"]),
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
                        tag,
                        value,
                        str(s["crops"]),
                        str(s["positives"]),
                        rec if s["recall"] is not None else "-",
                        fpr if s["fpr"] is not None else "-",
                    ]
                )
        out += _table(["tag", "value", "crops", "pedestrians", "recall", "FPR"], rows)
    plots = report.get("plots", {})
    if plots:
        out += ["## Curves", ""] + [f"![{k}]({v})" for k, v in plots.items()] + [""]
    return "\n".join(out)
