"""Renderings of a Verdict: a console table, a Markdown summary and JUnit XML for CI."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from edgeped.fileio import write_json_atomic, write_text_atomic
from edgeped.gate.verdict import BudgetResult, Status, Verdict

_OPS = {"min": ">=", "max": "<=", "equal": "=="}
_EXIT_MEANING = {
    0: "PASS: every budget holds",
    1: "FAIL: a budget is not met",
    2: "INCOMPLETE: a measurement is missing, stale or unreadable (fails closed)",
}


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
            "status": r.status.value.upper(),
            "source": _source(r),
            "note": r.note,
        }
        for r in verdict.results
    ]


def headline(verdict: Verdict) -> str:
    counts = ", ".join(f"{n} {k}" for k, n in verdict.counts().items() if n)
    return (
        f"gate {verdict.model} ({str(verdict.model_sha256)[:12]}) in {verdict.run_dir}: "
        f"{_EXIT_MEANING[verdict.exit_code]} [{counts}] -> exit {verdict.exit_code}"
    )


def console_table(verdict: Verdict):
    """A rich Table of the verdict, coloured by status."""
    from rich.table import Table
    from rich.text import Text

    colours = {Status.PASS: "green", Status.FAIL: "red", Status.SKIPPED: "dim"}
    table = Table(title=f"budgets: {verdict.model}", show_lines=False)
    for column in ("budget", "measured", "limit", "margin", "status", "source"):
        table.add_column(column, overflow="fold", no_wrap=column in ("budget", "status", "margin"))
    for r, row in zip(verdict.results, rows(verdict), strict=True):
        style = colours.get(r.status, "yellow")
        # Text, not markup: budget names such as slice_recall[lighting=night] hold brackets.
        table.add_row(
            Text(row["budget"]),
            Text(row["measured"]),
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
        f"## {icon} edgeped gate: `{verdict.model}`",
        "",
        f"{_EXIT_MEANING[verdict.exit_code]} (exit {verdict.exit_code})",
        "",
        f"- run directory: `{verdict.run_dir}`",
        f"- model sha256: `{verdict.model_sha256}`",
    ]
    if verdict.baseline:
        lines.append(f"- baseline: `{verdict.baseline}`")
    lines += [
        "",
        "| budget | measured | limit | margin | status | source | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows(verdict):
        cells = [
            row[k].replace("|", "\\|")
            for k in ("budget", "measured", "limit", "margin", "status", "source", "note")
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
