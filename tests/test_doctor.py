"""`edgeped doctor`: each check finds what is wrong and says how to fix it."""

import json
import sys

import pytest
from click.testing import CliRunner

from edgeped.cli import main
from edgeped.doctor import CHECKS, DoctorOptions, Level, run_checks


def _levels(report):
    return {f.check: f.level for f in report.findings}


def test_every_documented_check_is_registered():
    assert list(CHECKS) == ["python", "keras", "litert", "xnnpack", "emulated board", "targets"]


def test_python_and_litert_are_found_here():
    report = run_checks(only=("python", "litert"))
    assert _levels(report) == {"python": Level.OK, "litert": Level.OK}
    litert = next(f for f in report.findings if f.check == "litert")
    assert "ai-edge-litert 2." in litert.detail


def test_missing_board_fails_with_the_setup_command(tmp_path):
    report = run_checks(DoctorOptions(board_dir=str(tmp_path / "no-board")), ("emulated board",))
    (finding,) = report.findings
    if finding.detail == "qemu-aarch64 not found":
        assert "qemu-user" in finding.fix
    else:
        assert finding.level is Level.FAIL and "READY missing" in finding.detail
        assert "tools/setup_arm64_emu.sh" in finding.fix
    assert not report.ok


def test_board_without_plugin_is_named(tmp_path):
    import shutil

    if shutil.which("qemu-aarch64") is None:
        pytest.skip("qemu-user is not installed")
    (tmp_path / "READY").write_text("x")
    report = run_checks(
        DoctorOptions(board_dir=str(tmp_path), emulated_probe=False), ("emulated board",)
    )
    levels = _levels(report)
    assert levels["emulated board"] is Level.OK
    assert levels["emulated board: plugin"] is Level.FAIL


def test_targets_unreachable_board_and_missing_file(tmp_path):
    targets = tmp_path / "targets.toml"
    targets.write_text(
        '[targets.nowhere]\nkind = "ssh"\nhost = "127.0.0.1"\nport = 1\n'
        f'python = "{sys.executable}"\nconnect_timeout_s = 3\n'
    )
    report = run_checks(DoctorOptions(targets_file=str(targets), timeout_s=20), ("targets",))
    levels = _levels(report)
    assert levels["targets"] is Level.OK and levels["target nowhere"] is Level.FAIL
    finding = next(f for f in report.findings if f.check == "target nowhere")
    assert "cannot reach" in finding.detail and "targets.toml" in finding.fix
    missing = run_checks(DoctorOptions(targets_file=str(tmp_path / "no.toml")), ("targets",))
    assert _levels(missing)["targets"] is Level.FAIL


def test_cli_exit_codes_and_json_to_stdout(tmp_path):
    ok = CliRunner().invoke(main, ["doctor", "--only", "python", "--json", "-"])
    assert ok.exit_code == 0, ok.output
    payload = json.loads(ok.output[ok.output.index("{") :])
    assert payload["ok"] is True and payload["findings"][0]["check"] == "python"
    failed = CliRunner().invoke(
        main, ["doctor", "--only", "targets", "--targets", str(tmp_path / "no.toml")]
    )
    assert failed.exit_code == 1 and "FAIL" in failed.output
    unknown = CliRunner().invoke(main, ["doctor", "--only", "gpu"])
    assert unknown.exit_code == 64 and "unknown doctor check" in unknown.output


@pytest.mark.slow
def test_keras_2_and_xnnpack_are_found_here():
    report = run_checks(only=("keras", "xnnpack"))
    assert _levels(report) == {"keras": Level.OK, "xnnpack": Level.OK}
    assert "Keras 2." in report.findings[0].detail


@pytest.mark.ssh
@pytest.mark.slow
def test_reachable_board_with_known_host_key_and_runtime(tmp_path, ecu_sshd):
    targets = tmp_path / "targets.toml"
    targets.write_text(
        f'[targets.ecu-dev]\nkind = "ssh"\nssh_alias = "ecu-dev"\n'
        f'ssh_config = "{ecu_sshd["ssh_config"]}"\npython = "{sys.executable}"\n'
    )
    report = run_checks(DoctorOptions(targets_file=str(targets)), ("targets",))
    levels = _levels(report)
    assert levels["target ecu-dev"] is Level.OK, report.findings
    assert levels["target ecu-dev: runtime"] is Level.OK, report.findings
    runtime = next(f for f in report.findings if f.check == "target ecu-dev: runtime")
    assert "ai-edge-litert" in runtime.detail


def test_every_target_kind_is_probed_then_asked_for_its_runtime(tmp_path):
    """Local and emulated targets go through the same probe + runtime check as SSH ones."""
    bare = tmp_path / "bare-python"  # a Python without numpy or LiteRT
    bare.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named numpy' >&2\nexit 1\n")
    bare.chmod(0o755)
    targets = tmp_path / "targets.toml"
    targets.write_text(
        f'[targets.host]\nkind = "local"\npython = "{sys.executable}"\n'
        f'[targets.bare]\nkind = "local"\npython = "{bare}"\n'
        f'[targets.gone]\nkind = "local"\npython = "{tmp_path / "absent"}"\n'
        f'[targets.unbuilt]\nkind = "arm64-emu"\nboard_dir = "{tmp_path / "no-board"}"\n'
    )
    report = run_checks(DoctorOptions(targets_file=str(targets)), ("targets",))
    levels = _levels(report)
    assert levels["target host"] is Level.OK and levels["target host: runtime"] is Level.OK
    assert "ai-edge-litert" in next(
        f.detail for f in report.findings if f.check.startswith("target host:")
    )
    assert levels["target bare"] is Level.OK and levels["target bare: runtime"] is Level.FAIL
    bare_finding = next(f for f in report.findings if f.check == "target bare: runtime")
    assert "No module named numpy" in bare_finding.detail and "[targets.bare]" in bare_finding.fix
    assert levels["target gone"] is Level.FAIL and "target gone: runtime" not in levels
    assert levels["target unbuilt"] is Level.FAIL and "not built" in next(
        f.detail for f in report.findings if f.check == "target unbuilt"
    )
    assert not (tmp_path / "no-board").exists(), "doctor never builds a board"
