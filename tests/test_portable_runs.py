"""A run directory that moves still finds its dataset: relative path, absolute path, sha256."""

from __future__ import annotations

import json
import shutil

import pytest

from edgeped.errors import EdgepedError
from edgeped.fileio import sha256_file
from edgeped.train.run_dir import dataset_record, resolve_run_dataset


def _dataset(folder, content="a"):
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"which": content}))
    return folder


def _run(run, data, *, legacy=False):
    run.mkdir(parents=True)
    sha = sha256_file(data / "manifest.json")
    config = {"config": {"data_dir": str(data)}, "dataset_manifest_sha256": sha}
    if not legacy:
        config["dataset"] = dataset_record(run, data, sha)
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_the_record_names_the_dataset_relative_to_the_run(tmp_path):
    data = _dataset(tmp_path / "demo" / "data")
    record = dataset_record(tmp_path / "demo" / "run", data, "x")
    assert record["path_relative_to_run"] == "../data"
    assert record["path_absolute"] == str(data)


def test_a_run_copied_with_its_data_uses_the_relative_path(tmp_path):
    data = _dataset(tmp_path / "demo" / "data")
    _run(tmp_path / "demo" / "run", data)
    shutil.copytree(tmp_path / "demo", tmp_path / "elsewhere" / "demo")
    found = resolve_run_dataset(tmp_path / "elsewhere" / "demo" / "run")
    assert found.resolve() == (tmp_path / "elsewhere" / "demo" / "data").resolve()


def test_a_run_moved_alone_falls_back_to_the_absolute_path(tmp_path):
    data = _dataset(tmp_path / "demo" / "data")
    _run(tmp_path / "demo" / "run", data)
    shutil.move(tmp_path / "demo" / "run", tmp_path / "other" / "deep" / "run")
    assert resolve_run_dataset(tmp_path / "other" / "deep" / "run") == data


def test_a_different_dataset_at_the_recorded_place_is_refused(tmp_path):
    data = _dataset(tmp_path / "demo" / "data")
    run = _run(tmp_path / "demo" / "run", data)
    (data / "manifest.json").write_text(json.dumps({"which": "regenerated"}))
    with pytest.raises(EdgepedError, match="not the one") as exc:
        resolve_run_dataset(run)
    assert "--data" in exc.value.fix
    other = _dataset(tmp_path / "other", "b")
    with pytest.raises(EdgepedError, match="not the one"):
        resolve_run_dataset(run, other)


def test_a_lost_dataset_says_where_it_looked_and_the_command_to_run(tmp_path):
    data = _dataset(tmp_path / "demo" / "data")
    run = _run(tmp_path / "demo" / "run", data)
    shutil.move(data, tmp_path / "moved")
    with pytest.raises(EdgepedError) as exc:
        resolve_run_dataset(run, command="convert")
    assert "../data" in exc.value.problem and str(data) in exc.value.problem
    assert f"edgeped convert {run} --data DATASET_DIR" in exc.value.fix
    assert resolve_run_dataset(run, tmp_path / "moved") == tmp_path / "moved"


def test_a_run_from_before_the_record_still_checks_the_sha(tmp_path):
    data = _dataset(tmp_path / "data")
    run = _run(tmp_path / "run", data, legacy=True)
    assert resolve_run_dataset(run) == data
    (data / "manifest.json").write_text("{}")
    with pytest.raises(EdgepedError, match="not the one"):
        resolve_run_dataset(run)


@pytest.mark.slow
def test_a_copied_run_converts_evaluates_and_shadows_from_another_folder(
    tiny_run, tiny_dataset, tmp_path, monkeypatch
):
    from click.testing import CliRunner

    from edgeped.cli import main

    run = tmp_path / "copy" / "run"
    shutil.copytree(tiny_run, run)
    monkeypatch.chdir(tmp_path)  # nowhere near where the run was trained
    cli = CliRunner()
    for args in (
        ["convert", str(run), "--only", "student_qat_int8", "--calibration-samples", "16"],
        ["eval", str(run)],
        ["shadow", "report", str(run), "--baseline", "student_distilled_float32",
         "--candidate", "student_qat_int8"],
    ):  # fmt: skip
        result = cli.invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
    shadow = json.loads((run / "shadow" / "shadow.json").read_text())
    assert shadow["slices"], "slice tags come from the run's dataset, found from the copy"
    # --data on convert: the same dataset under another name works, another one is refused.
    moved = tmp_path / "data-moved"
    shutil.copytree(tiny_dataset, moved)
    result = cli.invoke(main, ["convert", str(run), "--only", "student_qat_int8",
                               "--calibration-samples", "16", "--data", str(moved)])  # fmt: skip
    assert result.exit_code == 0, result.output
