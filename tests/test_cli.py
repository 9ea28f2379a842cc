import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgeped.cli import main


def test_cli_import_does_not_load_tensorflow():
    code = "import sys, edgeped.cli; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_installed_entry_point_runs():
    """The console script lists exactly the commands registered on the root group."""
    out = subprocess.run(["edgeped", "--help"], capture_output=True, text=True, check=True)
    listed = {
        line.split()[0]
        for line in out.stdout.split("Commands:", 1)[1].splitlines()
        if line.startswith("  ") and line.split()
    }
    assert listed == set(main.commands)
    assert {"data", "train", "convert", "eval", "compare", "bench", "deploy", "gate"} <= listed


def test_python_m_edgeped_is_the_same_cli():
    out = subprocess.run(
        [sys.executable, "-m", "edgeped", "--help"], capture_output=True, text=True, check=True
    )
    assert all(name in out.stdout for name in main.commands)


def test_data_synth_writes_a_dataset(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "data",
            "synth",
            str(tmp_path / "ds"),
            "--drives",
            "12",
            "--crops-per-drive",
            "5",
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["records"] == 60


def test_bad_option_value_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(
        main, ["data", "synth", str(tmp_path / "ds"), "--positive-rate", "2"]
    )
    assert result.exit_code == 64
    assert "positive_rate must be in [0, 1]" in result.output
    assert "Traceback" not in result.output


def test_train_on_missing_dataset_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(
        main, ["train", str(tmp_path / "run"), "--data", str(tmp_path / "no")]
    )
    assert result.exit_code == 65 and "dataset folder not found" in result.output


def test_convert_without_checkpoints(tmp_path):
    result = CliRunner().invoke(main, ["convert", str(tmp_path)])
    assert result.exit_code == 65 and "config.json" in result.output


@pytest.mark.slow
def test_eval_refuses_a_model_changed_after_conversion(tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    model = copy / "student_qat_int8.tflite"
    model.write_bytes(model.read_bytes()[:-100])
    result = CliRunner().invoke(main, ["eval", str(copy)])
    assert result.exit_code == 65 and "does not match its card" in result.output


@pytest.mark.slow
def test_eval_rejects_a_truncated_model(tiny_run, tmp_path):
    from edgeped.convert.model_card import card_path
    from edgeped.fileio import sha256_file

    copy = tmp_path / "run"
    copy.mkdir()
    model = copy / "student_qat_int8.tflite"
    model.write_bytes((tiny_run / "student_qat_int8.tflite").read_bytes()[:600])
    card = json.loads(card_path(tiny_run / "student_qat_int8.tflite").read_text())
    card["model"]["sha256"] = sha256_file(model)  # a card that matches the damaged file
    card_path(model).write_text(json.dumps(card))
    result = CliRunner().invoke(main, ["eval", str(copy)])
    assert result.exit_code == 65
    assert "corrupt or truncated" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_side_experiment_and_compare(tiny_run, tmp_path):
    cards = {p.name: p.read_text() for p in tiny_run.glob("*.card.json")}
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "eval",
            str(tiny_run),
            "--metadata-dropout",
            "1.0",
            "--tag",
            "nometa",
            "--only",
            "student_qat_int8",
        ],
    )
    assert result.exit_code == 0, result.output
    side = json.loads((tiny_run / "metrics-nometa.json").read_text())
    assert side["config"]["metadata_dropout"] == 1.0
    assert {p.name: p.read_text() for p in tiny_run.glob("*.card.json")} == cards  # untouched
    out = tmp_path / "cmp"
    result = runner.invoke(
        main,
        [
            "compare",
            f"full={tiny_run}",
            f"nometa={tiny_run / 'metrics-nometa.json'}",
            "--out",
            str(out),
            "--slice",
            "lighting=night",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert {r["source"] for r in rows} == {"full", "nometa"}
    assert all("lighting=night" in r["slices"] for r in rows)
    assert (out / "recall_vs_size.png").read_bytes()[:4] == b"\x89PNG"
