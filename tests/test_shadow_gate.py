"""The `shadow.*` budgets: judged from shadow.json, failing closed on missing/stale/damaged."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edgeped.fileio import sha256_file
from edgeped.gate import Budgets, Status, gate_run
from edgeped.gate.budgets import ShadowBudgets
from edgeped.rollout.shadow_log import Integrity, ShadowRecords, Side
from edgeped.rollout.shadow_render import write_report
from edgeped.rollout.shadow_report import ShadowConfig, shadow_report
from tests.test_gate import write_run


@pytest.fixture()
def run(tmp_path, device_models):
    return write_run(tmp_path / "run", device_models["int8"])


def _shadow(run, *, n=2000, new_misses=4, flips_night=0, sha=None, integrity=None, where="shadow",
            labels=None):  # fmt: skip
    """A shadow.json for the run's model: 200 baseline pedestrian calls, `new_misses` dropped."""
    b = np.zeros(n, np.int8)
    b[:200] = 1
    c = b.copy()
    c[:new_misses] = 0
    lighting = np.array(["day"] * (n - 300) + ["night"] * 250 + ["dusk"] * 50)
    night = np.flatnonzero(lighting == "night")[:flips_night]
    c[night] = 1 - c[night]
    records = ShadowRecords(
        crop_ids=np.array([f"k{i}" for i in range(n)]),
        baseline=Side(b * 0.8 + 0.1, b),
        candidate=Side(c * 0.8 + 0.1, c),
        baseline_info={"name": "student_float32", "sha256": "b" * 64, "threshold": 0.5},
        candidate_info={"name": "student_qat_int8", "threshold": 0.5,
                        "sha256": sha or sha256_file(run / "student_qat_int8.tflite")},
        source={"kind": "test"},
        tags={"lighting": lighting},
        labels=labels,
        integrity=integrity or Integrity(records=n),
    )  # fmt: skip
    report = shadow_report(records, ShadowConfig())
    return write_report(run / where, report, records)["json"]


def rows(verdict, prefix="shadow."):
    return {r.budget: r for r in verdict.results if r.budget.startswith(prefix)}


def test_no_shadow_evidence_is_skipped_unless_required(run):
    verdict = gate_run(run, Budgets())
    got = rows(verdict)
    assert {r.status for r in got.values()} == {Status.SKIPPED} and verdict.exit_code == 0
    required = replace(Budgets(), shadow=ShadowBudgets(required=True))
    verdict = gate_run(run, required)
    assert {r.status for r in rows(verdict).values()} == {Status.MISSING}
    assert verdict.exit_code == 2


def test_a_good_shadow_passes_and_each_budget_fails_alone(run):
    _shadow(run, new_misses=1)
    verdict = gate_run(run, Budgets())
    got = rows(verdict)
    assert got["shadow.flip_rate"].status is Status.PASS
    assert got["shadow.new_miss_rate"].measured == pytest.approx(1 / 200)
    assert got["shadow.slice_flip_rate[lighting=dusk]"].status is Status.SKIPPED  # 50 crops
    assert got["shadow.slice_flip_rate[lighting=night]"].status is Status.PASS
    # Night holds 250 crops but no baseline pedestrian call: its new-miss rate has no base.
    assert got["shadow.slice_new_miss_rate[lighting=night]"].status is Status.SKIPPED
    assert "min_slice_baseline_positives" in got["shadow.slice_new_miss_rate[lighting=night]"].note
    assert got["shadow.slice_new_miss_rate[lighting=day]"].status is Status.PASS
    assert verdict.exit_code == 0
    tight = replace(Budgets(), shadow=ShadowBudgets(max_new_miss_rate=0.004))
    verdict = gate_run(run, tight)
    failed = [r.budget for r in verdict.results if r.status.blocks_release]
    assert failed == ["shadow.new_miss_rate"] and verdict.exit_code == 1


def test_a_slice_over_budget_fails(run):
    _shadow(run, new_misses=0, flips_night=20)  # 8% of night crops flip, 1% overall
    failed = [r.budget for r in gate_run(run, Budgets()).results if r.status.blocks_release]
    assert failed == ["shadow.slice_flip_rate[lighting=night]"]


def test_stale_damaged_and_too_small_evidence_fail_closed(run, tmp_path):
    _shadow(run, sha="0" * 64)
    verdict = gate_run(run, Budgets())
    assert rows(verdict)["shadow.flip_rate"].status is Status.STALE and verdict.exit_code == 2
    _shadow(run, integrity=Integrity(records=2000, corrupt_lines=(7,)))
    verdict = gate_run(run, Budgets())
    assert rows(verdict)["shadow.flip_rate"].status is Status.UNREADABLE
    _shadow(run, n=600)
    verdict = gate_run(run, Budgets())
    assert rows(verdict)["shadow.flip_rate"].status is Status.MISSING
    assert "min_crops" in rows(verdict)["shadow.flip_rate"].note
    (run / "shadow" / "shadow.json").write_text("{not json")
    verdict = gate_run(run, Budgets())
    assert rows(verdict)["shadow.flip_rate"].status is Status.UNREADABLE


def test_on_labels_rejected_false_alarms_are_a_gain_not_a_failure(run):
    # The baseline's 200 pedestrian calls hold 150 pedestrians and 50 false alarms; the
    # candidate drops 40 calls, all of them false alarms (the demo's float-vs-int8 case).
    labels = np.zeros(2000, np.int64)
    labels[40:190] = 1
    _shadow(run, new_misses=40, labels=labels)
    verdict = gate_run(run, Budgets())
    got = rows(verdict)
    assert got["shadow.new_miss_rate"].status is Status.PASS
    assert got["shadow.new_miss_rate"].measured == 0.0
    assert "labels" in got["shadow.new_miss_rate"].note and "40 baseline false alarm" in (
        got["shadow.new_miss_rate"].note
    )
    assert got["shadow.flip_rate"].status is Status.PASS  # 40 flips, none harmful
    assert verdict.exit_code == 0
    # Unlabelled, the same decisions are only disagreement: 40/200 dropped calls fail.
    (run / "shadow" / "shadow.json").unlink()
    _shadow(run, new_misses=40)
    got = rows(gate_run(run, Budgets()))
    assert got["shadow.new_miss_rate"].status is Status.FAIL
    assert got["shadow.new_miss_rate"].note.split("; ")[1].startswith("disagreement (no labels)")


def test_a_labelled_shadow_that_loses_pedestrians_fails(run):
    labels = np.zeros(2000, np.int64)
    labels[:150] = 1  # the 4 dropped calls are pedestrians
    _shadow(run, new_misses=4, labels=labels)
    got = rows(gate_run(run, Budgets()))
    assert got["shadow.new_miss_rate"].measured == pytest.approx(4 / 150)
    assert got["shadow.new_miss_rate"].status is Status.FAIL


def test_a_sibling_models_shadow_is_named_so_with_a_command_that_works(run):
    import shlex

    from click.testing import CliRunner

    from edgeped.cli import main

    sibling = run / "student_ptq_int8.tflite"
    sibling.write_bytes(b"another model of the same run")
    _shadow(run, sha=sha256_file(sibling))
    required = replace(Budgets(), shadow=ShadowBudgets(required=True))
    got = rows(gate_run(run, required))
    row = got["shadow.flip_rate"]
    assert row.status is Status.MISSING, row
    assert "sibling's evidence" in row.note and "student_ptq_int8" in row.note
    # Evidence for no model of this run is still stale.
    sibling.unlink()
    assert rows(gate_run(run, required))["shadow.flip_rate"].status is Status.STALE
    # The fix names the run's real path; pasted, it parses as a command.
    fix = row.note.split("run `", 1)[1].split("`", 1)[0]
    argv = shlex.split(fix)
    assert argv[:3] == ["edgeped", "shadow", "report"] and argv[3] == str(run)
    assert CliRunner().invoke(main, [*argv[1:], "--help"]).exit_code == 0


def test_a_baseline_that_found_no_pedestrian_leaves_none_to_lose(run):
    labels = np.zeros(2000, np.int64)
    labels[1500:1600] = 1  # pedestrians the baseline's 200 calls all miss
    _shadow(run, new_misses=4, labels=labels)
    got = rows(gate_run(run, Budgets()))
    assert got["shadow.new_miss_rate"].measured == 0.0
    assert got["shadow.new_miss_rate"].status is Status.PASS
    assert "0/0" in got["shadow.new_miss_rate"].note
