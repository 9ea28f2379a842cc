"""Pictures and the Markdown page of the corruption suite: recall against severity,
the hit-to-miss flip gallery, and one sample per corruption and severity."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from edgeped.evaluate.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from edgeped.evaluate.plots import _figure, _save
from edgeped.fileio import write_bytes_atomic


def _save_grid(fig, plt, path: Path) -> Path:
    """Saves a grid of small images without tight_layout (it cannot fit narrow image axes)."""
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.88, wspace=0.35, hspace=0.45)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def severity_png(report: dict, path: Path) -> Path:
    """Recall against severity (0 = clean), one panel per model, one line per corruption."""
    plt = _figure()
    models = report["models"]
    fig, axes = plt.subplots(
        1, len(models), figsize=(4.6 * len(models), 4.2), squeeze=False, sharey=True
    )
    for ax, (name, entry) in zip(axes[0], models.items(), strict=True):
        clean = entry["clean"]["recall"]
        for cname, cells in entry["corruptions"].items():
            sev = sorted(int(s) for s in cells)
            ax.plot(
                [0, *sev],
                [clean, *(cells[str(s)]["recall"] for s in sev)],
                marker="o",
                ms=3,
                lw=1.2,
                label=cname,
            )
        mean = entry["summary"]["mean_corrupted_recall"]
        ax.axhline(mean, color="black", ls=":", lw=1, label=f"mean {mean:.3f}")
        ax.set(
            title=name,
            xlabel="severity (0 = clean)",
            ylim=(0, 1.02),
            xticks=[0, *SEVERITIES],
        )
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test recall at the clean-val threshold")
    axes[0][-1].legend(loc="lower left", fontsize=6, ncol=2)
    return _save(fig, plt, path)


def flip_gallery_png(flips: list, model: str, path: Path) -> Path:
    """Clean and corrupted crop side by side for each hit-to-miss flip, with both scores."""
    plt = _figure()
    n = max(len(flips), 1)
    cols = min(n, 8)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(
        rows, 2 * cols, figsize=(max(1.3 * 2 * cols, 6.0), 2.4 * rows + 0.4), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    if not flips:
        axes[0][0].text(0, 0.5, f"{model}: no pedestrian flips from hit to miss", fontsize=8)
    for k, f in enumerate(flips):
        r, c = divmod(k, cols)
        a, b = axes[r][2 * c], axes[r][2 * c + 1]
        a.imshow(f.clean_image)
        a.set_title(f"clean {f.clean_score:.2f}", fontsize=6)
        b.imshow(f.corrupted_image)
        b.set_title(f"{f.corruption} {f.severity}: {f.corrupted_score:.2f}", fontsize=6)
    fig.suptitle(f"{model}: pedestrians hit on clean, missed corrupted (score shown)", fontsize=8)
    return _save_grid(fig, plt, path)


def samples_png(
    image: np.ndarray,
    metadata: np.ndarray,
    crop_id: str,
    path: Path,
    seed: int = 0,
    names: list[str] | None = None,
) -> Path:
    """One crop under each corruption (rows; default every one) and severity, clean first."""
    plt = _figure()
    names = list(CORRUPTIONS) if names is None else names
    fig, axes = plt.subplots(
        len(names), len(SEVERITIES) + 1, figsize=(0.95 * (len(SEVERITIES) + 1), 1.75 * len(names))
    )
    for r, name in enumerate(names):
        axes[r][0].imshow(image)
        axes[r][0].set_ylabel(name, fontsize=7)
        for s in SEVERITIES:
            out, _ = corrupt(image, metadata, crop_id, name, s, seed)
            axes[r][s].imshow(out)
            if r == 0:
                axes[r][s].set_title(f"severity {s}", fontsize=7)
    axes[0][0].set_title("clean", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, plt, path)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _ci(pair) -> str:
    return "" if pair is None else f" [{pair[0]:.2f}, {pair[1]:.2f}]"


def _shift_lines(s: dict) -> list[str]:
    """Recall as a share of clean (all, mild cells, trained-on vs held-out) and FPR alerts."""
    if "recall_ratio" not in s:  # written before these figures existed
        return []
    out = [f"- mean corrupted recall / clean: **{_fmt(s['recall_ratio'])}**"]
    mild = s.get("worst_mild")
    if mild:
        out.append(
            f"- worst cell at severity <= {mild['severity_at_most']}: {_fmt(mild['recall'])} "
            f"({mild['corruption']} {mild['severity']}), {_fmt(mild['recall_ratio'])} x clean"
        )
    for group, label in (("trained", "trained on"), ("held_out", "held out of training")):
        g = (s.get("families") or {}).get(group)
        if g:
            out.append(
                f"- families {label} ({', '.join(g['families'])}): mean recall "
                f"{_fmt(g['mean_recall'])}, {_fmt(g['recall_ratio'])} x clean"
            )
    alerts = s.get("fpr_alerts") or []
    out.append(
        "- FPR above 2% at the clean-val threshold: "
        + (
            ", ".join(f"{a['corruption']} {a['severity']} ({100 * a['fpr']:.1f}%)" for a in alerts)
            if alerts
            else "none"
        )
    )
    return [*out, ""]


def render_markdown(report: dict) -> str:
    """robustness.md: per model the recall table (corruption x severity), mean, worst, drop."""
    cfg = report["config"]
    ds = report["dataset"]
    out = [
        "# Robustness to common corruptions",
        "",
        f"Dataset `{ds['root']}`: test {ds['test']['crops']} crops, "
        f"{ds['test']['positives']} pedestrians. Threshold per model on clean val "
        f"(max recall with FPR <= {cfg['max_fpr']}); every corrupted copy of the test split "
        f"is scored at it. Intervals: by-drive bootstrap, 95%. Seed {cfg['seed']}. "
        f"Suite: {cfg.get('suite', 'custom')} (background kept: "
        f"{ds.get('test_negatives_kept', 'all')}; pedestrians kept: "
        f"{ds.get('test_positives_kept', 'all')}).",
        "",
    ]
    fam = report.get("families")
    if fam:
        out += [
            f"Trained on (an augmentation imitates them): {', '.join(fam['trained']) or 'none'}. "
            f"Held out: {', '.join(fam['held_out']) or 'none'}.",
            "",
        ]
    sev = [str(s) for s in cfg["severities"]]
    for name, entry in report["models"].items():
        s = entry["summary"]
        out += [
            f"## {name}",
            "",
            f"Clean recall {_fmt(s['clean_recall'])}"
            f"{_ci(entry['clean']['ci95']['recall_by_drive'])}, FPR "
            f"{_fmt(entry['clean']['fpr'])}; mean corrupted recall "
            f"**{_fmt(s['mean_corrupted_recall'])}** (relative drop "
            f"{_fmt(s['relative_drop'])}), mean FPR {_fmt(s['mean_corrupted_fpr'])}, "
            f"worst {_fmt(s['worst']['recall'])} ({s['worst']['corruption']} "
            f"severity {s['worst']['severity']}).",
            "",
            *_shift_lines(s),
            "| corruption | "
            + " | ".join(f"sev {x}" for x in sev)
            + " | mean | FPR at 5 | AUC-PR at 5 |",
            "|---|" + "---:|" * (len(sev) + 3),
        ]
        for cname, cells in entry["corruptions"].items():
            last = cells[sev[-1]]
            out.append(
                f"| {cname} | "
                + " | ".join(
                    f"{_fmt(cells[x]['recall'])}{_ci(cells[x]['ci95']['recall_by_drive'])}"
                    for x in sev
                )
                + f" | {_fmt(s['corrupted_recall'][cname])} | {_fmt(last['fpr'])} | "
                f"{_fmt(last['auc_pr'])} |"
            )
        out += [
            "",
            f"FPR at the clean-val threshold (clean {_fmt(entry['clean']['fpr'])}; cells above "
            "2% in bold):",
            "",
            "| corruption | " + " | ".join(f"sev {x}" for x in sev) + " |",
            "|---|" + "---:|" * len(sev),
        ]
        for cname, cells in entry["corruptions"].items():
            out.append(
                f"| {cname} | "
                + " | ".join(
                    f"**{_fmt(cells[x]['fpr'])}**"
                    if cells[x]["fpr"] > 0.02
                    else _fmt(cells[x]["fpr"])
                    for x in sev
                )
                + " |"
            )
        out.append("")
    for gap in report["quantization_gaps"]:
        out += [
            f"## {gap['quantized']} minus {gap['float']} (recall)",
            "",
            f"Clean {gap['clean_recall_delta']:+.3f}; mean corrupted "
            f"{gap['mean_corrupted_recall_delta']:+.3f}.",
            "",
            "| corruption | " + " | ".join(f"sev {x}" for x in sev) + " |",
            "|---|" + "---:|" * len(sev),
        ]
        for cname, d in gap["recall_delta"].items():
            out.append(f"| {cname} | " + " | ".join(f"{d[x]:+.3f}" for x in sev) + " |")
        out.append("")
    g = report["gallery"]
    out += [
        f"Flip gallery ({g['model']}): {len(g['flips'])} crops, "
        f"`{report.get('plots', {}).get('flips', '')}`; recall against severity: "
        f"`{report.get('plots', {}).get('severity', '')}`.",
        "",
    ]
    return "\n".join(out)
