"""benchmarks/training/shipping_rules.py: replaying shipping rules over finished runs' metrics.json."""

from __future__ import annotations

import json

import pytest

from benchmarks.training import shipping_rules as sr


def _model(mode, val_tp, val_fpr, test_recall, test_fpr):
    return {
        "model": {"mode": mode, "size_bytes": 1000},
        "both_constraints_hold_on_val": True,
        "threshold": {"tp": val_tp, "recall": val_tp / 100, "fpr": val_fpr, "threshold": 0.5},
        "test": {"recall": test_recall, "fpr": test_fpr},
        "test_ci95": {"by_drive_bootstrap": {"recall": [test_recall - 0.05, test_recall]}},
    }


def _report(ptq_tp, qat_tp, ptq_test, qat_test):
    return {
        "config": {"min_recall": 0.9, "max_fpr": 0.01},
        "models": {
            "student_float32": _model("float32", 99, 0.005, 0.99, 0.005),
            sr.PTQ: _model("ptq_int8", ptq_tp, 0.009, *ptq_test),
            sr.QAT: _model("qat_int8", qat_tp, 0.009, *qat_test),
        },
    }


@pytest.fixture
def work(tmp_path):
    reports = {
        # PTQ leads by 1 val positive and lands over the FPR limit on test.
        "a/s0": _report(91, 90, (0.95, 0.014), (0.93, 0.008)),
        # PTQ leads by exactly 4: the margin rules with 2 and 4 ship it, 6 does not.
        "a/s1": _report(94, 90, (0.96, 0.009), (0.90, 0.006)),
        # QAT leads.
        "b/s0": _report(88, 92, (0.89, 0.005), (0.94, 0.012)),
    }
    for run, report in reports.items():
        (tmp_path / run).mkdir(parents=True)
        (tmp_path / run / "metrics.json").write_text(json.dumps(report))
    (tmp_path / "alias").symlink_to(tmp_path / "a")  # counted once
    return tmp_path


def test_each_rule_ships_what_it_says_and_test_figures_follow(work):
    runs = sr.load_runs(work)
    assert [r for r, _ in runs] == ["a/s0", "a/s1", "b/s0"]
    rows = {r["rule"]: r for r in sr.replay(runs)}
    today = rows["edgeped today (highest val recall)"]
    assert today["ptq_shipped"] == 2 and today["runs_over_fpr_limit"] == 2
    assert today["test_recall_mean"] == pytest.approx((0.95 + 0.96 + 0.94) / 3)
    assert rows["always QAT"]["ptq_shipped"] == 0
    assert rows["always QAT"]["test_fpr_mean"] == pytest.approx((0.008 + 0.006 + 0.012) / 3)
    assert rows["always PTQ"]["runs_over_fpr_limit"] == 1
    margins = [rows[f"QAT unless PTQ leads by >= {m} val positives"] for m in sr.MARGINS]
    assert [r["ptq_shipped"] for r in margins] == [1, 1, 0]


def test_writes_json_and_markdown_and_refuses_an_empty_folder(work, tmp_path, capsys):
    out = tmp_path / "out" / "rules-x"
    assert sr.main(["--work", str(work), "--out", str(out)]) == 0
    record = json.loads(out.with_name("rules-x.json").read_text())
    assert record["runs"] == ["a/s0", "a/s1", "b/s0"] and len(record["rules"]) == 6
    assert "| always QAT | 0 |" in out.with_name("rules-x.md").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert sr.main(["--work", str(empty)]) == 2
    assert "no run with" in capsys.readouterr().err
