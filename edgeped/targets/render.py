"""A readable summary table of a benchmark result (rich), for the CLI."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from edgeped.fileio import write_bytes_atomic
from edgeped.targets.bench import BenchResult


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"


def _ci(stats: dict[str, Any], name: str) -> str:
    low, high = stats.get(f"{name}_ci95", [None, None])
    if low is None or high is None:
        return f"{_ms(stats[name])}  (95% CI: too few runs)"
    return f"{_ms(stats[name])}  (95% CI {low:.3f}-{high:.3f})"


def summary_table(result: BenchResult):
    """Builds the table shown after `edgeped bench` / `edgeped deploy`."""
    from rich.table import Table

    s = result.summary()
    r = result.runner
    label = "EMULATED " if s["emulated"] else ""
    table = Table(
        title=f"{label}benchmark on {s['target_name']} ({s['target_kind']})",
        show_header=False,
        title_justify="left",
    )
    table.add_column("what", style="bold")
    table.add_column("value")
    env = r.get("environment", {})
    rows = [
        (
            "model",
            f"{result.model_path}  sha256 {s['model_sha256'][:12]}  {s['size_bytes']:,} bytes",
        ),
        (
            "machine",
            f"{env.get('machine')}  {s['core'] or env.get('cpu_model') or '?'}  "
            f"{env.get('runtime')} {env.get('runtime_version')}",
        ),
        (
            "config",
            f"threads {s['threads']}  batch {s['batch']}  "
            f"xnnpack {'on' if r['config']['xnnpack'] else 'off'}  runs {s['runs']}",
        ),
        ("init / first inference", f"{_ms(s['init_ms'])} / {_ms(s['first_inference_ms'])}"),
        ("invoke p50", _ci(r["invoke_ms"], "p50")),
        ("invoke p95", _ci(r["invoke_ms"], "p95")),
        ("invoke p99", _ci(r["invoke_ms"], "p99")),
        (
            "end-to-end per crop p50 / p95",
            f"{_ms(s['e2e_ms_per_crop_p50'])} / {_ms(s['e2e_ms_per_crop_p95'])}",
        ),
        ("throughput", f"{s['throughput_crops_per_s']:.0f} crops/s"),
        (
            "peak RSS load+invoke / process",
            f"{_mb(s['peak_rss_mb'])} / {_mb(s['process_peak_rss_mb'])}",
        ),
    ]
    parity = result.parity
    if parity is not None:
        verdict = "[green]PASS[/green]" if parity["ok"] else "[red]FAIL[/red]"
        rows.append(
            (
                "parity vs host",
                f"{verdict}  {parity['mismatches']}/{parity['n']} differ, "
                f"max diff {parity['max_abs_diff']:g} {parity['unit']}",
            )
        )
    if s["instructions_per_invoke"] is not None:
        rows.append(("instructions / invoke", f"{s['instructions_per_invoke']:,}  ({s['core']})"))
    overhead = s.get("overhead_instructions_per_invoke")
    if overhead is not None and s["instructions_per_invoke"]:
        rows.append(
            (
                "pre/post-processing",
                f"{overhead:,} instructions ({100 * overhead / s['instructions_per_invoke']:.1f}% "
                "of the invoke)",
            )
        )
    for what, value in rows:
        table.add_row(what, value)
    if s["emulated"]:
        table.caption = (
            "emulated: latency is 50-120x real time and RSS includes the emulator; "
            "use instructions/invoke as the cost figure"
        )
    return table


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} MiB"


def suite_table(entries):
    """One row per model of `edgeped bench RUN_DIR` (see `edgeped.targets.suite`)."""
    from rich.table import Table

    first = next((e.result for e in entries if e.result is not None), None)
    label = "EMULATED " if first is not None and first.emulated else ""
    title = f"{label}benchmark of {len(entries)} model(s)"
    if first is not None:
        s = first.summary()
        title += (
            f" on {s['target_name']} ({s['target_kind']}{', ' + s['core'] if s['core'] else ''})"
        )
    table = Table(title=title, title_justify="left")
    for column in (
        "model",
        "size KiB",
        "invoke p50 ms",
        "invoke p95 ms",
        "e2e p95 ms/crop",
        "crops/s",
        "peak RSS MiB",
        "instructions/invoke",
        "parity",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    for e in entries:
        if e.result is None:
            table.add_row(e.model.name, *["-"] * 7, f"[red]error: {e.error}[/red]")
            continue
        s = e.result.summary()
        parity = s["parity_ok"]
        table.add_row(
            e.model.name,
            f"{s['size_bytes'] / 1024:.1f}",
            f"{s['invoke_ms_p50']:.3f}",
            f"{s['invoke_ms_p95']:.3f}",
            f"{s['e2e_ms_per_crop_p95']:.3f}",
            f"{s['throughput_crops_per_s']:.0f}",
            "-" if s["peak_rss_mb"] is None else f"{s['peak_rss_mb']:.1f}",
            "-" if s["instructions_per_invoke"] is None else f"{s['instructions_per_invoke']:,}",
            "-" if parity is None else ("[green]PASS[/green]" if parity else "[red]FAIL[/red]"),
        )
    if first is not None and first.emulated:
        table.caption = "emulated: latency is 50-120x real time; compare instructions/invoke"
    return table


def latency_png(result: BenchResult, path: Path) -> Path | None:
    """Histogram and CDF of the per-invoke and end-to-end samples, p50/p95/p99 marked.

    Returns None when the runner kept no samples (an old bench.json).
    """
    import numpy as np

    invoke = np.asarray(result.runner.get("invoke_ms_samples") or [], dtype=float)
    e2e = np.asarray(result.runner.get("e2e_ms_samples") or [], dtype=float)
    if invoke.size == 0:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.summary()
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 4))
    # Log axes: a busy host's tail (tens of ms) must not squash the body (tenths of a ms).
    values = np.concatenate([invoke, e2e]) if e2e.size else invoke
    low, high = max(float(values.min()), 1e-3), max(float(values.max()), 2e-3)
    bins = np.geomspace(low * 0.95, high * 1.05, 60)
    hist.hist(invoke, bins=bins, alpha=0.7, label=f"invoke ({invoke.size} runs)")
    if e2e.size:
        hist.hist(e2e, bins=bins, alpha=0.5, label=f"end to end per invoke ({e2e.size})")
    for q, style in ((50, "-"), (95, "--"), (99, ":")):
        value = np.percentile(invoke, q)
        hist.axvline(value, color="black", ls=style, lw=1, label=f"invoke p{q} {value:.3g} ms")
    hist.set(xscale="log", xlabel="milliseconds (log)", ylabel="invokes", title="latency histogram")
    hist.legend(fontsize=7)
    for values, name in ((invoke, "invoke"), (e2e, "end to end")):
        if values.size:
            ordered = np.sort(values)
            cdf.plot(ordered, np.arange(1, ordered.size + 1) / ordered.size, label=name)
    cdf.axhline(0.95, color="grey", ls="--", lw=1, label="95%")
    cdf.set(
        xscale="log",
        xlabel="milliseconds (log)",
        ylabel="share of invokes at or below",
        title="latency CDF",
        ylim=(0, 1.01),
    )
    cdf.grid(alpha=0.3)
    cdf.legend(fontsize=7)
    label = "EMULATED (50-120x real time) " if s["emulated"] else ""
    fig.suptitle(
        f"{label}{Path(result.model_path).name} on {s['target_name']}"
        f"{' (' + s['core'] + ')' if s['core'] else ''}: threads {s['threads']}, batch {s['batch']}",
        fontsize=9,
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
    return path
