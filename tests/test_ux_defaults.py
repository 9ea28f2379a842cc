"""Defaults that fit together: budgets found from any folder, bench measuring what the gate
needs, and the rules the CLI used to keep to itself (help texts, errors, table width)."""

from __future__ import annotations

import json
import shlex

import pytest
from click.testing import CliRunner

from edgeped.cli import main
from edgeped.errors import EdgepedError
from edgeped.gate.budgets import BUILT_IN, Budgets, find_budgets_file, resolve_budgets
from tests.test_gate import MODEL, write_run


def test_budgets_come_from_the_flag_the_environment_the_folder_or_the_built_in(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGEPED_BUDGETS", raising=False)
    assert find_budgets_file() is None
    budgets, where = resolve_budgets()
    assert budgets == Budgets() and where == BUILT_IN
    (tmp_path / "budgets.toml").write_text('model = "student_ptq_int8"\n')
    budgets, where = resolve_budgets()
    assert budgets.model == "student_ptq_int8" and "working folder" in where
    other = tmp_path / "strict.toml"
    other.write_text("[quality]\nmin_recall = 0.99\n")
    monkeypatch.setenv("EDGEPED_BUDGETS", str(other))
    assert resolve_budgets()[0].quality.min_recall == 0.99
    assert resolve_budgets(tmp_path / "budgets.toml")[0].model == "student_ptq_int8"
    with pytest.raises(EdgepedError, match="budgets file not found"):
        resolve_budgets(tmp_path / "nope.toml")


def test_gate_without_budgets_works_outside_the_repository_and_says_which(
    tmp_path, monkeypatch, device_models
):
    run = write_run(tmp_path / "runs" / "demo" / "run", device_models["int8"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("EDGEPED_BUDGETS", raising=False)
    result = CliRunner().invoke(main, ["gate", str(run), "--json", str(tmp_path / "gate.json")])
    assert "budgets file not found" not in result.output
    assert f"budgets: {BUILT_IN}" in result.output
    verdict = json.loads((tmp_path / "gate.json").read_text())
    assert verdict["model"] == MODEL and result.exit_code == verdict["exit_code"]


def test_a_sibling_models_bench_is_named_so_and_its_fix_runs(tmp_path, device_models):
    from edgeped.gate import Status, gate_run

    run = write_run(tmp_path / "run", device_models["int8"], real=False)
    sibling = run / "student_ptq_int8.tflite"
    sibling.write_bytes(device_models["float"].read_bytes())
    card = json.loads((run / f"{MODEL}.card.json").read_text())
    card["model"].update(sha256=__import__("edgeped.fileio").fileio.sha256_file(sibling))
    (run / "student_ptq_int8.card.json").write_text(json.dumps(card))
    verdict = gate_run(run, Budgets(), model="student_ptq_int8")
    row = {r.budget: r for r in verdict.results}["cost.instructions_per_invoke[cortex-a53]"]
    assert row.status is Status.MISSING, row
    assert "sibling's evidence" in row.note and f"made for {MODEL}" in row.note
    assert "STALE" not in row.note
    fix = shlex.split(row.note.split("run `", 1)[1].split("`", 1)[0])
    assert fix[:2] == ["edgeped", "bench"] and fix[2] == str(sibling)
    assert CliRunner().invoke(main, [*fix[1:], "--help"]).exit_code == 0


@pytest.mark.slow
def test_bench_measures_parity_by_default_when_the_budgets_require_it(
    tmp_path, device_models, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGEPED_BUDGETS", raising=False)
    model = tmp_path / "m.tflite"
    model.write_bytes(device_models["int8"].read_bytes())
    args = ["bench", str(model), "--runs", "3", "--min-seconds", "0", "--warmup", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "measuring what the budgets ask for: parity on" in result.output
    bench = json.loads((tmp_path / "bench" / "m.local.json").read_text())
    assert bench["parity_ok"] is True
    (tmp_path / "budgets.toml").write_text("[device]\nparity_required = false\n")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    bench = json.loads((tmp_path / "bench" / "m.local.json").read_text())
    assert bench.get("parity_ok") is None


@pytest.mark.emulated
@pytest.mark.slow
def test_bench_on_the_emulated_board_measures_the_budgets_cores(
    tmp_path, device_models, arm64_board, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDGEPED_ARM64_EMU", str(arm64_board))
    monkeypatch.delenv("EDGEPED_BUDGETS", raising=False)
    (tmp_path / "budgets.toml").write_text(
        "[cost.max_instructions_per_invoke]\ncortex-a53 = 10_000_000\ncortex-a72 = 10_000_000\n"
    )
    model = tmp_path / "m.tflite"
    model.write_bytes(device_models["int8"].read_bytes())
    result = CliRunner().invoke(
        main, ["bench", str(model), "--target", "arm64-emu", "--runs", "1", "--warmup", "0"]
    )
    assert result.exit_code == 0, result.output
    for core in ("cortex-a53", "cortex-a72"):
        bench = json.loads((tmp_path / "bench" / f"m.arm64-emu-{core}.json").read_text())
        assert bench["core"] == core and bench["instructions_per_invoke"] > 0
        assert bench["parity_ok"] is True


def test_synth_says_the_night_and_dusk_rule_in_help_and_error():
    cli = CliRunner()
    help_text = " ".join(cli.invoke(main, ["data", "synth", "--help"]).output.split())
    assert "--night-rate + --dusk-rate must be <= 1" in help_text and "--dusk-rate" in help_text
    result = cli.invoke(main, ["data", "synth", "out", "--night-rate", "0.9"])
    assert result.exit_code == 64
    assert "a drive is night, dusk or day" in result.output
    assert "--night-rate 0.9 --dusk-rate 0.1" in result.output


def test_demo_help_says_about_ten_minutes():
    text = " ".join(CliRunner().invoke(main, ["demo", "--help"]).output.split())
    assert "about 10 minutes" in text and "15 minutes" not in text


def test_shadow_table_keeps_its_width_in_a_log(tmp_path):
    import numpy as np

    from edgeped.cli.shadow import _render
    from edgeped.rollout.shadow_log import Integrity, ShadowRecords, Side
    from edgeped.rollout.shadow_report import shadow_report

    n = 200
    b = (np.arange(n) % 5 == 0).astype(np.int8)
    records = ShadowRecords(
        crop_ids=np.array([f"k{i}" for i in range(n)]),
        baseline=Side(b * 0.8 + 0.1, b),
        candidate=Side(b * 0.8 + 0.1, b),
        baseline_info={"name": "student_float32", "threshold": 0.5},
        candidate_info={"name": "student_qat_int8", "threshold": 0.5},
        source={"kind": "test"},
        labels=b.astype(np.int64),
        tags={"lighting": np.array(["day", "night"] * (n // 2))},
        integrity=Integrity(records=n),
    )
    import click

    @click.command()
    def show():
        _render(shadow_report(records), {})

    out = CliRunner().invoke(show).output  # not a terminal, as in a CI log
    widest = max(len(line) for line in out.splitlines())
    assert widest > 100, out
    assert "pedestrians lost / found by baseline (labels)" in out
    assert "label-free estimate" in out


def _fix_command(output: str) -> list[str]:
    """The first backquoted `edgeped ...` command on the output's fix: line."""
    line = next(x for x in output.splitlines() if x.strip().startswith("fix:"))
    return shlex.split(line.split("`edgeped ", 1)[1].split("`", 1)[0])


def test_the_fix_a_refused_release_prints_works_when_pasted(tmp_path, monkeypatch, device_models):
    run = write_run(tmp_path / "runs" / "demo" / "run", device_models["int8"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no budgets.toml: the pasted gate must still work
    monkeypatch.delenv("EDGEPED_BUDGETS", raising=False)
    cli = CliRunner()
    refused = cli.invoke(main, ["release", str(run)])
    assert refused.exit_code == 65, refused.output
    fix = _fix_command(refused.output)
    assert fix[0] == "gate"
    pasted = cli.invoke(main, fix)
    assert pasted.exit_code in (0, 1, 2), pasted.output
    assert "budgets file not found" not in pasted.output
    assert (run / "gate.json").is_file()
    again = cli.invoke(main, ["release", str(run)])
    assert "no gate verdict" not in again.output


def test_the_fix_for_a_lost_dataset_names_the_command_and_flag(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps({"config": {"data_dir": str(tmp_path / "gone")}, "dataset_manifest_sha256": "x"})
    )
    result = CliRunner().invoke(main, ["convert", str(run)])
    assert result.exit_code == 65, result.output
    fix = _fix_command(result.output)
    assert fix[:2] == ["convert", str(run)] and "--data" in fix
    assert CliRunner().invoke(main, [*fix[:2], "--data", str(tmp_path), "--help"]).exit_code == 0


def test_shadow_limit_samples_across_the_split_not_its_head():
    import numpy as np

    from edgeped.rollout.replay import sample_index

    idx = sample_index(10_000, 2000, seed=0)
    assert idx.size == 2000 and np.unique(idx).size == 2000
    assert np.array_equal(idx, np.sort(idx))  # kept in dataset (drive) order
    assert idx.max() > 9000 and idx.min() < 100  # spans the split, not its first drives
    assert np.array_equal(idx, sample_index(10_000, 2000, seed=0))  # seeded
    assert not np.array_equal(idx, sample_index(10_000, 2000, seed=1))
    assert np.array_equal(sample_index(50, 2000), np.arange(50))
    assert np.array_equal(sample_index(50, None), np.arange(50))
