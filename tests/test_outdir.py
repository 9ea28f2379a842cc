"""`--out` never destroys what edgeped did not write; a killed release leaves the old bundle whole."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from release_support import REPO_ROOT, make_run, preload_runtime, tiny_models

from edgeped import outdir
from edgeped.cli import main
from edgeped.errors import EdgepedError


@pytest.fixture(scope="module")
def models(device_models):
    preload_runtime()
    return tiny_models(device_models)


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) by relative path -> sha256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def release(*args: str):
    return CliRunner().invoke(main, ["release", *args])


def test_release_out_run_dir_is_refused_and_the_run_is_unchanged(tmp_path, models):
    run = make_run(tmp_path / "run", models["good1"])
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "ckpt-1").write_bytes(b"weights")
    before = tree(run)
    for extra in ([], ["--overwrite"]):
        result = release(str(run), "--out", str(run), *extra)
        assert result.exit_code == 65, result.output
        assert "refused" in result.output and "Traceback" not in result.output
        assert tree(run) == before
    # A folder holding the run (its parent) is refused too.
    result = release(str(run), "--out", str(tmp_path), "--overwrite")
    assert result.exit_code == 65 and tree(run) == before


@pytest.mark.parametrize(
    "content",
    [
        {"notes.txt": b"my notes"},  # a user's folder
        {"manifest.json": b"{}", "train-00000.tfrecord": b"x"},  # a dataset
        {"config.json": b"{}", "student.tflite": b"m"},  # another run
    ],
)
def test_release_out_foreign_folder_is_refused_even_with_overwrite(tmp_path, models, content):
    run = make_run(tmp_path / "run", models["good1"])
    other = tmp_path / "other"
    other.mkdir()
    for name, data in content.items():
        (other / name).write_bytes(data)
    before = tree(other)
    for extra in ([], ["--overwrite"]):
        result = release(str(run), "--out", str(other), *extra)
        assert result.exit_code == 65, result.output
        assert "refused" in result.output
        assert tree(other) == before


def test_release_replaces_its_own_bundle_and_an_old_one_only_with_overwrite(tmp_path, models):
    run = make_run(tmp_path / "run", models["good1"])
    out = tmp_path / "bundle"
    assert release(str(run), "--out", str(out)).exit_code == 0
    assert outdir.marker_kind(out) == "release"
    result = release(str(run), "--out", str(out))  # same kind: replaced
    assert result.exit_code == 0, result.output
    assert outdir.marker_kind(out) == "release"
    # A bundle from before markers existed: recognised by release.json, replaced only on request.
    (out / outdir.MARKER).unlink()
    before = tree(out)
    result = release(str(run), "--out", str(out))
    assert result.exit_code == 65 and "--overwrite" in result.output
    assert tree(out) == before
    result = release(str(run), "--out", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    assert outdir.marker_kind(out) == "release"
    # No staging or set-aside folders remain beside it.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_out_that_is_a_file_or_another_kind_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(EdgepedError, match="not a folder"):
        outdir.claim(target, "release", replace=True)
    folder = tmp_path / "drift"
    folder.mkdir()
    outdir.write_marker(folder, "drift")
    (folder / "drift.json").write_text("{}")
    with pytest.raises(EdgepedError, match="holds a drift output"):
        outdir.claim(folder, "release", replace=True, overwrite=True)
    # Written into: a non-empty unmarked folder needs --overwrite, and keeps its other files.
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep")
    with pytest.raises(EdgepedError, match="--overwrite"):
        outdir.claim(notes, "bench")
    outdir.claim_into(notes, "bench", overwrite=True).done()
    assert (notes / "mine.txt").read_text() == "keep"
    assert outdir.marker_kind(notes) is None  # a user's folder is not claimed by a marker
    fresh = outdir.claim_into(tmp_path / "new", "bench")
    (tmp_path / "new").mkdir()
    fresh.done()
    assert outdir.marker_kind(tmp_path / "new") == "bench"
    outdir.claim_into(tmp_path / "new", "bench")  # its own kind: no --overwrite needed


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_orphans_of_a_killed_run_are_cleaned_and_a_set_aside_bundle_comes_back(tmp_path):
    out = tmp_path / "bundle"
    pid = _dead_pid()
    staging = tmp_path / f".bundle.edgeped-staging-{pid}-abc"
    staging.mkdir()
    (staging / "model.tflite").write_bytes(b"half")
    old = tmp_path / f".bundle.edgeped-old-{pid}"
    old.mkdir()
    (old / "release.json").write_text("{}")
    outdir.write_marker(old, "release")
    mine = tmp_path / f".bundle.edgeped-staging-{os.getppid()}-live"  # a live process's: kept
    mine.mkdir()
    unrelated = tmp_path / ".other.edgeped-staging-1-x"
    unrelated.mkdir()
    legacy = tmp_path / ".bundle.k3j_x9a2"  # what a release before markers left when killed
    legacy.mkdir()
    (legacy / "model.tflite").write_bytes(b"half")
    notes = tmp_path / ".bundle.notes123"  # same shape of name, not a bundle: kept
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    outdir.claim(out, "release", replace=True)
    assert not staging.exists() and not legacy.exists() and notes.exists()
    assert (out / "release.json").read_text() == "{}"  # killed between the two renames
    assert mine.exists() and unrelated.exists()


def test_sigkill_mid_release_leaves_the_old_bundle_intact(tmp_path, models):
    run = make_run(tmp_path / "run", models["good1"])
    out = tmp_path / "bundle"
    assert release(str(run), "--out", str(out)).exit_code == 0
    before = tree(out)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeped", "release", str(run), "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    staged = []
    while time.monotonic() < deadline and proc.poll() is None:
        staged = [p for p in tmp_path.iterdir() if ".edgeped-staging-" in p.name]
        if staged and any(staged[0].iterdir()):
            break
        time.sleep(0.01)
    assert staged, "the release finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the release and the golden runner it started
    proc.wait()
    assert tree(out) == before
    assert [p for p in tmp_path.iterdir() if ".edgeped-staging-" in p.name]  # the orphan
    result = release(str(run), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    "command",
    [
        ["compare", "{src}/metrics.json", "--out", "{out}"],
        ["drift", "{src}", "{src}", "--out", "{out}"],
        ["data", "stats", "{src}", "--out", "{out}"],
        ["shadow", "report", "{src}", "--out", "{out}"],
        ["bench", "{src}/m.tflite", "--target", "local", "--out", "{out}"],
        ["demo", "--out", "{out}"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_every_out_refuses_a_foreign_folder_before_any_work(tmp_path, command):
    src = tmp_path / "src"
    src.mkdir()
    (src / "m.tflite").write_bytes(b"not a model")
    out = tmp_path / "notes"
    out.mkdir()
    (out / "comparison.json").write_text("my own file that happens to share the name")
    (out / "drift.json").write_text("mine too")
    before = tree(out)
    args = [a.format(src=src, out=out) for a in command]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 65, result.output
    assert "edgeped did not make" in result.output and "--overwrite" in result.output
    assert tree(out) == before


def test_an_older_bundle_at_the_default_place_is_replaced_without_overwrite(tmp_path, models):
    run = make_run(tmp_path / "run", models["good1"])
    assert release(str(run)).exit_code == 0
    default = run / "release-student_qat_int8"
    (default / outdir.MARKER).unlink()  # as an edgeped before markers left it
    result = release(str(run))
    assert result.exit_code == 0, result.output
    assert outdir.marker_kind(default) == "release"
