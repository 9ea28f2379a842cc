"""Exit codes: distinct for budget failed, evidence missing, usage error, input error, bug."""

import re
import subprocess
from pathlib import Path

import click
from click.testing import CliRunner

from edgeped.cli import main
from edgeped.cli._root import _Group
from edgeped.errors import EXIT_MEANINGS, EdgepedError, ExitCode
from edgeped.gate.verdict import BudgetResult, Status, Verdict

DOCS = Path(__file__).parent.parent / "docs" / "conventions.md"


def test_codes_are_distinct_and_each_has_a_meaning():
    assert len({int(c) for c in ExitCode}) == len(ExitCode)
    assert set(EXIT_MEANINGS) == set(ExitCode)
    assert (ExitCode.FAILED, ExitCode.EVIDENCE_MISSING, ExitCode.USAGE) == (1, 2, 64)


def test_docs_table_lists_every_code():
    text = DOCS.read_text()
    table = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", text, flags=re.M))
    assert {int(k) for k in table} == {int(c) for c in ExitCode}


def _row(status: Status) -> BudgetResult:
    return BudgetResult("quality.recall", status, "min", 0.9, 0.8 if status == "fail" else None)


def test_verdict_exit_codes():
    ok = Verdict("r", "m", "s", (BudgetResult("quality.recall", Status.PASS, "min", 0.9, 0.95),))
    assert ok.exit_code == ExitCode.OK
    assert Verdict("r", "m", "s", (_row(Status.FAIL),)).exit_code == ExitCode.FAILED
    for missing in (Status.MISSING, Status.STALE, Status.UNREADABLE):
        both = Verdict("r", "m", "s", (_row(Status.FAIL), _row(missing)))
        assert both.exit_code == ExitCode.EVIDENCE_MISSING


def test_usage_errors_exit_64():
    runner = CliRunner()
    for args in (
        ["no-such-command"],
        ["--no-such-root-option"],
        ["gate", "x", "--no-such-option"],
        ["data", "synth", "out", "--drives", "many"],
        ["data", "synth", "out", "--positive-rate", "2"],  # caught by the config's validation
        ["bench"],  # a missing argument
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == ExitCode.USAGE, (args, result.output)


def test_input_errors_exit_65_with_a_fix(tmp_path):
    result = CliRunner().invoke(main, ["gate", str(tmp_path / "nope")])
    assert result.exit_code == ExitCode.INPUT
    assert "error: run directory not found" in result.output and "fix:" in result.output


def test_gate_evidence_missing_exits_2_not_a_usage_code(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    result = CliRunner().invoke(main, ["gate", str(run), "--json", str(tmp_path / "v.json")])
    assert result.exit_code == ExitCode.EVIDENCE_MISSING, result.output
    assert "MISSING" in result.output


def test_a_bug_exits_70_with_the_traceback():
    @click.group(cls=_Group)
    def root():
        pass

    @root.command()
    def boom():
        raise RuntimeError("unexpected")

    @root.command()
    def bad_input():
        raise EdgepedError("thing missing", "make it")

    result = CliRunner().invoke(root, ["boom"])
    assert result.exit_code == ExitCode.INTERNAL
    assert "Traceback" in result.output and "this is a bug" in result.output
    result = CliRunner().invoke(root, ["bad-input"])
    assert result.exit_code == ExitCode.INPUT and "fix: make it" in result.output


def test_a_refused_option_value_is_a_usage_error_without_a_traceback():
    import json

    @click.group(cls=_Group)
    def root():
        pass

    @root.command()
    def refuse():
        raise ValueError("threads must be >= 1, got 0")  # as a config's __post_init__ does

    @root.command()
    def decode():
        json.loads("{")  # a ValueError subclass from reading a file is no option value

    result = CliRunner().invoke(root, ["refuse"])
    assert result.exit_code == ExitCode.USAGE and "Traceback" not in result.output
    assert "error: invalid option: threads must be >= 1, got 0" in result.output
    assert "fix: see --help for allowed values" in result.output
    result = CliRunner().invoke(root, ["decode"])
    assert result.exit_code == ExitCode.INTERNAL and "Traceback" in result.output


def test_installed_entry_point_uses_the_same_codes():
    proc = subprocess.run(
        ["edgeped", "--no-such-option"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == ExitCode.USAGE and "No such option" in proc.stderr
