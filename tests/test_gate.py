"""edgeped gate on hand-made run directories: every budget alone, fail-closed evidence, reports."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeped.cli import main
from edgeped.evaluate.scores import write_test_scores
from edgeped.fileio import sha256_file
from edgeped.gate import Budgets, Status, gate_run
from edgeped.gate.budgets import (
    ChangeBudgets,
    CostBudgets,
    DeviceBudgets,
    QualityBudgets,
    RuntimeBudgets,
)
from edgeped.gate.delegation import Delegation, split_ops

MODEL = "student_qat_int8"


def _bench(sha: str, *, emulated: bool, **over) -> dict:
    target = (
        {"name": "arm64-emu", "kind": "arm64-emu", "emulated": True, "core": "cortex-a53"}
        if emulated
        else {"name": "ecu-dev", "kind": "ssh", "emulated": False}
    )
    data = {
        "kind": "edgeped.bench",
        "schema_version": 1,
        "model_sha256": sha,
        "size_bytes": 1000,
        "target_name": target["name"],
        "target_kind": target["kind"],
        "emulated": emulated,
        "core": "cortex-a53" if emulated else "cortex-a72",
        "e2e_ms_per_crop_p95": 1.0 if emulated else 8.0,
        "invoke_ms_p95": 0.5 if emulated else 6.0,
        "peak_rss_mb": 10.0 if emulated else 80.0,
        "parity_ok": True,
        "parity": {"ok": True, "mismatches": 0, "n": 16},
        "instructions_per_invoke": 2_000_000 if emulated else None,
        "options": {"xnnpack": True},
        "target": target,
        "runner": {"emulated": emulated},
    }
    data.update(over)
    return data


def _metrics(sha: str, **test_over) -> dict:
    return {
        "kind": "edgeped.metrics",
        "schema_version": 1,
        "inputs": {MODEL: {"file": f"{MODEL}.tflite", "sha256": sha}},
        "models": {
            MODEL: {
                "model": {"sha256": sha, "mode": "qat-int8"},
                "threshold": {"threshold": 0.5},
                "test": {"recall": 0.95, "fpr": 0.005, "auc_pr": 0.9, **test_over},
                "test_slices": {
                    "lighting": {
                        "night": {"positives": 40, "recall": 0.90},
                        "dusk": {"positives": 10, "recall": 0.50},
                    },
                    "hard_negative": {"pole": {"positives": 0, "recall": None}},
                },
            }
        },
        "comparisons": [
            {
                "float": "student_distilled_float32",
                "quantized": MODEL,
                "delta": {"recall": -0.01},
                "flip_rate": 0.004,
            }
        ],
    }


def _robustness(sha: str, keep: float = 0.95) -> dict:
    """robustness.json of a model that keeps `keep` of its clean recall under every shift."""
    from edgeped.evaluate.corruptions import CORRUPTIONS, family_split
    from edgeped.evaluate.robustness import summarise

    clean = 0.95
    cells = {
        name: {str(s): {"recall": clean * keep, "fpr": 0.005, "auc_pr": 0.9} for s in range(1, 6)}
        for name in CORRUPTIONS
    }
    summary = summarise(clean, cells, family_split({"exposure": 1.0, "shift_px": 4}))
    return {
        "kind": "edgeped.robustness",
        "config": {"suite": "full", "severities": [1, 2, 3, 4, 5]},
        "models": {MODEL: {"model": {"sha256": sha}, "corruptions": cells, "summary": summary}},
    }


def write_run(root: Path, model_file: Path, *, real: bool = True, emulated: bool = True) -> Path:
    """A run directory with a real .tflite, its card, metrics.json and bench results."""
    root.mkdir(parents=True, exist_ok=True)
    model = root / f"{MODEL}.tflite"
    shutil.copyfile(model_file, model)
    sha = sha256_file(model)
    card = {
        "kind": "edgeped.model_card",
        "schema_version": 1,
        "model": {
            "file": model.name,
            "sha256": sha,
            "size_bytes": model.stat().st_size,
            "mode": "qat-int8",
        },
        "threshold": {"score": 0.5, "rule": "max recall at val FPR <= 1%"},
    }
    (root / f"{MODEL}.card.json").write_text(json.dumps(card))
    (root / "metrics.json").write_text(json.dumps(_metrics(sha)))
    (root / "robustness.json").write_text(json.dumps(_robustness(sha)))
    write_scores(root, TEST_SCORES)
    if real:
        (root / "bench.json").write_text(json.dumps(_bench(sha, emulated=False)))
    if emulated:
        (root / "bench").mkdir(exist_ok=True)
        (root / "bench" / "arm64-emu-a53.json").write_text(json.dumps(_bench(sha, emulated=True)))
    return root


# 200 test crops: the model's probability for each (every fourth one a pedestrian).
TEST_SCORES = np.linspace(0.01, 0.99, 200)


def write_scores(root: Path, scores, crop_ids=None) -> None:
    """Per-crop test scores as `edgeped eval` writes them, registered in metrics.json."""
    n = len(scores)
    ids = np.array(crop_ids if crop_ids is not None else [f"c{i:04d}" for i in range(n)])
    labels = (np.arange(n) % 4 == 0).astype(np.int64)
    digest = write_test_scores(root / "test_scores.npz", ids, labels, {MODEL: scores})
    edit_json(
        root / "metrics.json",
        lambda d: d.update(test_scores={"file": "test_scores.npz", "sha256": digest}),
    )


def edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


@pytest.fixture()
def run(tmp_path, device_models) -> Path:
    return write_run(tmp_path / "run", device_models["int8"])


def statuses(verdict) -> dict[str, Status]:
    return {r.budget: r.status for r in verdict.results}


def test_a_good_run_passes_every_budget(run):
    verdict = gate_run(run, Budgets())
    assert verdict.exit_code == 0, [r for r in verdict.results if r.status.blocks_release]
    got = statuses(verdict)
    assert got["quality.slice_recall[lighting=dusk]"] is Status.SKIPPED  # 10 positives < 30
    assert "quality.slice_recall[hard_negative=pole]" not in got  # no positives: no recall
    for name in (
        "runtime.e2e_ms_per_crop_p95",
        "runtime.invoke_ms_p95",
        "runtime.peak_rss_mb",
        "cost.size_mb",
        "cost.instructions_per_invoke[cortex-a53]",
        "device.parity",
        "device.xnnpack_share",
        "device.no_silent_fallback",
        "quality.recall",
    ):
        assert got[name] is Status.PASS, name
    e2e = next(r for r in verdict.results if r.budget == "runtime.e2e_ms_per_crop_p95")
    assert e2e.measured == 8.0 and e2e.margin == pytest.approx(4.0)
    assert e2e.source.endswith("bench.json") and e2e.source_sha256 == sha256_file(
        run / "bench.json"
    )


# Each case tightens one budget just past the measured figure (or breaks one measurement):
# exactly that budget must fail, and the gate exits 1.
SINGLE_FAILURES = {
    "quality.recall": dict(quality=QualityBudgets(min_recall=0.96)),
    "quality.fpr": dict(quality=QualityBudgets(max_fpr=0.004)),
    "quality.auc_pr": dict(quality=QualityBudgets(min_auc_pr=0.91)),
    "quality.slice_recall[lighting=night]": dict(quality=QualityBudgets(min_slice_recall=0.91)),
    "change.recall_drop_vs_float": dict(change=ChangeBudgets(max_recall_drop=0.009)),
    "change.flip_rate_vs_float": dict(change=ChangeBudgets(max_flip_rate=0.003)),
    "runtime.e2e_ms_per_crop_p95": dict(runtime=RuntimeBudgets(max_e2e_ms_per_crop_p95=7.9)),
    "runtime.invoke_ms_p95": dict(runtime=RuntimeBudgets(max_invoke_ms_p95=5.9)),
    "runtime.peak_rss_mb": dict(runtime=RuntimeBudgets(max_peak_rss_mb=79.0)),
    "cost.size_mb": dict(cost=CostBudgets(max_size_mb=1e-4)),
    "cost.instructions_per_invoke[cortex-a53]": dict(
        cost=CostBudgets(max_instructions_per_invoke={"a53": 1_999_999})
    ),
}


@pytest.mark.parametrize("budget", sorted(SINGLE_FAILURES))
def test_each_budget_fails_on_its_own(run, budget):
    verdict = gate_run(run, replace(Budgets(), **SINGLE_FAILURES[budget]))
    failed = [r.budget for r in verdict.results if r.status.blocks_release]
    assert failed == [budget]
    assert verdict.exit_code == 1


def test_parity_failure_on_any_target_fails(run):
    edit_json(
        run / "bench" / "arm64-emu-a53.json",
        lambda d: d.update(parity_ok=False, parity={"ok": False, "mismatches": 3, "n": 16}),
    )
    verdict = gate_run(run, Budgets())
    assert [r.budget for r in verdict.results if r.status.blocks_release] == ["device.parity"]
    assert "3 outputs differ" in next(
        r.note for r in verdict.results if r.budget == "device.parity"
    )
    off = replace(Budgets(), device=DeviceBudgets(parity_required=False))
    assert gate_run(run, off).exit_code == 0


def test_benchmarking_without_xnnpack_is_a_silent_fallback(run):
    edit_json(run / "bench.json", lambda d: d.update(options={"xnnpack": False}))
    verdict = gate_run(run, Budgets())
    assert [r.budget for r in verdict.results if r.status.blocks_release] == [
        "device.no_silent_fallback"
    ]


def test_ops_outside_xnnpack_fail_share_and_fallback_unless_allowed(run, monkeypatch):
    import edgeped.gate.delegation as delegation

    monkeypatch.setattr(
        delegation,
        "measure_delegation",
        lambda path: (Delegation(4, 3, ("TOPK_V2",)), sha256_file(path)),
    )
    verdict = gate_run(run, Budgets())
    assert [r.budget for r in verdict.results if r.status.blocks_release] == [
        "device.xnnpack_share",
        "device.no_silent_fallback",
    ]
    allowed = replace(
        Budgets(), device=DeviceBudgets(min_xnnpack_share=0.75, allowed_fallback_ops=("topk_v2",))
    )
    assert gate_run(run, allowed).exit_code == 0


def test_split_ops_walks_each_partition_back_to_its_inputs():
    def op(name, inputs, outputs):
        return {"op_name": name, "inputs": inputs, "outputs": outputs}

    # conv(0,w1)->2, topk(2)->3 on the CPU, conv(3,w2)->4, logistic(4)->5; two partitions.
    ops = [
        op("CONV_2D", [0, 1], [2]),
        op("TOPK_V2", [2], [3]),
        op("CONV_2D", [3, 6], [4]),
        op("LOGISTIC", [4], [5]),
        op("DELEGATE", [0, 1], [2]),
        op("DELEGATE", [3, 6], [5]),
    ]
    split = split_ops(ops)
    assert (split.total_ops, split.delegated_ops, split.fallback_ops) == (4, 3, ("TOPK_V2",))
    assert split_ops(ops[:4]).delegated_ops == 0  # no delegate applied: everything falls back


def test_the_real_model_is_fully_delegated(run):
    from edgeped.gate.delegation import measure_delegation

    split, digest = measure_delegation(run / f"{MODEL}.tflite")
    assert split.share == 1.0 and split.fallback_ops == ()
    assert digest == sha256_file(run / f"{MODEL}.tflite")


# --- fail closed: missing, stale, corrupt -------------------------------------------------


def _corrupt(path: Path) -> None:
    path.write_text(path.read_text()[:40])


BROKEN = {
    "metrics missing": (lambda r: (r / "metrics.json").unlink(), "quality.recall", Status.MISSING),
    "metrics stale": (
        lambda r: edit_json(
            r / "metrics.json", lambda d: d["models"][MODEL]["model"].update(sha256="0" * 64)
        ),
        "quality.recall",
        Status.STALE,
    ),
    "metrics corrupt": (
        lambda r: _corrupt(r / "metrics.json"),
        "quality.auc_pr",
        Status.UNREADABLE,
    ),
    "metrics lack the model": (
        lambda r: edit_json(r / "metrics.json", lambda d: d["models"].clear()),
        "quality.fpr",
        Status.MISSING,
    ),
    "real bench stale": (
        lambda r: edit_json(r / "bench.json", lambda d: d.update(model_sha256="f" * 64)),
        "runtime.e2e_ms_per_crop_p95",
        Status.STALE,
    ),
    "real bench corrupt": (
        lambda r: _corrupt(r / "bench.json"),
        "runtime.invoke_ms_p95",
        Status.UNREADABLE,
    ),
    "real bench lacks a figure": (
        lambda r: edit_json(r / "bench.json", lambda d: d.pop("peak_rss_mb")),
        "runtime.peak_rss_mb",
        Status.UNREADABLE,
    ),
    "emulated bench missing": (
        lambda r: shutil.rmtree(r / "bench"),
        "cost.instructions_per_invoke[cortex-a53]",
        Status.MISSING,
    ),
    "card stale": (
        lambda r: edit_json(r / f"{MODEL}.card.json", lambda d: d["model"].update(sha256="a" * 64)),
        "cost.size_mb",
        Status.STALE,
    ),
    "card corrupt": (
        lambda r: _corrupt(r / f"{MODEL}.card.json"),
        "cost.size_mb",
        Status.UNREADABLE,
    ),
    "model missing": (
        lambda r: (r / f"{MODEL}.tflite").unlink(),
        "device.xnnpack_share",
        Status.MISSING,
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_missing_stale_or_corrupt_evidence_exits_2(run, case):
    breaks, budget, expected = BROKEN[case]
    breaks(run)
    verdict = gate_run(run, Budgets())
    assert statuses(verdict)[budget] is expected
    assert verdict.exit_code == 2
    result = CliRunner().invoke(main, ["gate", str(run), "--budgets", str(_budgets_file(run))])
    assert result.exit_code == 2, result.output


def test_bench_results_only_for_another_model_are_stale(run):
    for path in (run / "bench.json", run / "bench" / "arm64-emu-a53.json"):
        edit_json(path, lambda d: d.update(model_sha256="e" * 64))
    got = statuses(gate_run(run, Budgets()))
    for name in (
        "runtime.e2e_ms_per_crop_p95",
        "cost.instructions_per_invoke[cortex-a53]",
        "device.parity",
    ):
        assert got[name] is Status.STALE, name


def test_emulated_latency_never_satisfies_a_latency_budget(tmp_path, device_models):
    run = write_run(tmp_path / "run", device_models["int8"], real=False)
    # A fast emulated figure, even one that claims to be real at the top level.
    edit_json(run / "bench" / "arm64-emu-a53.json", lambda d: d.update(emulated=False))
    verdict = gate_run(run, Budgets())
    got = statuses(verdict)
    for name in ("runtime.e2e_ms_per_crop_p95", "runtime.invoke_ms_p95", "runtime.peak_rss_mb"):
        assert got[name] is Status.MISSING, name
        note = next(r.note for r in verdict.results if r.budget == name)
        assert "only emulated" in note and "edgeped deploy" in note
    # ... while emulated results still judge instructions, parity and size.
    for name in ("cost.instructions_per_invoke[cortex-a53]", "device.parity", "cost.size_mb"):
        assert got[name] is Status.PASS, name
    assert verdict.exit_code == 2


# --- baseline --------------------------------------------------------------------------


def test_baseline_change_budgets(tmp_path, device_models, run):
    base = write_run(tmp_path / "base", device_models["int8"])
    verdict = gate_run(run, Budgets(), baseline=base)
    got = statuses(verdict)
    assert got["change.recall_drop_vs_baseline"] is Status.PASS
    assert got["change.latency_regression_pct_vs_baseline"] is Status.PASS
    edit_json(base / "metrics.json", lambda d: d["models"][MODEL]["test"].update(recall=0.98))
    edit_json(base / "bench.json", lambda d: d.update(e2e_ms_per_crop_p95=7.0))
    verdict = gate_run(run, Budgets(), baseline=base)
    failed = {r.budget: r for r in verdict.results if r.status.blocks_release}
    assert set(failed) == {
        "change.recall_drop_vs_baseline",
        "change.latency_regression_pct_vs_baseline",
    }
    assert failed["change.latency_regression_pct_vs_baseline"].measured == pytest.approx(100 / 7)
    assert verdict.exit_code == 1
    (base / "bench.json").unlink()
    assert (
        statuses(gate_run(run, Budgets(), baseline=base))[
            "change.latency_regression_pct_vs_baseline"
        ]
        is Status.MISSING
    )


def test_flip_rate_against_the_baseline(tmp_path, device_models, run):
    base = write_run(tmp_path / "base", device_models["int8"])
    assert (
        statuses(gate_run(run, Budgets(), baseline=base))["change.flip_rate_vs_baseline"]
        is Status.PASS
    )
    moved = TEST_SCORES.copy()
    moved[[0, 1, 2]] = 0.9  # three background-side crops now above the 0.5 threshold
    write_scores(base, moved)
    verdict = gate_run(run, Budgets(), baseline=base)
    flip = next(r for r in verdict.results if r.budget == "change.flip_rate_vs_baseline")
    assert flip.status is Status.FAIL and flip.measured == pytest.approx(3 / 200)
    assert verdict.exit_code == 1
    # Two flips of 200 are within the 1% budget.
    moved[0] = TEST_SCORES[0]
    write_scores(base, moved)
    assert (
        statuses(gate_run(run, Budgets(), baseline=base))["change.flip_rate_vs_baseline"]
        is Status.PASS
    )


def test_flip_rate_matches_crops_by_id_not_by_position(tmp_path, device_models, run):
    base = write_run(tmp_path / "base", device_models["int8"])
    order = np.random.default_rng(0).permutation(200)
    write_scores(base, TEST_SCORES[order], [f"c{i:04d}" for i in order])
    flip = next(
        r
        for r in gate_run(run, Budgets(), baseline=base).results
        if r.budget == "change.flip_rate_vs_baseline"
    )
    assert flip.status is Status.PASS and flip.measured == 0.0


@pytest.mark.parametrize("damage", ["no_scores", "tampered", "other_crops", "garbage"])
def test_flip_rate_fails_closed(tmp_path, device_models, run, damage):
    base = write_run(tmp_path / "base", device_models["int8"])
    if damage == "no_scores":
        edit_json(base / "metrics.json", lambda d: d.pop("test_scores"))
    elif damage == "tampered":  # the file is not the one metrics.json was written with
        digest = json.loads((base / "metrics.json").read_text())["test_scores"]["sha256"]
        write_scores(base, TEST_SCORES[::-1])
        edit_json(base / "metrics.json", lambda d: d["test_scores"].update(sha256=digest))
    elif damage == "other_crops":
        write_scores(base, TEST_SCORES, [f"x{i:04d}" for i in range(200)])
    else:
        (base / "test_scores.npz").write_bytes(b"not a zip file")
        edit_json(
            base / "metrics.json",
            lambda d: d["test_scores"].update(sha256=sha256_file(base / "test_scores.npz")),
        )
    verdict = gate_run(run, Budgets(), baseline=base)
    flip = next(r for r in verdict.results if r.budget == "change.flip_rate_vs_baseline")
    assert flip.status in (Status.MISSING, Status.UNREADABLE), flip
    assert flip.note and verdict.exit_code == 2


# --- CLI and reports -------------------------------------------------------------------


def _budgets_file(where: Path) -> Path:
    path = where.parent / "budgets.toml"
    shutil.copyfile(Path(__file__).resolve().parents[1] / "budgets.toml", path)
    return path


def test_cli_writes_junit_markdown_and_json(run, tmp_path):
    edit_json(run / "metrics.json", lambda d: d["models"][MODEL]["test"].update(recall=0.5))
    out = tmp_path / "reports"
    result = CliRunner().invoke(
        main,
        [
            "gate",
            str(run),
            "--budgets",
            str(_budgets_file(run)),
            "--junit",
            str(out / "j.xml"),
            "--summary",
            str(out / "s.md"),
            "--json",
            str(out / "v.json"),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "quality.recall" in result.output and "FAIL" in result.output
    suite = ET.parse(out / "j.xml").getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["quality.recall"].find("failure") is not None
    assert cases["quality.fpr"].find("failure") is None
    assert cases["quality.slice_recall[lighting=dusk]"].find("skipped") is not None
    assert int(suite.get("failures")) == 1 and int(suite.get("tests")) == len(cases)
    summary = (out / "s.md").read_text()
    assert "| quality.recall | 0.5 | " in summary and "| >= 0.92 |" in summary
    assert "(exit 1)" in summary
    verdict = json.loads((out / "v.json").read_text())
    assert verdict["exit_code"] == 1 and verdict["kind"] == "edgeped.gate"
    assert verdict["model_sha256"] == sha256_file(run / f"{MODEL}.tflite")


def test_cli_junit_marks_missing_evidence_as_errors(run, tmp_path):
    (run / "bench.json").unlink()
    result = CliRunner().invoke(
        main,
        [
            "gate",
            str(run),
            "--budgets",
            str(_budgets_file(run)),
            "--junit",
            str(tmp_path / "j.xml"),
        ],
    )
    assert result.exit_code == 2
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert int(suite.get("errors")) == 3
    errors = [c.get("name") for c in suite.iter("testcase") if c.find("error") is not None]
    assert errors == ["runtime.e2e_ms_per_crop_p95", "runtime.invoke_ms_p95", "runtime.peak_rss_mb"]


def test_cli_model_option_and_bad_inputs(run, tmp_path):
    budgets = _budgets_file(run)
    result = CliRunner().invoke(
        main, ["gate", str(run), "--budgets", str(budgets), "--model", "teacher_float32"]
    )
    assert result.exit_code == 65 and "teacher_float32" in result.output  # no such model
    result = CliRunner().invoke(main, ["gate", str(tmp_path / "nope"), "--budgets", str(budgets)])
    assert result.exit_code == 65 and "run directory not found" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[quality]\nmin_recal = 0.9\n")
    result = CliRunner().invoke(main, ["gate", str(run), "--budgets", str(bad)])
    assert result.exit_code == 65 and "min_recal" in result.output


def test_extra_bench_files_are_read(tmp_path, device_models):
    run = write_run(tmp_path / "run", device_models["int8"], real=False)
    sha = sha256_file(run / f"{MODEL}.tflite")
    elsewhere = tmp_path / "board.json"
    elsewhere.write_text(json.dumps(_bench(sha, emulated=False)))
    assert gate_run(run, Budgets()).exit_code == 2
    assert gate_run(run, Budgets(), bench_files=(str(elsewhere),)).exit_code == 0


def _key_paths(data: dict, depth: int, prefix: str = "") -> set[str]:
    paths = set()
    for key, value in data.items():
        paths.add(prefix + key)
        if depth > 1 and isinstance(value, dict):
            paths |= _key_paths(value, depth - 1, f"{prefix}{key}.")
    return paths


@pytest.mark.slow
def test_fixture_metrics_match_the_real_schema(run, tiny_run):
    """Every key the hand-made fixture gives the gate exists in what `edgeped eval` writes."""
    fixture = json.loads((run / "metrics.json").read_text())
    real = json.loads((tiny_run / "metrics.json").read_text())
    fixture_model, real_model = fixture["models"][MODEL], real["models"][MODEL]
    fixture_model.pop("test_slices", None)  # slice names depend on the data set
    assert _key_paths(fixture_model, 2) <= _key_paths(real_model, 2)
    assert set(fixture) - {"models", "comparisons"} <= set(real)
    for comp in fixture.get("comparisons", []):
        real_comp = next(c for c in real["comparisons"] if c["quantized"] == comp["quantized"])
        assert set(comp) <= set(real_comp)


def test_host_results_do_not_count_unless_their_kind_is_allowed(tmp_path, device_models):
    run = write_run(tmp_path / "run", device_models["int8"])
    edit_json(
        run / "bench.json",
        lambda d: d.update(target_kind="local", target={"kind": "local", "emulated": False}),
    )
    verdict = gate_run(run, Budgets())
    row = next(r for r in verdict.results if r.budget == "runtime.invoke_ms_p95")
    assert row.status is Status.MISSING and "local" in row.note
    allowed = replace(Budgets(), runtime=RuntimeBudgets(target_kinds=("ssh", "local")))
    assert gate_run(run, allowed).exit_code == 0


def test_demo_gate_step_says_what_needs_a_real_board(run, monkeypatch):
    import edgeped.demo as demo

    monkeypatch.setattr(demo, "emulated_board_ready", lambda: False)
    (run / "bench.json").unlink()
    verdict, notes = demo.gate_demo_run(run)
    assert verdict.exit_code == 2
    assert any("real board" in n for n in notes) and any("not built" in n for n in notes)
    assert json.loads((run / "gate.json").read_text())["exit_code"] == 2
    assert "runtime.e2e_ms_per_crop_p95" in (run / "gate.md").read_text()
