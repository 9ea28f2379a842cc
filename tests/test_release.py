"""`edgeped release`: the bundle, its manifest, the gate refusal and recorded waivers; the CLI cycle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from release_support import MODEL_NAME, make_run, preload_runtime, sha256, tiny_models

from edgeped.cli import main
from edgeped.errors import EdgepedError
from edgeped.rollout.bundle import ReleaseOptions, Waiver, plan_release, read_bundle, write_bundle


@pytest.fixture(scope="module")
def models(device_models):
    preload_runtime()
    return tiny_models(device_models)


def _run(tmp_path: Path, models, name="good1", statuses=None) -> Path:
    return make_run(tmp_path / f"run-{name}", models[name], statuses)


def test_manifest_holds_what_the_board_and_an_auditor_need(tmp_path, models):
    run = _run(tmp_path, models)
    (run / "drift_reference.json").write_text('{"kind": "edgeped.drift_reference"}')
    first = write_bundle(plan_release(run, ReleaseOptions()), tmp_path / "b1")
    second_run = _run(tmp_path, models, "good2")
    bundle = write_bundle(plan_release(second_run, ReleaseOptions(baseline=first)), tmp_path / "b2")
    m = json.loads((bundle / "release.json").read_text())
    model = second_run / f"{MODEL_NAME}.tflite"
    assert m["kind"] == "edgeped.release" and m["schema_version"] == 1
    assert (
        m["model"]["sha256"] == sha256(model) and m["model"]["size_bytes"] == model.stat().st_size
    )
    assert m["runtime"] == {"checked_with": "ai-edge-litert", "version": "2.3.0"}
    assert [t["role"] for t in m["quantisation"]["inputs"]] == ["image"]
    assert m["quantisation"]["outputs"][0]["dtype"] == "int8"
    card = json.loads((second_run / f"{MODEL_NAME}.card.json").read_text())
    assert m["thresholds"] == card["threshold"] and isinstance(m["thresholds"]["int8"], int)
    assert m["card"] == {"file": "card.json", "sha256": sha256(bundle / "card.json")}
    assert m["provenance"]["dataset_manifest_sha256"] == "d" * 64
    assert m["provenance"]["training_config_sha256"] == sha256(second_run / "config.json")
    assert m["gate"]["passed"] is True and m["gate"]["sha256"] == sha256(second_run / "gate.json")
    assert m["gate"]["budgets_passed"] == ["quality.recall", "cost.size_mb"]
    assert m["gate"]["budgets_failed"] == [] and m["gate"]["budgets_missing"] == []
    assert m["waivers"] == [] and m["drift_reference"] is None
    assert (
        m["replaces"]["release_id"]
        == json.loads((first / "release.json").read_text())["release_id"]
    )
    assert m["health"]["latency_ms_p95"] == 12.0
    assert 4 <= m["health"]["golden_crops"] <= 16  # as many distinct outputs as the model has
    assert "tensorflow" in m["tool_versions"]
    for name, entry in m["files"].items():
        assert sha256(bundle / name) == entry["sha256"]
    first_manifest = read_bundle(first, verify=True)
    assert first_manifest["drift_reference"]["sha256"] == sha256(run / "drift_reference.json")
    assert (first / "drift_reference.json").is_file()


def test_a_model_whose_gate_did_not_pass_is_refused_without_waivers(tmp_path, models):
    run = _run(tmp_path, models, statuses={"quality.recall": "pass", "runtime.e2e": "missing"})
    with pytest.raises(EdgepedError, match=r"not waived for: runtime.e2e \(missing\)") as info:
        plan_release(run, ReleaseOptions())
    assert "--waive BUDGET --reason TEXT" in info.value.fix
    with pytest.raises(EdgepedError, match="did not block this release"):
        plan_release(run, ReleaseOptions(waivers=(Waiver("quality.recall", "it passed anyway"),)))
    plan = plan_release(
        run, ReleaseOptions(waivers=(Waiver("runtime.e2e", "no board in the lab"),))
    )
    [waiver] = plan.manifest["waivers"]
    assert waiver["budget"] == "runtime.e2e" and waiver["status"] == "missing"
    assert waiver["reason"] == "no board in the lab" and "@" in waiver["by"]
    assert plan.manifest["gate"]["passed"] is False


def test_stale_or_missing_evidence_is_refused(tmp_path, models):
    run = _run(tmp_path, models)
    shutil.copyfile(models["good2"], run / f"{MODEL_NAME}.tflite")  # model changed after gating
    with pytest.raises(EdgepedError, match="card .* describes another model"):
        plan_release(run, ReleaseOptions())
    run = _run(tmp_path, models, "good3")
    gate = json.loads((run / "gate.json").read_text())
    gate["model_sha256"] = "0" * 64
    (run / "gate.json").write_text(json.dumps(gate))
    with pytest.raises(EdgepedError, match="gate verdict is stale"):
        plan_release(run, ReleaseOptions())
    (run / "gate.json").unlink()
    with pytest.raises(EdgepedError, match="no gate verdict") as info:
        plan_release(run, ReleaseOptions(model=MODEL_NAME))
    assert "edgeped gate" in info.value.fix
    with pytest.raises(EdgepedError, match="not found"):
        plan_release(tmp_path / "nope", ReleaseOptions())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"golden_count": 0}, "golden_count"),
        ({"waivers": (Waiver("a.b", "reason one"), Waiver("a.b", "reason two"))}, "waived once"),
    ],
)
def test_release_options_validate(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReleaseOptions(**kwargs)


def test_waiver_needs_a_reason():
    with pytest.raises(ValueError, match="must say why"):
        Waiver("runtime.e2e", "ok")


def test_bundle_is_replaced_only_when_whole(tmp_path, models, monkeypatch):
    run = _run(tmp_path, models)
    out = write_bundle(plan_release(run, ReleaseOptions()), tmp_path / "bundle")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import edgeped.targets.bench as bench

    def broken(*args, **kwargs):
        raise EdgepedError("golden failed", "test")

    monkeypatch.setattr(bench, "compute_golden", broken)
    with pytest.raises(EdgepedError, match="golden failed"):
        write_bundle(plan_release(run, ReleaseOptions(seed=5)), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle")] == []


def test_cli_cycle_on_a_local_device_root(tmp_path, models):
    """release -> install -> status -> bad install rolled back -> manual rollback, by CLI."""
    cli = CliRunner()
    from release_support import provision

    good = _run(tmp_path, models)
    root = str(tmp_path / "board")
    provision(Path(root))  # a development board: unsigned bundles allowed
    result = cli.invoke(main, ["release", str(good), "--out", str(tmp_path / "b1")])
    assert result.exit_code == 0, result.output
    assert "gate PASSED" in result.output
    result = cli.invoke(main, ["install", str(tmp_path / "b1"), "--host", "local", "--root", root])
    assert result.exit_code == 0, result.output
    assert "INSTALLED" in result.output and "bit-exact int8" in result.output
    assert "UNSIGNED BUNDLES ALLOWED" in result.output  # every reply says so

    night = "quality.slice_recall[lighting=night]"
    waived = _run(tmp_path, models, "good2", {"quality.recall": "fail", night: "pass"})
    result = cli.invoke(main, ["release", str(waived), "--out", str(tmp_path / "b2")])
    assert result.exit_code == 65 and "release refused" in result.output
    result = cli.invoke(
        main,
        ["release", str(waived), "--out", str(tmp_path / "b2")]
        + ["--waive", "quality.recall", "--reason", "pilot fleet only, recall re-measured"],
    )
    assert result.exit_code == 0 and "WAIVED quality.recall (fail)" in result.output
    from release_support import tamper_golden

    bad = shutil.copytree(tmp_path / "b2", tmp_path / "b2-bad")
    tamper_golden(bad)
    result = cli.invoke(main, ["install", str(bad), "--host", "local", "--root", root])
    assert result.exit_code == 1, result.output
    assert "ROLLED BACK" in result.output and "failed" in result.output

    result = cli.invoke(main, ["install", str(tmp_path / "b2"), "--host", "local", "--root", root])
    assert result.exit_code == 0 and "INSTALLED" in result.output, result.output
    status_json = str(tmp_path / "s.json")
    result = cli.invoke(main, ["status", "--host", "local", "--root", root, "--json", status_json])
    assert result.exit_code == 0, result.output
    assert "rolled_back (automatic)" in result.output.replace(" " * 13, " ") or (
        "(automatic)" in result.output and "rolled_back" in result.output
    )
    assert "WAIVED quality.recall" in result.output  # waivers shown by every later command
    assert "waived: quality.recall" in result.output  # and in the slots table
    status = json.loads((tmp_path / "s.json").read_text())
    assert status["current"]["slot"] == "b"

    result = cli.invoke(main, ["rollback", "--host", "local", "--root", root, "--reason", "drill"])
    assert result.exit_code == 0 and "ROLLED BACK" in result.output, result.output
    status = CliRunner().invoke(main, ["status", "--host", "local", "--root", root])
    assert "rolled_back" in status.output and "reason: drill" in status.output


def test_cli_errors_are_clear(tmp_path, models):
    cli = CliRunner()
    result = cli.invoke(main, ["install", str(tmp_path), "--host", "local"])
    assert result.exit_code == 65 and "needs a device root" in result.output
    result = cli.invoke(main, ["install", str(tmp_path / "nope"), "--host", "local", "--root", "x"])
    assert result.exit_code == 65 and "bundle not found" in result.output
    result = cli.invoke(main, ["release", str(tmp_path), "--waive", "a.b"])
    assert result.exit_code == 65 and "1 --waive but 0 --reason" in result.output


def test_installed_entry_point_runs_status(tmp_path):
    proc = subprocess.run(
        ["edgeped", "status", "--host", "local", "--root", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    assert "current -" in proc.stdout


def test_rendered_tables_keep_bracketed_budget_names():
    from rich.console import Console

    from edgeped.rollout.device_render import slots_table

    night = "quality.slice_recall[lighting=night]"
    state = {
        "active": "a",
        "slots": {
            "a": {
                "sha256": "ab" * 32,
                "status": "good",
                "attempts_left": 2,
                "release": {"release_id": "r1", "waivers": [{"budget": night}]},
            },
            "b": {"sha256": None, "status": "empty", "attempts_left": 0, "release": None},
        },
    }
    console = Console(width=200, record=True)
    console.print(slots_table(state))
    assert night in console.export_text()


def _edit_card(run: Path, **changes) -> None:
    card_file = run / f"{MODEL_NAME}.card.json"
    card = json.loads(card_file.read_text())
    card.update(changes)
    card_file.write_text(json.dumps(card))


def test_a_card_edited_after_the_gate_is_refused_naming_what_changed(tmp_path, models):
    run = _run(tmp_path, models)
    card = json.loads((run / f"{MODEL_NAME}.card.json").read_text())
    _edit_card(run, threshold={**card["threshold"], "score": 0.2})
    with pytest.raises(EdgepedError, match="differs from the card the gate judged") as info:
        plan_release(run, ReleaseOptions())
    assert "its threshold changed" in info.value.problem and "edgeped gate" in info.value.fix
    _edit_card(run, threshold=card["threshold"], preprocessing={"metadata": {"mean": [0] * 6}})
    with pytest.raises(EdgepedError, match="its preprocessing changed"):
        plan_release(run, ReleaseOptions())


@pytest.mark.parametrize(
    "threshold",
    [None, {}, {"score": "high"}, {"score": 1.5}, {"score": 0.5}],  # last: int8 missing
)
def test_a_card_without_a_decision_threshold_is_refused(tmp_path, models, threshold):
    run = _run(tmp_path, models)
    _edit_card(run, threshold=threshold)  # e.g. `convert` run again after `eval`
    with pytest.raises(EdgepedError, match="has no decision threshold") as info:
        plan_release(run, ReleaseOptions())
    assert "edgeped eval" in info.value.fix


def test_a_verdict_that_does_not_bind_the_card_is_refused(tmp_path, models):
    run = _run(tmp_path, models)
    gate = json.loads((run / "gate.json").read_text())
    del gate["card"]
    (run / "gate.json").write_text(json.dumps(gate))
    result = CliRunner().invoke(main, ["release", str(run), "--out", str(tmp_path / "b")])
    assert result.exit_code == 65 and "does not record which model card" in result.output
    assert not (tmp_path / "b").exists()


def test_the_gate_records_the_card_it_judged(tmp_path, models):
    from edgeped.gate.budgets import Budgets
    from edgeped.gate.run import gate_run

    run = _run(tmp_path, models)
    verdict = gate_run(run, Budgets(), model=MODEL_NAME).to_dict()
    card = json.loads((run / f"{MODEL_NAME}.card.json").read_text())
    assert verdict["card"]["sha256"] == sha256(run / f"{MODEL_NAME}.card.json")
    assert verdict["card"]["threshold"] == card["threshold"]
    assert len(verdict["card"]["preprocessing_sha256"]) == 64


@pytest.mark.parametrize("wait", ["nan", "-1", "inf", "100000"])
def test_install_wait_is_validated_before_anything_runs(tmp_path, wait):
    result = CliRunner().invoke(
        main, ["install", str(tmp_path), "--host", "local", "--root", "x", "--wait", wait]
    )
    assert result.exit_code == 64 and "--wait" in result.output, result.output


def test_golden_crops_are_real_test_crops_that_test_the_model(tmp_path, models):
    import numpy as np
    from release_support import tiny_data

    from edgeped.data.shards import Dataset

    run = _run(tmp_path, models)
    bundle = write_bundle(plan_release(run, ReleaseOptions()), tmp_path / "b")
    threshold = json.loads((bundle / "card.json").read_text())["threshold"]
    with np.load(bundle / "crops.npz") as c, np.load(bundle / "golden.npz") as g:
        crops, golden = {k: c[k] for k in c.files}, {k: g[k] for k in g.files}
    n = len(crops["images"])
    assert n >= 4, n  # up to 16: as many as this random-weight model has distinct outputs
    assert set(crops["label"].tolist()) == {0, 1}  # both classes
    assert set(crops["eval_decision"].tolist()) == {0, 1}  # both decisions
    raw = golden["raw"].reshape(n, -1)[:, 0].astype(int)
    assert len(set(raw.tolist())) == n  # every output differs from every other
    assert "near_threshold" in crops["reason"].tolist()
    near = raw[crops["reason"] == "near_threshold"]
    assert set((near >= threshold["int8"]).tolist()) == {False, True}  # both sides of it
    np.testing.assert_array_equal(
        (raw >= threshold["int8"]).astype(np.int8), crops["eval_decision"]
    )
    # Real crops: byte for byte the dataset's test crops of those ids.
    batch = Dataset.open(tiny_data()).read("test")
    by_id = {cid: img for cid, img in zip(batch.crop_id.astype(str), batch.images, strict=True)}
    for cid, img in zip(crops["crop_id"], crops["images"], strict=True):
        np.testing.assert_array_equal(by_id[str(cid)], img)


def test_release_refuses_golden_crops_whose_decisions_are_not_evals(tmp_path, models):
    """A card threshold that does not fit the model eval measured is caught on the host."""
    run = _run(tmp_path, models)
    card_file = run / f"{MODEL_NAME}.card.json"
    card = json.loads(card_file.read_text())
    card["threshold"]["int8"] = card["threshold"]["int8"] + 3  # decisions move, scores do not
    card_file.write_text(json.dumps(card))
    from edgeped.fileio import write_json_atomic
    from edgeped.gate.verdict import card_binding

    gate = json.loads((run / "gate.json").read_text())
    gate["card"] = card_binding(card, sha256(card_file))  # gated as it is now
    write_json_atomic(run / "gate.json", gate)
    with pytest.raises(EdgepedError, match="differently from eval"):
        write_bundle(plan_release(run, ReleaseOptions()), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_select_golden_refuses_what_cannot_test_a_model():
    import numpy as np

    from edgeped.rollout.golden import select_golden

    labels = np.array([0, 1] * 20)
    with pytest.raises(EdgepedError, match="one class only"):
        select_golden(np.zeros(40), np.linspace(0, 1, 40), 0.5, 16)
    with pytest.raises(EdgepedError, match="distinct scores|exactly like"):
        select_golden(labels, np.full(40, 0.1), 0.5, 16)
    # A model that decides every crop alike (a weak one the gate fails) still gets golden
    # crops of both classes whose outputs differ: the board then checks those decisions.
    idx, _ = select_golden(labels, np.linspace(0.0, 0.4, 40), 0.5, 16)
    assert len(idx) == 16 and set(labels[idx].tolist()) == {0, 1}
    with pytest.raises(EdgepedError, match="distinct scores"):
        select_golden(labels, np.array([0.1, 0.9] * 20), 0.5, 16)
    idx, reasons = select_golden(labels, np.linspace(0, 1, 40), 0.5, 16)
    assert len(set(idx.tolist())) == 16 and list(reasons).count("near_threshold") == 10
    assert set(labels[idx].tolist()) == {0, 1}


@pytest.mark.slow
def test_golden_crops_of_a_trained_run_test_its_model(tiny_run, tmp_path):
    """On a really trained and evaluated run: 16 distinct outputs, eval's decisions on the host."""
    import numpy as np

    from edgeped.rollout.bundle import _check_golden_decisions
    from edgeped.rollout.golden import golden_from_run
    from edgeped.targets.bench import BenchOptions, compute_golden, preprocess_from_card

    name = "student_qat_int8"
    card = json.loads((tiny_run / f"{name}.card.json").read_text())
    arrays = golden_from_run(tiny_run, name, card["threshold"]["score"], 16)
    np.savez(tmp_path / "crops.npz", **arrays)
    (tmp_path / "preprocess.json").write_text(
        json.dumps(preprocess_from_card(tiny_run / f"{name}.tflite"))
    )
    compute_golden(
        tiny_run / f"{name}.tflite",
        tmp_path / "crops.npz",
        tmp_path / "golden.npz",
        BenchOptions(),
        tmp_path / "preprocess.json",
    )
    _check_golden_decisions(tmp_path, card["threshold"])  # raises if any decision differs
    with np.load(tmp_path / "golden.npz") as g:
        raw = g["raw"].reshape(16, -1)[:, 0]
        probs = g["probabilities"].reshape(-1)
    assert len(set(raw.tolist())) == 16
    assert set(arrays["label"].tolist()) == {0, 1}
    assert set(arrays["eval_decision"].tolist()) == {0, 1}
    assert probs.max() - probs.min() > 0.1  # not the flat [0.0, 0.0] of random noise
    # eval's scores are the host's probabilities for these very crops.
    np.testing.assert_allclose(probs, arrays["eval_score"], atol=1e-6)
