"""`edgeped drift`: a window (shadow log or dataset) against a run's frozen reference."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgeped.cli._common import overwrite_option

EXIT = {"ok": 0, "warn": 0, "alert": 1, "too_small": 2}


@click.command()
@click.argument("reference", type=click.Path(exists=True, path_type=Path))
@click.argument("window", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="write drift.json, drift.md and drift.png here")  # fmt: skip
@click.option("--psi-warn", default=0.1, show_default=True, help="PSI that warns")
@click.option("--psi-alert", default=0.25, show_default=True, help="PSI that alerts")
@click.option("--ks-alpha", default=0.05, show_default=True, help="before Bonferroni")
@click.option("--ks-min-d", default=0.1, show_default=True, help="KS statistic that counts")
@click.option("--missing-warn", default=0.05, show_default=True, help="missing-rate change")
@click.option(
    "--missing-alert", default=0.10, show_default=True, help="missing-rate change that alerts"
)
@click.option("--min-window", default=500, show_default=True, help="fewer crops: too small")
@click.option(
    "--min-slice", default=200, show_default=True, help="fewer crops in a slice: too small"
)
@click.option("--split", "splits", multiple=True, help="dataset splits [default: all]")
@click.option("--fail-on", type=click.Choice(["alert", "warn"]), default="alert",
              show_default=True, help="exit 1 from this level up")  # fmt: skip
@overwrite_option
def drift(reference, window, out_dir, psi_warn, psi_alert, ks_alpha, ks_min_d, missing_warn,
          missing_alert, min_window, min_slice, splits, fail_on, overwrite) -> None:  # fmt: skip
    """Check WINDOW for drift against REFERENCE (a run directory or its drift_reference.json).

    Exit 0 quiet, 1 drift (alert, or warn with --fail-on warn), 2 the window is too small
    to judge or an input is bad.
    """
    from rich.table import Table

    from edgeped.cli._common import stdout_console
    from edgeped.outdir import claim_into
    from edgeped.rollout.drift import DriftConfig
    from edgeped.rollout.drift_run import run_drift

    config = DriftConfig(psi_warn=psi_warn, psi_alert=psi_alert, ks_alpha=ks_alpha,
                         ks_min_statistic=ks_min_d,
                         missing_warn=missing_warn, missing_alert=missing_alert,
                         min_window=min_window, min_slice=min_slice)  # fmt: skip
    claim = claim_into(out_dir, "drift", overwrite=overwrite)
    report, files = run_drift(
        reference, window, out_dir, splits=tuple(splits) or ("train", "val", "test"), config=config
    )
    if claim is not None:
        claim.done()
    table = Table(title=f"drift {report['status']} ({report['window']['crops']} crops)")
    for col in ("feature", "status", "PSI", "KS p", "missing now (ref)"):
        table.add_column(col)
    for group in ("features", "scores"):
        for name, r in report[group].items():
            table.add_row(
                name if group == "features" else f"score:{name}", r["status"],
                "n/a" if r["psi"] is None else f"{r['psi']:.3f}",
                "n/a" if r["ks_p"] is None else f"{r['ks_p']:.2g}",
                f"{r['missing_rate']:.1%} ({r['reference_missing_rate']:.1%})",
            )  # fmt: skip
    stdout_console().print(table)
    for path in files.values():
        click.echo(f"wrote {path}")
    status = report["status"]
    code = 1 if (fail_on == "warn" and status == "warn") else EXIT[status]
    click.echo(f"drift: {status}" + (" (window too small to judge)" if code == 2 else ""))
    sys.exit(code)
