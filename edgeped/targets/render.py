"""A readable summary table of a benchmark result (rich), for the CLI."""

from __future__ import annotations

from typing import Any

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
    for what, value in rows:
        table.add_row(what, value)
    if s["emulated"]:
        table.caption = (
            "emulated: latency is 50-120x real time and RSS includes the emulator; "
            "use instructions/invoke as the cost figure"
        )
    return table


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} MB"
