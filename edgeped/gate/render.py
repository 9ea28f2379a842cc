"""Renderings of a Verdict: a console table, a Markdown summary and JUnit XML for CI."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from edgeped.errors import ExitCode
from edgeped.fileio import write_json_atomic, write_text_atomic
from edgeped.gate.verdict import BudgetResult, Status, Verdict

_OPS = {"min": ">=", "max": "<=", "equal": "=="}
_EXIT_MEANING = {
    ExitCode.OK: "PASS: every budget holds",
    ExitCode.FAILED: "FAIL: a budget is not met",
    ExitCode.EVIDENCE_MISSING: "INCOMPLETE: a measurement is missing, stale or unreadable "
    "(fails closed)",
}
# Worst first: what blocks a release, then what does not.
_COUNT_ORDER = (
    Status.FAIL,
    Status.MISSING,
    Status.STALE,
    Status.UNREADABLE,
    Status.PASS,
    Status.SKIPPED,
)
WITHIN_INTERVAL_MARK = "FAIL (within 95% interval)"


def counts_line(verdict: Verdict) -> str:
    """Counts first, worst first: ``1 FAIL · 3 MISSING · 15 PASS``."""
    counts = verdict.counts()
    parts = [f"{counts[s.value]} {s.value.upper()}" for s in _COUNT_ORDER if counts[s.value]]
    return " · ".join(parts) or "no budgets"


def _status(r: BudgetResult) -> str:
    return WITHIN_INTERVAL_MARK if r.within_interval else r.status.value.upper()


def _interval(r: BudgetResult) -> str:
    if r.interval is None:
        return ""
    return f"[{fmt(r.interval[0])}, {fmt(r.interval[1])}]"


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _source(r: BudgetResult) -> str:
    if not r.source:
        return "-"
    return (
        f"{os.path.basename(r.source)} ({r.source_sha256[:12]})"
        if r.source_sha256
        else os.path.basename(r.source)
    )


def rows(verdict: Verdict) -> list[dict[str, str]]:
    """One display row per budget: budget, measured, limit, margin, status, source, note."""
    return [
        {
            "budget": r.budget,
            "measured": f"{fmt(r.measured)} {r.unit}".strip(),
            "limit": f"{_OPS[r.direction]} {fmt(r.limit)} {r.unit}".strip(),
            "margin": fmt(r.margin),
            "status": _status(r),
            "interval": _interval(r),
            "source": _source(r),
            "note": (
                f"limit {fmt(r.limit)} lies inside the measurement's 95% interval "
                f"{_interval(r)}: this test set cannot tell the miss from noise; {r.note}"
                if r.within_interval
                else r.note
            ),
        }
        for r in verdict.results
    ]


def failed_budgets(verdict: Verdict) -> list[str]:
    return [r.budget for r in verdict.results if r.status is Status.FAIL]


def headline(verdict: Verdict) -> str:
    """``1 FAIL · 3 MISSING · 15 PASS``, then what the exit code means and which budgets failed."""
    failed = failed_budgets(verdict)
    also = f"; failed: {', '.join(failed)}" if failed else ""
    return (
        f"{counts_line(verdict)}: gate {verdict.model} ({str(verdict.model_sha256)[:12]}) -> "
        f"exit {verdict.exit_code}, {_EXIT_MEANING[ExitCode(verdict.exit_code)]}{also}"
    )


def console_table(verdict: Verdict):
    """A rich Table of the verdict, coloured by status."""
    from rich.table import Table
    from rich.text import Text

    colours = {Status.PASS: "green", Status.FAIL: "red", Status.SKIPPED: "dim"}
    table = Table(
        title=f"budgets: {verdict.model}: {counts_line(verdict)}",
        title_justify="left",  # centred titles pad the line with trailing spaces
        show_lines=False,
    )
    for column in ("budget", "measured", "95% interval", "limit", "margin", "status", "source"):
        table.add_column(column, overflow="fold", no_wrap=column in ("budget", "status", "margin"))
    for r, row in zip(verdict.results, rows(verdict), strict=True):
        style = colours.get(r.status, "yellow")
        # Text, not markup: budget names such as slice_recall[lighting=night] hold brackets.
        table.add_row(
            Text(row["budget"]),
            Text(row["measured"]),
            Text(row["interval"]),
            Text(row["limit"]),
            Text(row["margin"]),
            Text(row["status"], style=style),
            Text(row["source"]),
        )
    return table


def judged_and_missing(verdict: Verdict) -> tuple[list[str], list[str]]:
    """Budgets judged (pass or fail) and budgets lacking a usable measurement."""
    judged = [r.budget for r in verdict.results if r.status in (Status.PASS, Status.FAIL)]
    missing = [
        f"{r.budget} ({r.status.value})" for r in verdict.results if r.status.is_evidence_problem
    ]
    return judged, missing


def problems(verdict: Verdict) -> list[str]:
    """One line per blocking row: what is wrong and how to fix it."""
    return [
        f"{row['status']} {r.budget}: measured {row['measured']}, limit {row['limit']}; {r.note}"
        for r, row in zip(verdict.results, rows(verdict), strict=True)
        if r.status.blocks_release
    ]


def markdown(verdict: Verdict) -> str:
    """The Markdown summary a CI job posts (e.g. to $GITHUB_STEP_SUMMARY)."""
    icon = {0: "✅", 1: "❌", 2: "⚠️"}[verdict.exit_code]
    lines = [
        f"## {icon} edgeped gate: `{verdict.model}`: {counts_line(verdict)}",
        "",
        f"{_EXIT_MEANING[ExitCode(verdict.exit_code)]} (exit {verdict.exit_code})",
        "",
    ]
    for r in verdict.results:
        if r.status is Status.FAIL:
            row = rows(Verdict(verdict.run_dir, verdict.model, verdict.model_sha256, (r,)))[0]
            flag = " (inside its own 95% interval)" if r.within_interval else ""
            lines.append(
                f"- **FAILED** `{r.budget}`{flag}: measured "
                + " ".join(x for x in (row["measured"], row["interval"]) if x)
                + f", limit {row['limit']}"
            )
    if failed_budgets(verdict):
        lines.append("")
    lines += [
        f"- run directory: `{verdict.run_dir}`",
        f"- model sha256: `{verdict.model_sha256}`",
    ]
    if verdict.baseline:
        lines.append(f"- baseline: `{verdict.baseline}`")
    lines += [
        "",
        "| budget | measured | 95% interval | limit | margin | status | source | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows(verdict):
        cells = [
            row[k].replace("|", "\\|")
            for k in (
                "budget",
                "measured",
                "interval",
                "limit",
                "margin",
                "status",
                "source",
                "note",
            )
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def junit_xml(verdict: Verdict) -> str:
    """JUnit XML: one testcase per budget; failures for FAIL, errors for missing evidence."""
    counts = verdict.counts()
    suite = ET.Element(
        "testsuite",
        {
            "name": f"edgeped.gate.{verdict.model}",
            "tests": str(len(verdict.results)),
            "failures": str(counts["fail"]),
            "errors": str(counts["missing"] + counts["stale"] + counts["unreadable"]),
            "skipped": str(counts["skipped"]),
        },
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_dir", verdict.run_dir),
        ("model_sha256", verdict.model_sha256),
        ("exit_code", verdict.exit_code),
    ):
        ET.SubElement(props, "property", {"name": name, "value": str(value)})
    for r, row in zip(verdict.results, rows(verdict), strict=True):
        case = ET.SubElement(
            suite, "testcase", {"classname": f"gate.{r.budget.split('.')[0]}", "name": r.budget}
        )
        message = (
            f"measured {row['measured']}, limit {row['limit']}, margin {row['margin']}; "
            f"source {row['source']}; {r.note}"
        )
        if r.status is Status.FAIL:
            ET.SubElement(case, "failure", {"message": message, "type": "budget"}).text = message
        elif r.status.is_evidence_problem:
            ET.SubElement(case, "error", {"message": r.note, "type": r.status.value}).text = message
        elif r.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", {"message": r.note})
        else:
            ET.SubElement(case, "system-out").text = message
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_reports(verdict: Verdict, *, json_path=None, junit_path=None, summary_path=None) -> list:
    """Writes the requested reports atomically; returns the paths written."""
    written = []
    if json_path:
        write_json_atomic(json_path, verdict.to_dict())
        written.append(json_path)
    if junit_path:
        write_text_atomic(junit_path, junit_xml(verdict))
        written.append(junit_path)
    if summary_path:
        write_text_atomic(summary_path, markdown(verdict))
        written.append(summary_path)
    return written
