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
        ({"corruptions": ("snow",)}, "corruptions"),
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
    assert rows["quality.mean_corrupted_recall"].measured == pytest.approx(0.81)
    assert rows["quality.mean_corrupted_recall"].status == Status.PASS
    assert (
        _gate(_suite_file(0.8), {"min_mean_corrupted_recall": 0.82})[
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

    with pytest.raises(ValueError, match="snow"):
        QualityBudgets(min_corrupted_recall={"snow": 0.5})
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
    bad = runner.invoke(main, ["eval", str(run), "--corruptions", "snow"])
    assert bad.exit_code == 65 and "unknown corruption" in bad.output
    assert not (run / "robustness.json").exists()
    ok = runner.invoke(main, ["eval", str(run), "--corruptions", "fog,jpeg", "--severities", "5"])
    assert ok.exit_code == 0, ok.output
    report = json.loads((run / "robustness.json").read_text())
    assert report["config"]["corruptions"] == ["fog", "jpeg"]
    assert report["config"]["severities"] == [5]
    assert "mean corrupted" in ok.output
