"""Writes a ShadowReport: shadow.json, shadow.md, the score scatter and the new-miss gallery."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from edgeped.fileio import write_bytes_atomic, write_json_atomic, write_text_atomic
from edgeped.rollout.shadow_log import ShadowRecords
from edgeped.rollout.shadow_report import ShadowReport


def _pct(r: dict | None) -> str:
    if not r or r.get("rate") is None:
        return "n/a"
    lo, hi = r["ci95"]
    return f"{r['rate']:.2%} [{lo:.2%}, {hi:.2%}] ({r['count']}/{r['of']})"


def render_markdown(report: ShadowReport, images: dict[str, str]) -> str:
    """The report as Markdown: verdict-free figures with their intervals."""
    o = report.overall
    b, c = report.baseline, report.candidate
    lines = [
        f"# Shadow report: {c.get('name')} beside {b.get('name')}",
        "",
        f"- baseline: `{b.get('name')}` sha256 `{str(b.get('sha256'))[:12]}`, "
        f"threshold {b.get('threshold')}"
        + (f" (int8 {b['threshold_int8']})" if b.get("threshold_int8") is not None else ""),
        f"- candidate: `{c.get('name')}` sha256 `{str(c.get('sha256'))[:12]}`, "
        f"threshold {c.get('threshold')}"
        + (f" (int8 {c['threshold_int8']})" if c.get("threshold_int8") is not None else ""),
        f"- source: {report.source.get('kind')} `{report.source.get('path')}`, {o['crops']} crops",
        f"- log integrity: {_integrity(report.integrity)}",
        "",
        f"- verdict basis: {_basis(o)}",
        "",
        "| figure | value [95% Wilson] |",
        "|---|---|",
    ]
    d = o.get("disagreement") or o
    lines += [
        f"| flip rate (all crops, disagreement) | {_pct(d['flip_rate'])} |",
        f"| new misses (of baseline pedestrian calls, disagreement) | {_pct(d['new_miss_rate'])} |",
        f"| new misses (of all crops) | {_pct(o['new_miss_rate_all'])} |",
        f"| new detections (of baseline background calls) | {_pct(d['new_detection_rate'])} |",
        f"| McNemar exact p (new detections vs new misses) | {o['mcnemar']['p_value']:.4g} |",
    ]
    if o.get("basis") == "labels":
        g = o["gains"]
        lines += [
            f"| **pedestrians lost** (of those the baseline found; judged) | "
            f"{_pct(o['new_miss_rate'])} |",
            f"| **harmful flips** (lost pedestrians + new false alarms, of all crops; judged) | "
            f"{_pct(o['harmful_flip_rate'])} |",
            f"| new false alarms (of baseline-rejected background) | "
            f"{_pct(o['new_false_alarm_rate'])} |",
            f"| gain: baseline false alarms rejected | {_pct(g['false_alarms_removed'])} |",
            f"| gain: pedestrians found only by the candidate | {_pct(g['pedestrians_found'])} |",
        ]
    if "baseline" in o:
        lines += [
            f"| recall baseline / candidate | {_pct(o['baseline']['recall'])} / "
            f"{_pct(o['candidate']['recall'])} |",
            f"| FPR baseline / candidate | {_pct(o['baseline']['fpr'])} / "
            f"{_pct(o['candidate']['fpr'])} |",
            f"| new misses of real pedestrians | {_pct(o['new_misses_of_pedestrians'])} |",
        ]
    sa = report.score_agreement
    lines += [
        f"| score mean abs diff / max | {sa['mean_abs_diff']:.4g} / {sa['max_abs_diff']:.4g} |",
        "",
    ]
    cost = report.cost
    if cost:
        emu = report.source.get("emulated")
        label = " (emulated: time and RSS include QEMU; only instructions are exact)" if emu else ""
        lines += [f"## What shadowing costs{label}", "", "| figure | value |", "|---|---|"]
        lines.append(
            f"| added time per crop, p50 | {cost['added_ms_per_crop_p50']:.3f} ms "
            f"(baseline alone {cost['baseline_alone_ms_per_crop']['p50']:.3f}, "
            f"shadow {cost['shadow_ms_per_crop']['p50']:.3f}) |"
        )
        lines.append(f"| log write per record, p50 | {cost['log_write_ms']['p50']:.3f} ms |")
        if cost.get("added_peak_rss_mb") is not None:
            lines.append(
                f"| added peak RSS | {cost['added_peak_rss_mb']:.2f} MB "
                f"(baseline alone {cost['baseline_alone_peak_rss_mb']:.1f}) |"
            )
        insn = cost.get("instructions")
        if insn:
            lines.append(
                f"| added instructions per crop | {insn['added_per_crop']:,} "
                f"(baseline alone {insn['baseline_alone_per_crop']:,}) |"
            )
        lines.append("")
    lines += _estimate_lines(report.estimate)
    for name, rows in report.slices.items():
        labelled = o.get("basis") == "labels"
        lines += [
            f"## By {name}",
            "",
            "| value | crops | "
            + (
                "harmful flips | pedestrians lost (of found by baseline)"
                if labelled
                else "flip rate | new misses (of baseline positive calls)"
            )
            + " | judgeable |",
            "|---|---|---|---|---|",
        ]
        for value, row in rows.items():
            flips = row.get("harmful_flip_rate") if labelled else row["flip_rate"]
            lines.append(
                f"| {value} | {row['crops']} | {_pct(flips)} | "
                f"{_pct(row['new_miss_rate'])} | "
                f"{'yes' if row['judgeable'] else 'too small'} |"
            )
        lines.append("")
    lines += [f"![scores]({images['scatter']})", ""]
    if report.new_miss_ids:
        if "gallery" in images:
            lines += [
                f"## New misses ({len(report.new_miss_ids)})",
                "",
                f"![]({images['gallery']})",
            ]
        else:
            lines += [
                f"## New misses ({len(report.new_miss_ids)})",
                "",
                "The crops are not available here (no replay set or dataset holds these ids);"
                " ids are in shadow.json.",
            ]
    return "\n".join(lines) + "\n"


def _basis(o: dict) -> str:
    if o.get("basis") == "labels":
        return (
            "labels: the budgets judge errors (pedestrians the candidate loses, flips that "
            "add an error); baseline false alarms the candidate rejects are gains"
        )
    return "disagreement: no labels, so the budgets judge disagreement with the baseline"


def _ci(v, ci) -> str:
    if v is None:
        return "n/a"
    return f"{v:.2%}" + (f" [{ci[0]:.2%}, {ci[1]:.2%}]" if ci else "")


def _estimate_lines(estimate: dict | None) -> list[str]:
    """The label-free (CBPE) recall/FPR per model, and its error where labels exist."""
    if not estimate:
        return []
    lines = [
        "## Label-free estimate of recall and FPR",
        "",
        f"Method: {estimate.get('method')}. Scores go through the calibrator eval fitted on "
        "val; the estimate holds while they stay calibrated.",
        "",
        "| model | calibrated | recall (est.) | FPR (est.) | MAE recall | MAE FPR | "
        "interval held (recall / FPR) | windows |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for role in ("baseline", "candidate"):
        e = estimate.get(role) or {}
        v = e.get("validation")
        if v and v["recall"]["mae"] is not None:
            val = (
                f"{v['recall']['mae']:.4f} | {v['fpr']['mae']:.4f} | "
                f"{v['recall']['interval_coverage']:.0%} / {v['fpr']['interval_coverage']:.0%} | "
                f"{v['recall']['windows']} x {v['window_crops']} crops"
            )
        else:
            val = "- | - | - | no labels"
        lines.append(
            f"| {role} | {'yes' if e.get('calibrated') else 'no (raw scores)'} | "
            f"{_ci(e.get('recall'), e.get('recall_ci'))} | {_ci(e.get('fpr'), e.get('fpr_ci'))} "
            f"| {val} |"
        )
    return [*lines, ""]


def _integrity(i: dict) -> str:
    parts = [f"{i['records']} records"]
    if i["torn_tail"]:
        parts.append(f"torn last line skipped ({i['torn_tail_bytes']} bytes)")
    if i["corrupt_lines"]:
        parts.append(f"DAMAGED lines skipped: {i['corrupt_lines']}")
    if not i["finished"]:
        parts.append("the run did not finish (no summary record)")
    return ", ".join(parts)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def scatter_png(records: ShadowRecords, report: ShadowReport) -> bytes:
    """Candidate vs baseline score per crop, thresholds drawn, the two flip kinds marked."""
    plt = _plt()
    b, c = records.baseline, records.candidate
    miss = (b.decisions == 1) & (c.decisions == 0)
    new = (b.decisions == 0) & (c.decisions == 1)
    same = ~(miss | new)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(b.scores[same], c.scores[same], s=6, c="0.6", label=f"agree ({same.sum()})")
    ax.scatter(b.scores[new], c.scores[new], s=22, c="tab:blue", marker="^",
               label=f"new detection ({new.sum()})")  # fmt: skip
    ax.scatter(b.scores[miss], c.scores[miss], s=26, c="tab:red", marker="x",
               label=f"new miss ({miss.sum()})")  # fmt: skip
    tb, tc = report.baseline.get("threshold"), report.candidate.get("threshold")
    if tb is not None:
        ax.axvline(tb, color="k", lw=0.8, ls="--")
    if tc is not None:
        ax.axhline(tc, color="k", lw=0.8, ls="--")
    ax.set(
        xlabel=f"baseline score ({report.baseline.get('name')})",
        ylabel=f"candidate score ({report.candidate.get('name')})",
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
        title=f"{len(records)} crops, flip rate {report.overall['flip_rate']['rate']:.2%}",
    )
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def gallery_png(crops: list[tuple[str, np.ndarray, float, float, str]]) -> bytes:
    """A grid of new-miss crops captioned with both scores and what the crop is, if known."""
    plt = _plt()
    cols = min(8, len(crops))
    rows = (len(crops) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 3.1 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (crop_id, image, pb, pc, what) in zip(axes.ravel(), crops, strict=False):
        ax.imshow(image)
        ax.set_title(f"{crop_id[-14:]}\nb {pb:.2f} c {pc:.2f}\n{what}", fontsize=6)
    fig.suptitle("new misses: baseline pedestrian, candidate background", fontsize=8)
    return _png(fig)


def _what(records: ShadowRecords, i: int) -> str:
    """ "pedestrian", "background: pole", ... from the labels and tags the records carry."""
    if records.labels is None or records.labels[i] < 0:
        return ""
    if records.labels[i] == 1:
        return "pedestrian"
    kind = records.tags.get("hard_negative")
    return f"background: {kind[i]}" if kind is not None else "background"


def write_report(
    out_dir: str | Path,
    report: ShadowReport,
    records: ShadowRecords,
    crops: dict[str, np.ndarray] | None = None,
) -> dict[str, Path]:
    """Writes shadow.json, shadow.md, shadow_scores.png and (if crops) shadow_new_misses.png.

    Args:
        crops: crop id -> uint8 image for the new-miss crops that are available.
    """
    out = Path(out_dir)
    paths = {"json": out / "shadow.json", "markdown": out / "shadow.md"}
    paths["scatter"] = out / "shadow_scores.png"
    write_bytes_atomic(paths["scatter"], scatter_png(records, report))
    images = {"scatter": paths["scatter"].name}
    shown = [i for i in report.new_miss_ids if crops and i in crops][: report.config.gallery_max]
    if shown:
        index = {str(k): n for n, k in enumerate(records.crop_ids)}
        paths["gallery"] = out / "shadow_new_misses.png"
        write_bytes_atomic(
            paths["gallery"],
            gallery_png(
                [
                    (
                        i,
                        crops[i],
                        records.baseline.scores[index[i]],
                        records.candidate.scores[index[i]],
                        _what(records, index[i]),
                    )
                    for i in shown
                ]  # fmt: skip
            ),
        )
        images["gallery"] = paths["gallery"].name
    payload = report.to_dict()
    payload["files"] = {k: p.name for k, p in paths.items()}
    write_json_atomic(paths["json"], payload)
    write_text_atomic(paths["markdown"], render_markdown(report, images))
    return paths
