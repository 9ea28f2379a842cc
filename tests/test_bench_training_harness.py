"""benchmarks/training and benchmarks/robustness on the harness: every result they write carries
exactly the harness provenance keys and, by default, a name of the harness scheme in its topic
folder; they import without sys.path edits and find no results folder of their own."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import harness
from benchmarks.robustness import fleet_night, fleet_night_trained
from benchmarks.robustness import robustness_tables as rt
from benchmarks.training import bench_real_data as brd
from benchmarks.training import record_run, shipping_rules, train_experiments

FOLDERS = [harness.BENCHMARKS / "training", harness.BENCHMARKS / "robustness"]
PROVENANCE = set(harness.PROVENANCE_KEYS)
FAMILIES = {"fog": "held_out", "rain": "trained"}


@pytest.fixture
def results(tmp_path, monkeypatch):
    """Default result paths land in tmp_path/results/<topic>/ instead of the repository's."""
    root = tmp_path / "results"
    monkeypatch.setattr(harness, "RESULTS", root)
    return root


def _only_result(folder: Path, ext: str = "json") -> Path:
    found = sorted(folder.glob(f"*.{ext}"))
    assert len(found) == 1, found
    assert harness.RESULT_NAME.match(found[0].name), found[0].name
    return found[0]


def _provenance_and(record: dict, keys: set[str]) -> None:
    assert set(record) == PROVENANCE | keys
    assert record["kind"].startswith("edgeped.benchmark.")
    assert None not in record["loadavg_before_after"]  # finished


# --- fake evaluated runs (the fields the scripts read, nothing else) ---------------------------


def _cells(recall: float) -> dict:
    return {
        str(s): {"recall": recall - 0.05 * s, "fpr": 0.01, "ci95": {"recall_by_drive": [0, 1]}}
        for s in range(1, 6)
    }


def _robustness(model: str, clean: float) -> dict:
    corruptions = {n: _cells(clean) for n in FAMILIES}
    summary = {
        "clean_recall": clean,
        "recall_ratio": 0.8,
        "mean_corrupted_recall": 0.8 * clean,
        "mean_corrupted_recall_ci95_by_drive": [0.7, 0.8],
        "worst_mild": {"recall_ratio": 0.7, "corruption": "fog", "severity": 3},
        "worst": {"recall": 0.6, "corruption": "fog", "severity": 5},
        "families": {"held_out": {"recall_ratio": 0.9}, "trained": {"recall_ratio": 0.85}},
        "mean_corrupted_fpr": 0.012,
        "relative_drop": 0.2,
        "fpr_alerts": [],
        "corrupted_recall": {n: 0.8 * clean for n in FAMILIES},
    }
    return {
        "config": {"suite": "full", "severities": [1, 2, 3, 4, 5], "max_fpr": 0.01},
        "dataset": {"test": {"crops": 100, "positives": 20}},
        "families": {
            k: [n for n, f in FAMILIES.items() if f == k] for k in ("held_out", "trained")
        },
        "models": {
            model: {
                "summary": summary,
                "clean": {"fpr": 0.01, "ci95": {"recall_by_drive": [0.8, 0.95]}},
                "corruptions": corruptions,
            }
        },
    }


def _run(folder: Path, clean: float, model: str = brd.HEADLINE) -> Path:
    """An evaluated run as bench_real_data leaves it, full-suite robustness.json included."""
    folder.mkdir(parents=True)
    test = {"recall": clean, "fpr": 0.008, "auc_pr": 0.97, "tp": 18, "positives": 20}
    entry = {
        "test": {**test, "roc_auc": 0.99},
        "test_ci95": {"recall_exact": [0.7, 0.99], "fpr_exact": [0.0, 0.02]},
        "threshold": {"threshold": 0.5, "tp": 18},
        "calibration": {"test_ece_raw": 0.02, "test_ece_calibrated": 0.01},
        "model": {"size_bytes": 80_000, "parameters": 20_000},
    }
    metrics = {
        "models": {model: entry, "student_float32": {"test": test}},
        "comparisons": [
            {
                "quantized": model,
                "float": "student_float32",
                "delta": {"recall": 0.0, "auc_pr": -0.001},
                "flips": 1,
            }
        ],
        "shipping": {"model": model},
        "test_scores": {"file": "test_scores.npz"},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "robustness.json").write_text(json.dumps(_robustness(model, clean)))
    (folder / "bench_train_seconds.json").write_text(json.dumps({"train_seconds": 12.5}))
    stages = [{"name": "student", "epochs": 3, "seconds": 10.0}]
    (folder / "train_log.json").write_text(json.dumps({"stages": stages}))
    student = {"architecture": "vgg", "width": 0.25, "depth": 1}
    (folder / "config.json").write_text(json.dumps({"config": {"student": student}}))
    labels = np.array([1] * 5 + [0] * 200)
    scores = np.concatenate([np.linspace(0.6, 0.99, 5), np.linspace(0.0, 0.5, 200)])
    np.savez(folder / "test_scores.npz", **{"label": labels, f"score/{model}": scores})
    return folder


# --- robustness_tables -------------------------------------------------------------------------


def test_study_writes_the_harness_keys_under_the_scheme(tmp_path, results, capsys):
    runs = [_run(tmp_path / f"robust/s{i}", 0.9 + 0.02 * i) for i in range(2)]
    assert rt.main(["study", f"robust={runs[0]},{runs[1]}", "--tag", "pfd"]) == 0
    out = _only_result(results / "robustness")
    assert out.name.startswith("study-") and out.stem.endswith("-pfd")
    record = json.loads(out.read_text())
    _provenance_and(record, {"variants"})
    assert record["kind"] == "edgeped.benchmark.robustness_study"
    assert record["command"].endswith("--tag pfd")
    summary = record["variants"]["robust"]["summary"]
    assert summary["clean_recall"]["values"] == pytest.approx([0.9, 0.92])
    assert out.with_suffix(".png").is_file()
    assert "| robust | 2 |" in out.with_suffix(".md").read_text()
    assert "| robust | 2 |" in capsys.readouterr().out


def test_table_and_augment_write_the_harness_keys(tmp_path, results):
    run = _run(tmp_path / "run", 0.9)
    assert rt.main(["table", f"run={run / 'robustness.json'}", "--tag", "pfd-default"]) == 0
    out = _only_result(results / "robustness")
    assert out.name.startswith("robustness-") and out.stem.endswith("-pfd-default")
    record = json.loads(out.read_text())
    _provenance_and(record, {"sources"})
    assert record["sources"]["run"]["models"][brd.HEADLINE]["clean_recall"] == 0.9

    # A pair of models scored on the same drives; --out keeps working.
    report = _robustness("on", 0.9)
    report["models"]["off"] = report["models"]["on"]
    report["corruptions"] = {
        n: {"related_augmentation": f == "trained"} for n, f in FAMILIES.items()
    }
    by_drive = {
        "drives": ["d0", "d1"],
        "positives": [10, 10],
        "clean_tp": [9, 8],
        "tp": {f"{n}/{s}": [7, 6] for n in FAMILIES for s in range(1, 6)},
    }
    report["models"]["on"]["by_drive"] = by_drive
    source = tmp_path / "augment.json"
    source.write_text(json.dumps(report))
    stem = tmp_path / "out" / "augment-x"
    assert (
        rt.main(["augment", str(source), "--pair", "seed=0,on=on,off=off", "--out", str(stem)]) == 0
    )
    record = json.loads(stem.with_suffix(".json").read_text())
    _provenance_and(record, {"source", "related", "held_out", "pairs"})
    assert record["pairs"][0]["groups"]["clean"]["difference"] == 0.0


def test_jpeg_result_extends_the_provenance_record():
    rows = {"numpy DCT (before)": {str(s): 0.9 for s in range(1, 6)}}
    record, md = rt.jpeg_result("RUN", "m", rows, harness.finish(harness.provenance("x", [])))
    _provenance_and(record, {"run", "model", "recall"})
    assert "| numpy DCT (before) | 0.900 |" in md


# --- training ----------------------------------------------------------------------------------


def test_bench_real_data_aggregates_reused_runs_into_a_harness_record(tmp_path, results):
    # Finished runs are reused: nothing is trained, converted or evaluated here.
    _run(tmp_path / "work/pfd/vgg-w0.25/s0", 0.9)
    _run(tmp_path / "work/pfd/vgg-w0.25/s1", 0.8)
    argv = ["--dataset", "pfd=DATA", "--work", str(tmp_path / "work"), "--variants", "vgg-w0.25"]
    assert brd.main([*argv, "--seeds", "0,1", "--no-bench"]) == 0
    out = _only_result(results / "training")
    assert out == brd.default_out(["pfd"])
    assert out.name.startswith("real-data-") and out.stem.endswith("-pfd")
    record = json.loads(out.read_text())
    _provenance_and(record, {"headline_model", "threshold_rule", "rows"})
    assert record["kind"] == "edgeped.benchmark.real_data"
    row = record["rows"][0]
    assert row["summary"]["int8_recall"]["mean"] == pytest.approx(0.85)
    assert row["student"]["architecture"] == "vgg"
    assert "| pfd | vgg-w0.25 | 2 |" in out.with_suffix(".md").read_text()


def test_shipping_rules_writes_the_harness_keys_under_the_work_folders_name(tmp_path, results):
    def model(mode: str, val_tp: int) -> dict:
        return {
            "model": {"mode": mode, "size_bytes": 1000},
            "both_constraints_hold_on_val": True,
            "threshold": {"tp": val_tp, "recall": val_tp / 100, "fpr": 0.009},
            "test": {"recall": 0.9, "fpr": 0.008},
            "test_ci95": {"by_drive_bootstrap": {"recall": [0.85, 0.95]}},
        }

    report = {
        "config": {"min_recall": 0.9, "max_fpr": 0.01},
        "models": {
            shipping_rules.QAT: model("qat_int8", 90),
            shipping_rules.PTQ: model("ptq_int8", 91),
        },
    }
    work = tmp_path / "pfd"
    (work / "default/s0").mkdir(parents=True)
    (work / "default/s0/metrics.json").write_text(json.dumps(report))
    assert shipping_rules.main(["--work", str(work)]) == 0
    assert not results.exists()  # without --out it only prints
    assert shipping_rules.main(["--work", str(work), "--out"]) == 0
    out = _only_result(results / "training")
    assert out.name.startswith("shipping-rules-") and out.stem.endswith("-pfd")
    record = json.loads(out.read_text())
    _provenance_and(record, {"work", "runs", "rules"})
    assert record["runs"] == ["default/s0"] and record["rules"][0]["ptq_shipped"] == 1


def test_record_run_keeps_the_runs_own_versions_apart(tmp_path):
    run = _run(tmp_path / "run", 0.9)
    metrics = json.loads((run / "metrics.json").read_text())
    for entry in metrics["models"].values():
        entry.update(
            {
                "test_slices": {"lighting": {"night": {"positives": 3, "recall": 0.5}}},
                "test_ci95": {"by_drive_bootstrap": {"recall": [0.8, 0.95]}},
                "model": {"size_bytes": 1024},
            }
        )
        entry["test"] = {**entry["test"], "roc_auc": 0.99}
    metrics.update({"dataset": {"test": 20}, "tool_versions": {"edgeped": "0.0.1"}})
    (run / "metrics.json").write_text(json.dumps(metrics))
    log = {"stages": [{"name": "student", "epochs": 3, "seconds": 10.0, "best_val_auc_pr": 0.9}]}
    (run / "train_log.json").write_text(json.dumps(log))
    out = tmp_path / "training" / "fleet-20261207-x.json"
    assert record_run.main([str(run), str(out), "--description", "d", "--command", "c"]) == 0
    record = json.loads(out.read_text())
    _provenance_and(
        record,
        {"description", "commands", "dataset", "train_stages", "run_tool_versions", "models"}
        | {"comparisons"},
    )
    assert record["run_tool_versions"] == {"edgeped": "0.0.1"} and record["commands"] == ["c"]


def test_train_experiments_record_has_the_harness_keys():
    prov = harness.finish(harness.provenance("training", []))
    record = train_experiments.result_record("DATA", [], {"rows": [], "tool_versions": {}}, prov)
    _provenance_and(record, {"dataset", "commands", "rows"})
    text = train_experiments.markdown("| t |", [{"command": "edgeped eval R", "seconds": 1.0}])
    assert text.endswith("- `edgeped eval R` (1.0 s)\n")


# --- fleet night --------------------------------------------------------------------------------


def test_fleet_night_replaces_an_old_header_and_keeps_the_other_labels():
    old = {
        "runs": {"before": {"seed": 7}},
        "command": "python benchmarks/fleet_night.py",
        "date_utc": "2026-12-01T00:00:00+00:00",
        "machine": {"cores": 2},
        "versions": {"numpy": "2"},
        "edgeped_version": "0.1.0",
    }
    prov = harness.finish(harness.provenance("fleet_night", ["--label", "after"]))
    record = fleet_night.probe_record(old, "after", {"seed": 7}, prov)
    _provenance_and(record, {"description", "runs"})
    assert set(record["runs"]) == {"before", "after"} and "versions" not in record


def test_fleet_night_trained_record_has_the_harness_keys():
    cell = {
        "pedestrians": 3,
        "negatives": 9,
        "drives": 2,
        "recall": 0.5,
        "recall_ci95": [0.1, 0.9],
        "roc_auc": 0.8,
        "roc_auc_ci95": [0.6, 0.9],
    }
    table = {"student_qat_int8": {"lighting": {"night": cell}}}
    prov = harness.finish(harness.provenance("fleet_night_trained", []))
    record, md = fleet_night_trained.trained_result({"after": ("RUN", "DATA", table)}, prov)
    _provenance_and(record, {"runs"})
    assert "| after | student_qat_int8 | night | 3 / 9 (2 drives) | 0.500" in md


# --- package hygiene -------------------------------------------------------------------------------


def _modules() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in folder.glob("*.py"))


def test_no_sys_path_edits_and_no_results_folder_of_their_own():
    # Results go through benchmarks.harness; a path built from __file__ was the old
    # `HERE / "results"`, which now points inside a topic folder.
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path":
                if isinstance(node.value, ast.Name) and node.value.id == "sys":
                    found.append(f"{path.name}:{node.lineno} sys.path")
            if isinstance(node, ast.Name) and node.id == "__file__":
                found.append(f"{path.name}:{node.lineno} __file__")
    assert found == []
    assert len(_modules()) >= 11


def test_old_result_files_still_feed_the_plots(tmp_path):
    from benchmarks.training import plot_pareto

    real = harness.RESULTS / "training" / "real-data-20261202-pfd-front.json"
    cost = harness.RESULTS / "device" / "arch-cost-20261201.json"
    out = tmp_path / "pareto.png"
    assert plot_pareto.main([str(real), str(cost), "--dataset", "pfd", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000


def test_study_reuses_recorded_runs_and_tests_recipes_against_one(tmp_path, results, capsys):
    # A recipe measured before (its run folders gone) stands beside a new one from the runs an
    # earlier study recorded; Welch's test compares each figure.
    old = [_run(tmp_path / f"old/s{i}", 0.90 + 0.01 * i) for i in range(3)]
    label = "old, seeds 0-2"  # recorded labels hold commas
    argv = ["study", f"{label}={','.join(map(str, old))}", "--out", str(tmp_path / "a")]
    assert rt.main(argv) == 0
    recorded = json.loads((tmp_path / "a.json").read_text())
    new = [_run(tmp_path / f"new/s{i}", 0.97 + 0.005 * i) for i in range(3)]
    argv = ["study", f"before={tmp_path / 'a.json'}#{label}", f"after={','.join(map(str, new))}"]
    assert rt.main([*argv, "--against", "before", "--out", str(tmp_path / "b")]) == 0
    record = json.loads((tmp_path / "b.json").read_text())
    assert record["variants"]["before"]["runs"] == recorded["variants"][label]["runs"]
    # Runs and a recorded reference mix: a fourth seed beside the recorded three.
    mixed = f"more={new[0]},{tmp_path / 'a.json'}#{label}"
    assert rt.main(["study", mixed, "--out", str(tmp_path / "m")]) == 0
    more = json.loads((tmp_path / "m.json").read_text())["variants"]["more"]["runs"]
    assert [r["run"] for r in more] == [str(new[0])] + [str(r) for r in old]
    welch = record["welch_against"]
    assert welch["recipe"] == "before" and list(welch["recipes"]) == ["after"]
    clean = welch["recipes"]["after"]["clean_recall"]
    assert clean["difference"] == pytest.approx(0.975 - 0.91)
    from scipy import stats

    expected = stats.ttest_ind([0.97, 0.975, 0.98], [0.90, 0.91, 0.92], equal_var=False).pvalue
    assert clean["p"] == pytest.approx(expected) and clean["p"] < 0.01
    # No spread on either side (the fakes' FPR): no test, said as such.
    assert welch["recipes"]["after"]["clean_fpr"]["p"] is None
    md = (tmp_path / "b.md").read_text()
    assert "### Against before" in md and "| after | +0.065 [p = " in md
    assert md.index("### Against before") < md.index("### before: recall / clean")
    assert "Against before" in capsys.readouterr().out
    # Bad references name the fix.
    for bad, says in (
        (f"x={tmp_path / 'a.json'}#nope", "has no recipe 'nope'"),
        (f"x={tmp_path / 'missing.json'}#old", "not a study result"),
        ("x=", "give LABEL=RUN"),
    ):
        with pytest.raises(SystemExit, match=says):
            rt.main(["study", bad, "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match="--against 'other' is none of the recipes"):
        rt.main([*argv, "--against", "other", "--out", str(tmp_path / "c")])
    assert not (tmp_path / "c.json").exists()


def test_study_intervals_stay_inside_the_figures_range():
    # Three seeds of a test FPR near 0 and a recall near 1: the plain t interval of the mean
    # crosses 0 and 1 (as the study of 2026-12-07 printed, "[-0.40%, 1.08%]").
    fpr = rt._spread([0.0, 0.0052, 0.0052], hi=1.0)["ci95_of_mean"]
    recall = rt._spread([0.935, 0.968, 0.981], hi=1.0)["ci95_of_mean"]
    assert fpr[0] == 0.0 and 0.0052 < fpr[1] < 0.02
    assert recall[1] == 1.0 and 0.85 < recall[0] < 0.935
    # A ratio to clean recall may pass 1; only its lower end is bounded.
    ratio = rt._spread([0.95, 1.0, 1.08])["ci95_of_mean"]
    assert ratio[1] > 1.08 and ratio[0] >= 0.0
    assert rt.RATE_BOUND["clean_fpr"] == 1.0 and "recall_ratio" not in rt.RATE_BOUND


def _spread(mean, lo=None, hi=None):
    return {"mean": mean, "min": lo if lo is not None else mean, "max": hi or mean, "n": 3}


def _sweep_inputs(tmp_path):
    """A real-data result of two trained variants, their robustness study, their arch costs."""
    runs = {v: [str(tmp_path / v / f"s{i}") for i in range(3)] for v in ("cheap", "lean")}
    real = {
        "rows": [
            {
                "dataset": "pfd",
                "variant": v,
                "student": {"architecture": arch, "width": 0.25, "depth": 1},
                "a76_instructions_per_invoke": insn,
                "parameters": 1000,
                "size_bytes": 2000,
                "runs": [{"run": r} for r in runs[v]],
                "summary": {
                    "int8_recall": _spread(recall, recall - 0.02, recall + 0.01),
                    "int8_fpr": _spread(0.01),
                    "int8_auc_pr": _spread(0.98),
                    "diagnostic_recall_at_test_fpr_threshold": _spread(recall),
                },
            }
            for v, arch, insn, recall in (
                ("lean", "vgg_late", 1_460_000, 0.95),
                ("cheap", "vgg_stem1", 920_000, 0.90),
            )
        ]
    }
    study = {
        "variants": {
            f"{v} study": {
                "runs": [{"run": r} for r in runs[v]],
                "summary": {
                    "recall_ratio": _spread(ratio),
                    "held_out_ratio": _spread(ratio - 0.05),
                    "worst_mild_ratio": _spread(ratio - 0.2),
                    "mean_corrupted_fpr": _spread(0.012),
                },
            }
            for v, ratio in (("cheap", 0.80), ("lean", 0.91))
        }
    }
    cost = [
        {"architecture": a, "width": 0.25, "depth": 1, "macs": macs, "variant": f"{a}-w0.25-d1"}
        | {"instructions_per_invoke": insn, "int8_size_bytes": 100_000, "core": "a76"}
        for a, macs, insn in (
            ("vgg_stem1", 5_750_000, 919_240),
            ("vgg_late", 12_240_000, 1_461_700),
        )
    ]
    return real, study, cost


def test_trained_pareto_rows_join_cost_quality_and_robustness_by_run(tmp_path):
    from benchmarks.training import plot_pareto

    real, study, cost = _sweep_inputs(tmp_path)
    rows = plot_pareto.trained_rows(real, cost, study, "pfd", 1.5e6)
    assert [r["variant"] for r in rows] == ["cheap", "lean"]  # cheapest first
    cheap, lean = rows
    assert lean["study_label"] == "lean study"
    assert lean["mac_per_instruction"] == pytest.approx(12_240_000 / 1_460_000)
    assert lean["meets"] == {"cost": True, "quality": True, "robustness": True}
    # 6.25 MAC/instr misses the cost goal inside the budget; 0.90 < 0.92; 0.80 < 0.90.
    assert cheap["meets"] == {"cost": False, "quality": False, "robustness": False}
    assert cheap["robustness"]["held_out_ratio"]["mean"] == pytest.approx(0.75)
    # Over the budget, the cost goal fails however efficient the model.
    over = plot_pareto.trained_rows(real, cost, study, "pfd", 1.4e6)
    assert over[1]["meets"]["cost"] is False


def test_trained_pareto_refuses_runs_outside_the_study_or_the_cost_sweep(tmp_path):
    from benchmarks.training import plot_pareto

    real, study, cost = _sweep_inputs(tmp_path)
    study["variants"]["lean study"]["runs"].pop()
    with pytest.raises(SystemExit, match="lean: its runs are not a variant of the robustness"):
        plot_pareto.trained_rows(real, cost, study, "pfd", 1.5e6)
    real, study, cost = _sweep_inputs(tmp_path)
    with pytest.raises(SystemExit, match="no arch-cost row for .'vgg_late'"):
        plot_pareto.trained_rows(real, cost[:1], study, "pfd", 1.5e6)


def test_trained_pareto_writes_png_table_and_provenance(tmp_path):
    from benchmarks.training import plot_pareto

    real, study, cost = _sweep_inputs(tmp_path)
    paths = {}
    for name, data in (("real", real), ("study", study), ("cost", {"rows": cost})):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(data))
    out = tmp_path / "pareto.png"
    argv = [str(paths["real"]), str(paths["cost"]), "--robustness", str(paths["study"])]
    assert plot_pareto.main([*argv, "--dataset", "pfd", "--out", str(out), "--goal", "0.92"]) == 0
    assert out.stat().st_size > 10_000
    record = json.loads(out.with_suffix(".json").read_text())
    _provenance_and(record, {"budget", "rows"})
    md = out.with_suffix(".md").read_text()
    cheap, lean = md.rstrip().splitlines()[-2:]  # cheapest first
    assert cheap.startswith("| cheap | 3 | 920,000 | 5.75 | 6.25 |") and cheap.endswith("| none |")
    assert lean.startswith("| lean | 3 | 1,460,000 | 12.24 | 8.38 |")
    assert lean.endswith("| cost, quality, robustness |")
