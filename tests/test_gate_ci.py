"""The CI example in README.md and docs/ci.md runs as written, through the installed command."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from test_gate import MODEL, edit_json, write_run

REPO = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r'^edgeped gate "\$RUN_DIR" .*$', re.MULTILINE)


def _documented_commands() -> dict[str, str]:
    found = {}
    for doc in ("README.md", "docs/ci.md"):
        commands = COMMAND.findall((REPO / doc).read_text())
        assert commands, f"{doc} shows no CI gate command"
        found[doc] = commands[0]
    return found


def test_readme_and_ci_docs_show_the_same_command():
    commands = _documented_commands()
    assert len(set(commands.values())) == 1, commands


def test_the_workflow_is_valid_yaml_and_runs_that_command():
    text = (REPO / "docs" / "ci.md").read_text()
    workflow = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.DOTALL).group(1))
    steps = workflow["jobs"]["gate"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert any(_documented_commands()["docs/ci.md"] in r for r in runs)
    assert not any(word in " ".join(runs) for word in ("edgeped train", "edgeped convert"))


def _run_as_written(command: str, run_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    shutil.copyfile(REPO / "budgets.toml", cwd / "budgets.toml")
    env = dict(os.environ, RUN_DIR=str(run_dir))
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("doc", ["README.md", "docs/ci.md"])
def test_ci_example_runs_as_written(doc, tmp_path, device_models):
    assert shutil.which("edgeped"), "the edgeped entry point is not installed"
    command = _documented_commands()[doc]
    run = write_run(tmp_path / "run", device_models["int8"])
    work = tmp_path / "ci"
    work.mkdir()
    proc = _run_as_written(command, run, work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    suite = ET.parse(work / "gate-junit.xml").getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    assert "(exit 0)" in (work / "gate-summary.md").read_text()
    assert json.loads((work / "gate.json").read_text())["passed"] is True

    # The same command blocks a merge when a budget fails ...
    edit_json(run / "metrics.json", lambda d: d["models"][MODEL]["test"].update(recall=0.5))
    assert _run_as_written(command, run, work).returncode == 1
    # ... and when the real-board measurement is missing.
    (run / "bench.json").unlink()
    proc = _run_as_written(command, run, work)
    assert proc.returncode == 2
    assert "only emulated" in proc.stdout
