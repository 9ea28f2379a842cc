"""The gate, readable: counts first, failures named, a miss inside its own interval flagged."""

from edgeped.gate.render import counts_line, headline, markdown, rows
from edgeped.gate.verdict import BudgetResult, Status, Verdict


def _verdict():
    return Verdict(
        "runs/r",
        "student_qat_int8",
        "ab" * 32,
        (
            BudgetResult("quality.fpr", Status.FAIL, "max", 0.01, 0.0104, interval=(0.0079, 0.013)),
            BudgetResult("quality.recall", Status.FAIL, "min", 0.92, 0.80, interval=(0.75, 0.86)),
            BudgetResult("runtime.invoke_ms_p95", Status.MISSING, "max", 12.0, unit="ms"),
            BudgetResult("quality.auc_pr", Status.PASS, "min", 0.7, 0.91, interval=(0.88, 0.95)),
            BudgetResult("cost.size_mb", Status.PASS, "max", 25.0, 0.08, unit="MiB"),
        ),
    )


def test_within_interval_only_for_a_fail_whose_limit_is_inside():
    fpr, recall, missing, auc, size = _verdict().results
    assert fpr.within_interval and not recall.within_interval
    assert not auc.within_interval and not missing.within_interval and not size.within_interval
    assert fpr.to_dict()["within_interval"] is True and fpr.to_dict()["interval"] == [0.0079, 0.013]


def test_counts_come_first_worst_first():
    verdict = _verdict()
    assert counts_line(verdict) == "2 FAIL · 1 MISSING · 2 PASS"
    line = headline(verdict)
    assert line.startswith("2 FAIL · 1 MISSING · 2 PASS: ") and "exit 2" in line
    assert "failed: quality.fpr, quality.recall" in line


def test_markdown_names_failures_even_when_incomplete():
    text = markdown(_verdict())
    head = text.split("| budget |")[0]
    assert head.startswith("## ⚠️ edgeped gate: `student_qat_int8`: 2 FAIL · 1 MISSING · 2 PASS")
    assert "INCOMPLETE" in head
    assert (
        "- **FAILED** `quality.fpr` (inside its own 95% interval): measured 0.0104 [0.0079, 0.013]"
        in head
    )
    assert "- **FAILED** `quality.recall`: measured 0.8 [0.75, 0.86], limit >= 0.92" in head
    statuses = {r["budget"]: r["status"] for r in rows(_verdict())}
    assert statuses["quality.fpr"] == "FAIL (within 95% interval)"
    assert statuses["quality.recall"] == "FAIL"
