"""The corruption suite over a run's .tflite models: cells, summary, float gap, outputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgeped.evaluate.robustness import (
    RobustnessConfig,
    evaluate_robustness,
    summarise,
    write_robustness,
)

QUICK = RobustnessConfig(
    corruptions=("low_light", "occlusion"),
    severities=(1, 5),
    bootstrap_resamples=20,
    auc_resamples=5,
)


@pytest.fixture(scope="module")
def robust_run(tiny_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("robust") / "run"
    shutil.copytree(tiny_run, run)
    result = evaluate_robustness(run, QUICK)
    return run, result


def test_cells_use_the_clean_val_threshold(robust_run):
    run, result = robust_run
    metrics = json.loads((run / "metrics.json").read_text())
    report = result.report
    assert set(report["models"]) == set(metrics["models"])
    for name, entry in report["models"].items():
        clean = metrics["models"][name]
        assert entry["threshold"]["threshold"] == pytest.approx(clean["threshold"]["threshold"])
        assert entry["clean"]["recall"] == pytest.approx(clean["test"]["recall"])
        assert entry["clean"]["fpr"] == pytest.approx(clean["test"]["fpr"])
        assert set(entry["corruptions"]) == {"low_light", "occlusion"}
        for cells in entry["corruptions"].values():
            assert set(cells) == {"1", "5"}
            for cell in cells.values():
                assert cell["positives"] == clean["test"]["positives"]
                assert cell["recall"] == cell["tp"] / cell["positives"]
                lo, hi = cell["ci95"]["recall_exact"]
                assert lo <= cell["recall"] <= hi
                assert cell["ci95"]["recall_by_drive"] is not None


def test_summary_is_mean_worst_and_drop(robust_run):
    _, result = robust_run
    for entry in result.report["models"].values():
        recalls = [c["recall"] for sev in entry["corruptions"].values() for c in sev.values()]
        s = entry["summary"]
        assert s["mean_corrupted_recall"] == pytest.approx(np.mean(recalls))
        assert s["worst"]["recall"] == min(recalls)
        if s["clean_recall"]:
            assert s["relative_drop"] == pytest.approx(
                (s["clean_recall"] - np.mean(recalls)) / s["clean_recall"]
            )


def test_summarise_by_hand():
    cells = {
        "fog": {
            "1": {"recall": 0.8, "fpr": 0.01, "auc_pr": 0.9},
            "5": {"recall": 0.4, "fpr": 0.03, "auc_pr": 0.5},
        },
        "rain": {
            "1": {"recall": 1.0, "fpr": 0.0, "auc_pr": 1.0},
            "5": {"recall": 0.6, "fpr": 0.02, "auc_pr": 0.7},
        },
    }
    s = summarise(0.9, cells)
    assert s["mean_corrupted_recall"] == pytest.approx(0.7)
    assert s["corrupted_recall"] == pytest.approx({"fog": 0.6, "rain": 0.8})
    assert s["worst"] == {"recall": 0.4, "corruption": "fog", "severity": 5}
    assert s["relative_drop"] == pytest.approx(0.2 / 0.9)
    assert s["mean_corrupted_fpr"] == pytest.approx(0.015)


def test_summarise_ratios_families_and_fpr_alerts_by_hand():
    cells = {
        "fog": {
            "1": {"recall": 0.9, "fpr": 0.01, "auc_pr": 0.9},
            "3": {"recall": 0.7, "fpr": 0.025, "auc_pr": 0.5},
            "5": {"recall": 0.2, "fpr": 0.03, "auc_pr": 0.5},
        },
        "rain": {
            "1": {"recall": 1.0, "fpr": 0.0, "auc_pr": 1.0},
            "3": {"recall": 0.8, "fpr": 0.0, "auc_pr": 1.0},
            "5": {"recall": 0.6, "fpr": 0.02, "auc_pr": 0.7},
        },
    }
    s = summarise(1.0, cells, {"trained": ["rain"], "held_out": ["fog"]})
    assert s["recall_ratio"] == pytest.approx(0.7)
    # The worst cell up to severity 3 (fog 5 is worse but beyond the rule's reach).
    assert s["worst_mild"]["corruption"] == "fog" and s["worst_mild"]["severity"] == 3
    assert s["worst_mild"]["recall_ratio"] == pytest.approx(0.7)
    assert s["families"]["held_out"]["recall_ratio"] == pytest.approx(0.6)
    assert s["families"]["trained"]["recall_ratio"] == pytest.approx(0.8)
    # Strictly above 2%: rain 5 at exactly 2% is not named; the worst comes first.
    assert [(a["corruption"], a["severity"]) for a in s["fpr_alerts"]] == [("fog", 5), ("fog", 3)]
    assert s["max_corrupted_fpr"] == pytest.approx(0.03)
    half = summarise(0.5, cells)
    assert half["recall_ratio"] == pytest.approx(1.4) and half["families"] == {}


def test_quick_suite_samples_the_test_split(tiny_run, tmp_path):
    from edgeped.evaluate.corruptions import CORRUPTIONS
    from edgeped.evaluate.robustness import quick_suite

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    cfg = quick_suite()
    assert cfg.suite == "quick" and cfg.severities == (1, 3, 5)
    assert cfg.corruptions == tuple(CORRUPTIONS)
    small = RobustnessConfig(
        corruptions=("fog",),
        severities=(3,),
        max_negatives=5,
        max_positives=3,
        bootstrap_resamples=20,
        auc_resamples=0,
    )
    report = evaluate_robustness(run, small).report
    cell = report["models"]["student_qat_int8"]["corruptions"]["fog"]["3"]
    assert cell["positives"] <= 6 and cell["negatives"] <= 12  # about 3 and 5, by hash
    assert report["dataset"]["test_positives_kept"].endswith(
        f"of {json.loads((run / 'metrics.json').read_text())['dataset']['test']['positives']}"
    )
    # The run's [augment] decides which families count as trained on.
    config = json.loads((run / "config.json").read_text())["config"]["augment"]
    from edgeped.evaluate.corruptions import family_split

    assert report["families"] == family_split(config, ("fog",))


def test_quantised_model_gets_its_float_gap(robust_run):
    _, result = robust_run
    gaps = {g["quantized"]: g for g in result.report["quantization_gaps"]}
    assert "student_qat_int8" in gaps
    g = gaps["student_qat_int8"]
    models = result.report["models"]
    q, f = models["student_qat_int8"], models[g["float"]]
    assert g["recall_delta"]["low_light"]["5"] == pytest.approx(
        q["corruptions"]["low_light"]["5"]["recall"] - f["corruptions"]["low_light"]["5"]["recall"]
    )
    for sev in g["decision_flip_rate"].values():
        assert all(0.0 <= v <= 1.0 for v in sev.values())


def test_gallery_holds_only_hit_to_miss_pedestrians(robust_run):
    _, result = robust_run
    thr = result.report["models"][result.gallery_model]["threshold"]["threshold"]
    assert result.gallery_model == "student_qat_int8"
    for flip in result.flips:
        assert flip.clean_score >= thr > flip.corrupted_score
        assert flip.clean_image.shape == flip.corrupted_image.shape == (128, 64, 3)
    per = {}
    for flip in result.flips:
        per[flip.corruption] = per.get(flip.corruption, 0) + 1
    assert all(v <= QUICK.gallery_per_corruption for v in per.values())


def test_outputs_are_written_and_traceable(robust_run):
    run, result = robust_run
    paths = write_robustness(run, result)
    report = json.loads(paths["json"].read_text())
    assert report["kind"] == "edgeped.robustness"
    for name, entry in report["models"].items():
        card = json.loads((run / f"{name}.card.json").read_text())
        assert entry["model"]["sha256"] == card["model"]["sha256"]
    for key in ("severity", "flips"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = paths["report"].read_text()
    assert "student_qat_int8" in text and "low_light" in text


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"corruptions": ("hail",)}, "corruptions"),
        ({"suite": "medium"}, "suite"),
        ({"max_positives": -1}, "max_positives"),
        ({"corruptions": ()}, "corruptions"),
        ({"severities": (0, 1)}, "severities"),
        ({"max_fpr": 0.0}, "max_fpr"),
        ({"bootstrap_resamples": 2}, "bootstrap_resamples"),
    ],
)
def test_config_names_the_bad_field(changes, field):
    with pytest.raises(ValueError, match=field):
        RobustnessConfig(**changes)


def test_config_round_trips():
    cfg = RobustnessConfig(corruptions=("fog", "rain"), severities=(5, 1, 1))
    assert cfg.severities == (1, 5)
    assert (
        RobustnessConfig(
            **{
                **cfg.to_dict(),
                "corruptions": tuple(cfg.to_dict()["corruptions"]),
                "severities": tuple(cfg.to_dict()["severities"]),
            }
        )
        == cfg
    )


# --- the gate's robustness budgets -------------------------------------------------------


def _gate(robustness, quality, sha="abc"):
    from edgeped.gate.budgets import Budgets, QualityBudgets
    from edgeped.gate.checks.robustness import corrupted_recall
    from edgeped.gate.evidence import Evidence, ModelFile, Source

    ev = Evidence(
        run_dir="run",
        model="student_qat_int8",
        model_file=ModelFile("run/student_qat_int8.tflite", sha, 100),
        card=Source("card", problem="not needed", missing=True),
        metrics=Source("metrics", problem="not needed", missing=True),
        robustness=robustness,
    )
    rows = corrupted_recall(Budgets(quality=QualityBudgets(**quality)), ev)
    return {r.budget: r for r in rows}


def _suite_file(recall=0.8, sha="abc", drop=None):
    from edgeped.evaluate.corruptions import CORRUPTIONS
    from edgeped.gate.evidence import Source

    cells = {
        c: {str(s): {"recall": recall + (0.1 if c == "fog" else 0.0)} for s in range(1, 6)}
        for c in CORRUPTIONS
    }
    if drop:
        del cells[drop[0]][drop[1]]
    data = {
        "kind": "edgeped.robustness",
        "models": {"student_qat_int8": {"model": {"sha256": sha}, "corruptions": cells}},
    }
    return Source("run/robustness.json", "f" * 64, data)


def test_gate_judges_corrupted_recall_per_corruption_and_mean():
    from edgeped.gate.verdict import Status

    rows = _gate(
        _suite_file(0.8),
        {"min_corrupted_recall": {"fog": 0.85, "rain": 0.85}, "min_mean_corrupted_recall": 0.8},
    )
    assert rows["quality.corrupted_recall[fog]"].status == Status.PASS
    assert rows["quality.corrupted_recall[fog]"].measured == pytest.approx(0.9)
    assert rows["quality.corrupted_recall[rain]"].status == Status.FAIL
    from edgeped.evaluate.corruptions import CORRUPTIONS

    # fog is 0.1 above every other family: the mean over families moves by 0.1 / count.
    expected = 0.8 + 0.1 / len(CORRUPTIONS)
    assert rows["quality.mean_corrupted_recall"].measured == pytest.approx(expected)
    assert rows["quality.mean_corrupted_recall"].status == Status.PASS
    assert (
        _gate(_suite_file(0.8), {"min_mean_corrupted_recall": expected + 0.001})[
            "quality.mean_corrupted_recall"
        ].status
        == Status.FAIL
    )
    assert _gate(_suite_file(0.8), {}) == {}  # not budgeted: no rows, no evidence needed


@pytest.mark.parametrize(
    "case", ["no file", "unreadable", "other model", "partial suite", "no entry"]
)
def test_gate_robustness_budgets_fail_closed(case):
    from edgeped.gate.evidence import Source
    from edgeped.gate.verdict import Status

    source = {
        "no file": Source("run/robustness.json", problem="does not exist", missing=True),
        "unreadable": Source("run/robustness.json", "0" * 64, problem="not valid JSON"),
        "other model": _suite_file(sha="another"),
        "partial suite": _suite_file(drop=("fog", "5")),
        "no entry": Source("run/robustness.json", "0" * 64, {"kind": "edgeped.robustness"}),
    }[case]
    rows = _gate(source, {"min_corrupted_recall": {"fog": 0.1}, "min_mean_corrupted_recall": 0.1})
    assert len(rows) == 2
    for row in rows.values():
        assert row.status.blocks_release and row.status.is_evidence_problem, (case, row)
        assert "--corruptions all" in row.note or case == "other model"
        if case == "other model":
            assert row.status == Status.STALE


def test_budget_names_unknown_corruption():
    from edgeped.gate.budgets import QualityBudgets

    with pytest.raises(ValueError, match="hail"):
        QualityBudgets(min_corrupted_recall={"hail": 0.5})
    with pytest.raises(ValueError, match="min_mean_corrupted_recall"):
        QualityBudgets(min_mean_corrupted_recall=1.5)


def test_split_suites_merge_into_the_whole(tiny_run, tmp_path):
    from edgeped.errors import EdgepedError
    from edgeped.evaluate.robustness_merge import merge_reports

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    cfg = dict(severities=(1, 5), bootstrap_resamples=20, auc_resamples=5)
    whole = evaluate_robustness(run, RobustnessConfig(corruptions=("fog", "jpeg"), **cfg)).report
    parts = [
        evaluate_robustness(run, RobustnessConfig(corruptions=(c,), **cfg)).report
        for c in ("fog", "jpeg")
    ]
    merged = merge_reports(parts)
    for name, entry in whole["models"].items():
        got = merged["models"][name]
        assert got["corruptions"] == entry["corruptions"]
        assert got["summary"] == entry["summary"]
    assert merged["quantization_gaps"] == whole["quantization_gaps"]
    with pytest.raises(EdgepedError, match="two parts"):
        merge_reports([parts[0], parts[0]])


def test_eval_command_runs_the_suite(tiny_run, tmp_path):
    from click.testing import CliRunner

    from edgeped.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "robustness.json").unlink(missing_ok=True)
    runner = CliRunner()
    bad = runner.invoke(main, ["eval", str(run), "--corruptions", "hail"])
    assert bad.exit_code == 65 and "unknown corruption" in bad.output
    assert not (run / "robustness.json").exists()
    bad = runner.invoke(main, ["eval", str(run), "--corruptions", "quick", "--severities", "2"])
    assert bad.exit_code != 0 and "severities" in bad.output
    assert not (run / "robustness.json").exists()
    ok = runner.invoke(main, ["eval", str(run), "--corruptions", "fog,jpeg", "--severities", "5"])
    assert ok.exit_code == 0, ok.output
    report = json.loads((run / "robustness.json").read_text())
    assert report["config"]["corruptions"] == ["fog", "jpeg"]
    assert report["config"]["severities"] == [5]
    assert "mean corrupted" in ok.output


def test_eval_runs_the_quick_suite_by_default_and_reports_it(tiny_run, tmp_path):
    from click.testing import CliRunner

    from edgeped.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "robustness.json").unlink(missing_ok=True)
    runner = CliRunner()
    ok = runner.invoke(main, ["eval", str(run)])
    assert ok.exit_code == 0, ok.output
    report = json.loads((run / "robustness.json").read_text())
    assert report["config"]["suite"] == "quick" and report["config"]["severities"] == [1, 3, 5]
    metrics = json.loads((run / "metrics.json").read_text())
    section = metrics["robustness"]
    assert section["suite"] == "quick" and section["file"] == "robustness.json"
    assert set(section["models"]) == set(report["models"])
    for name, summary in section["models"].items():
        assert summary == report["models"][name]["summary"]
    text = (run / "report.md").read_text()
    assert "## Robustness under camera shifts" in text and "quick suite" in text
    # Opting out leaves no robustness figures: the report says the gate will fail closed.
    (run / "robustness.json").unlink()
    skipped = runner.invoke(main, ["eval", str(run), "--corruptions", "none"])
    assert skipped.exit_code == 0, skipped.output
    assert not (run / "robustness.json").exists()
    assert "robustness" not in json.loads((run / "metrics.json").read_text())
    assert "fail closed" in (run / "report.md").read_text()


# --- the relative robustness budgets ---------------------------------------------------


def _ratio_source(ratio=0.95, mild=0.85, held=0.9, fpr=0.01, alerts=(), sha="abc", drop=None):
    from edgeped.evaluate.corruptions import CORRUPTIONS
    from edgeped.gate.evidence import Source

    names = [n for n in CORRUPTIONS if n != drop]
    summary = {
        "recall_ratio": ratio,
        "worst_mild": {"recall_ratio": mild, "corruption": "fog", "severity": 3},
        "families": {"held_out": {"recall_ratio": held, "families": ["fog", "snow"]}},
        "mean_corrupted_fpr": fpr,
        "fpr_alerts": [{"corruption": c, "severity": s, "fpr": f} for c, s, f in alerts],
    }
    data = {
        "kind": "edgeped.robustness",
        "config": {"suite": "quick", "severities": [1, 3, 5]},
        "models": {
            "student_qat_int8": {
                "model": {"sha256": sha},
                "corruptions": {n: {"3": {"recall": 0.9}} for n in names},
                "summary": summary,
            }
        },
    }
    return Source("run/robustness.json", "f" * 64, data)


def _ratio_rows(source, **budgets):
    from edgeped.gate.budgets import Budgets, RobustnessBudgets
    from edgeped.gate.checks.robustness import robustness_ratios
    from edgeped.gate.evidence import Evidence, ModelFile, Source

    ev = Evidence(
        run_dir="run",
        model="student_qat_int8",
        model_file=ModelFile("run/student_qat_int8.tflite", "abc", 100),
        card=Source("card", problem="not needed", missing=True),
        metrics=Source("metrics", problem="not needed", missing=True),
        robustness=source,
    )
    rows = robustness_ratios(Budgets(robustness=RobustnessBudgets(**budgets)), ev)
    return {r.budget: r for r in rows}


def test_relative_robustness_budgets_judge_each_figure():
    from edgeped.gate.verdict import Status

    rows = _ratio_rows(_ratio_source(alerts=[("sensor_noise", 5, 0.031)]))
    assert {r: rows[r].status for r in rows} == {
        "robustness.mean_recall_ratio": Status.PASS,
        "robustness.cell_recall_ratio": Status.PASS,
        "robustness.held_out_recall_ratio": Status.PASS,
        "robustness.mean_corrupted_fpr": Status.PASS,
    }
    assert "quick suite" in rows["robustness.mean_recall_ratio"].note
    assert "sensor_noise 5 (3.1%)" in rows["robustness.mean_corrupted_fpr"].note
    assert "fog severity 3" in rows["robustness.cell_recall_ratio"].note
    failing = _ratio_rows(_ratio_source(ratio=0.89, mild=0.79, held=0.84, fpr=0.021))
    assert all(r.status == Status.FAIL for r in failing.values()), failing
    assert failing["robustness.mean_recall_ratio"].measured == pytest.approx(0.89)


@pytest.mark.parametrize("case", ["no file", "other model", "family missing", "older eval"])
def test_relative_robustness_budgets_fail_closed(case):
    from edgeped.gate.evidence import Source
    from edgeped.gate.verdict import Status

    source = {
        "no file": Source("run/robustness.json", problem="does not exist", missing=True),
        "other model": _ratio_source(sha="another"),
        "family missing": _ratio_source(drop="snow"),
        "older eval": _ratio_source(),
    }[case]
    if case == "older eval":
        del source.data["models"]["student_qat_int8"]["summary"]["recall_ratio"]
    rows = _ratio_rows(source)
    assert len(rows) == 4
    for row in rows.values():
        assert row.status.blocks_release and row.status.is_evidence_problem, (case, row)
        if case == "other model":
            assert row.status == Status.STALE
        if case == "family missing":
            assert "snow" in row.note


def test_a_model_with_no_clean_recall_fails_the_ratio_budgets():
    from edgeped.gate.verdict import Status

    source = _ratio_source()
    summary = source.data["models"]["student_qat_int8"]["summary"]
    summary.update(recall_ratio=None, clean_recall=0.0)
    summary["worst_mild"]["recall_ratio"] = None
    summary["families"]["held_out"]["recall_ratio"] = None
    rows = _ratio_rows(source)
    for name in ("mean_recall_ratio", "cell_recall_ratio", "held_out_recall_ratio"):
        row = rows[f"robustness.{name}"]
        assert row.status == Status.FAIL and "clean recall is 0" in row.note, row


def test_relative_robustness_budgets_can_be_made_optional():
    from edgeped.gate.evidence import Source
    from edgeped.gate.verdict import Status

    none = Source("run/robustness.json", problem="does not exist", missing=True)
    for absent in (None, none):
        rows = _ratio_rows(absent, required=False)
        assert all(r.status == Status.SKIPPED for r in rows.values())
    # Present evidence is judged even when not required.
    assert all(
        r.status == Status.PASS for r in _ratio_rows(_ratio_source(), required=False).values()
    )
    assert all(r.status.blocks_release for r in _ratio_rows(none).values())
