"""`edgeped shadow run|report`: the candidate beside the baseline, and their disagreement."""

from __future__ import annotations

from pathlib import Path

import click

from edgeped.cli._common import log, overwrite_option


@click.group()
def shadow() -> None:
    """Shadow a candidate beside the baseline and report every disagreement."""


def _config(min_slice_crops: int, gallery: int):
    from edgeped.rollout.shadow_report import ShadowConfig

    return ShadowConfig(min_slice_crops=min_slice_crops, gallery_max=gallery)


def _report_options(func):
    func = click.option("--gallery", default=24, show_default=True, help="new-miss crops shown")(
        func
    )
    return click.option(
        "--min-slice-crops",
        default=30,
        show_default=True,
        help="slices with fewer crops are marked too small to judge",
    )(func)


def _render(report, files) -> None:
    from rich.table import Table

    from edgeped.cli._common import stdout_console

    def cell(r):
        if r["rate"] is None:
            return "n/a"
        lo, hi = r["ci95"]
        return f"{r['rate']:.2%} [{lo:.2%}, {hi:.2%}] ({r['count']}/{r['of']})"

    o = report.overall
    labelled = o.get("basis") == "labels"
    miss_col = (
        "pedestrians lost / found by baseline (labels)"
        if labelled
        else "new misses / baseline positive calls (disagreement)"
    )
    table = Table(title=f"{report.candidate.get('name')} beside {report.baseline.get('name')}")
    for col in ("rows", "crops", "flip rate", miss_col, "judgeable"):
        table.add_column(col)
    table.add_row("all", str(o["crops"]), cell(o["flip_rate"]), cell(o["new_miss_rate"]), "yes")
    for name, rows in report.slices.items():
        for value, row in rows.items():
            table.add_row(
                f"{name}={value}",
                str(row["crops"]),
                cell(row["flip_rate"]),
                cell(row["new_miss_rate"]),
                "yes" if row["judgeable"] else "too small",
            )
    stdout_console(min_width=120).print(table)
    click.echo(f"McNemar exact p = {o['mcnemar']['p_value']:.4g}")
    if labelled:
        gains = o["gains"]
        click.echo(
            "judged on labels: "
            f"{gains['false_alarms_removed']['count']} baseline false alarm(s) rejected (gain), "
            f"{gains['pedestrians_found']['count']} pedestrian(s) found only by the candidate "
            f"(gain), {o['new_false_alarm_rate']['count']} new false alarm(s)"
        )
    else:
        click.echo("no labels: the rates are disagreement with the baseline, not errors")
    for line in estimate_lines(report.estimate):
        click.echo(line)
    if not report.integrity["ok"]:
        click.secho(f"log damaged: lines {report.integrity['corrupt_lines']} skipped", fg="red")
    if report.integrity["torn_tail"]:
        click.echo("the log's last line was torn (a crash while writing) and was skipped")
    for path in files.values():
        click.echo(f"wrote {path}")


def estimate_lines(estimate: dict | None) -> list[str]:
    """One line per model: the label-free recall/FPR estimate, and its error where labelled."""
    if not estimate:
        return []

    def pct(v, ci):
        if v is None:
            return "n/a"
        return f"{v:.1%}" + (f" [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else "")

    out = []
    for role in ("baseline", "candidate"):
        e = estimate.get(role) or {}
        cal = "" if e.get("calibrated") else " (uncalibrated scores)"
        line = (
            f"label-free estimate{cal}, {role}: recall {pct(e.get('recall'), e.get('recall_ci'))}, "
            f"FPR {pct(e.get('fpr'), e.get('fpr_ci'))}"
        )
        v = e.get("validation")
        if v and v["recall"]["mae"] is not None:
            line += (
                f"; vs labels over {v['recall']['windows']} windows of {v['window_crops']} crops: "
                f"MAE recall {v['recall']['mae']:.3f}, FPR {v['fpr']['mae']:.4f}"
            )
        out.append(line)
    return out


@shadow.command("run")
@click.argument("baseline", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("candidate", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--target", "target_name", default="local", show_default=True,
              help="local, arm64-emu or a name in targets.toml")  # fmt: skip
@click.option(
    "--targets",
    "targets_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="targets.toml [default: $EDGEPED_TARGETS, else ./targets.toml]",
)
@click.option("--core", help="emulated core: a53, a72, a76")
@click.option("--crops", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="replay .npz (images, metadata, optional crop_id, label, tag/*)")  # fmt: skip
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="or a dataset: its --split becomes the replay set")  # fmt: skip
@click.option("--split", default="test", show_default=True, help="dataset split to replay")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="N crops sampled across the split's drives (seeded by --seed), not its first N",
)
@click.option("--seed", default=0, show_default=True, help="seed of the --limit sample")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="folder for the log, shadow.json/.md and the plots",
)
@click.option("--repeat", default=1, show_default=True, help="passes over the crops")
@click.option("--fsync-every", default=1, show_default=True, help="log records per fsync")
@click.option("--cost-runs", default=50, show_default=True,
              help="baseline-alone steps timed as the cost reference")  # fmt: skip
@click.option(
    "--timeout",
    "timeout_s",
    default=1800.0,
    show_default=True,
    help="seconds before the run is stopped (also on the board)",
)
@_report_options
@overwrite_option
def shadow_run(baseline, candidate, target_name, targets_file, core, crops, data_dir, split,
               limit, seed, out_dir, repeat, fsync_every, cost_runs, timeout_s, min_slice_crops,
               gallery, overwrite) -> None:  # fmt: skip
    """Push BASELINE and CANDIDATE to a target, run both on every crop, pull the log, report."""
    from edgeped.outdir import claim_into
    from edgeped.rollout.shadow import ShadowOptions, run_shadow
    from edgeped.targets import resolve_target

    options = ShadowOptions(repeat=repeat, fsync_every=fsync_every, cost_runs=cost_runs,
                            timeout_s=timeout_s)  # fmt: skip
    claim = claim_into(out_dir, "shadow", overwrite=overwrite)
    result = run_shadow(
        baseline, candidate, resolve_target(target_name, targets_file, core), out_dir,
        crops=crops, data_dir=data_dir, split=split, limit=limit, seed=seed, options=options,
        config=_config(min_slice_crops, gallery), progress=log,
    )  # fmt: skip
    claim.done()
    _render(result.report, result.files)
    cost = result.report.cost or {}
    if cost:
        click.echo(
            f"shadow cost: +{cost['added_ms_per_crop_p50']:.3f} ms/crop (p50), "
            f"+{cost['added_peak_rss_mb'] or 0:.1f} MB peak RSS"
            + (" [emulated]" if result.report.source.get("emulated") else "")
        )


@shadow.command("report")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="where to write [default: beside the log, or RUN/shadow]")  # fmt: skip
@click.option("--baseline", help="offline from a run: the baseline model's name")
@click.option("--candidate", help="offline from a run: the candidate model's name")
@click.option("--candidate-run", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="the candidate's run directory, if not SOURCE")  # fmt: skip
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="dataset for slice tags and gallery crops [default: the run's]")  # fmt: skip
@_report_options
@overwrite_option
def shadow_report(source, out_dir, baseline, candidate, candidate_run, data_dir, min_slice_crops,
                  gallery, overwrite) -> None:  # fmt: skip
    """Report on SOURCE: a shadow log, a `shadow run` directory, or an evaluated run (offline)."""
    from edgeped.outdir import claim_into
    from edgeped.rollout.shadow import build_report

    default = source.parent if source.is_file() else (
        source if (source / "shadow_log.jsonl").is_file() else source / "shadow")  # fmt: skip
    claim = claim_into(out_dir, "shadow", overwrite=overwrite, default=default)
    out_dir = claim.path
    report, files = build_report(
        source, out_dir, baseline=baseline, candidate=candidate, candidate_run=candidate_run,
        data_dir=data_dir, config=_config(min_slice_crops, gallery),
    )  # fmt: skip
    claim.done()
    _render(report, files)
