"""The Target contract: every registered target kind moves files, runs Python and reports
failures the same way, so callers never ask a target for its kind.

A new kind registered in edgeped/targets/registry.py makes the tests below fail until it
has a fixture here (and then until it keeps the contract).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path, PurePosixPath

import pytest

from edgeped.errors import EdgepedError
from edgeped.targets import BenchOptions, bench_model
from edgeped.targets.base import Target, TargetTimeout
from edgeped.targets.registry import target_kinds

MARKS = {
    "arm64-emu": [pytest.mark.emulated, pytest.mark.slow],
    "ssh": [pytest.mark.ssh, pytest.mark.slow],
}
KINDS = [pytest.param(kind, marks=MARKS.get(kind, [])) for kind in target_kinds()]
EXEC_TIMEOUT_S = 120.0  # the emulated Python starts in seconds, not milliseconds


def _local(request, tmp_path):
    from edgeped.targets.local import LocalTarget

    return LocalTarget(name="local", python=sys.executable)


def _arm64_emu(request, tmp_path):
    from edgeped.targets.emulated import EmulatedArm64Target

    return EmulatedArm64Target(core="a76", board_dir=request.getfixturevalue("arm64_board"))


def _ssh(request, tmp_path):
    from edgeped.targets.ssh import SshTarget, SshTargetConfig

    sshd = request.getfixturevalue("ecu_sshd")
    return SshTarget(
        SshTargetConfig(
            name="ecu-dev",
            ssh_alias="ecu-dev",
            ssh_config=str(sshd["ssh_config"]),
            python=sys.executable,
            workdir=str(tmp_path / "board"),
        )
    )


FACTORIES = {"local": _local, "arm64-emu": _arm64_emu, "ssh": _ssh}


@pytest.fixture(params=KINDS)
def target(request, tmp_path, monkeypatch) -> Target:
    kind = request.param
    if kind not in FACTORIES:
        pytest.fail(f"target kind {kind!r} has no contract fixture: add one to {__file__}")
    # Targets that use files in place resolve relative paths against the working directory.
    monkeypatch.chdir(tmp_path)
    made = FACTORIES[kind](request, tmp_path)
    assert made.kind == kind
    return made


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_describe_names_the_target(target):
    facts = target.describe()
    assert facts["name"] == target.name and facts["kind"] == target.kind
    assert facts["emulated"] is target.emulated


def test_push_then_pull_round_trips_bytes(target, tmp_path):
    data = bytes(range(256)) * 513 + b"\x00\r\n end"
    src = tmp_path / "host" / "blob.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    paths = target.push({"blob": src})
    assert set(paths) == {"blob"} and PurePosixPath(paths["blob"]).is_absolute()
    dest = tmp_path / "back" / "blob.bin"
    assert target.pull(paths["blob"], dest) == dest
    assert dest.read_bytes() == data
    assert [p.name for p in dest.parent.iterdir()] == ["blob.bin"], "no temp file left"


def test_exec_returns_exit_code_output_and_reads_stdin(target):
    code = (
        "import os, sys\n"
        "data = sys.stdin.buffer.read()\n"
        "sys.stdout.buffer.write(data[::-1] + os.environ['EDGEPED_CONTRACT'].encode())\n"
        "sys.stderr.write('to stderr')\n"
        "sys.exit(3)\n"
    )
    proc = target.exec(["-c", code], EXEC_TIMEOUT_S, stdin=b"abc", env={"EDGEPED_CONTRACT": " a b"})
    assert proc.returncode == 3
    assert proc.stdout == b"cba a b"
    assert b"to stderr" in proc.stderr
    ok = target.exec(["-c", "print('fine')"], EXEC_TIMEOUT_S)
    assert ok.returncode == 0 and ok.stdout.strip() == b"fine"


def test_remote_paths_name_the_same_files_for_exec_and_pull(target, tmp_path):
    src = tmp_path / "model.tflite"
    src.write_bytes(b"not a model, just bytes to hash" * 100)
    pushed = target.push({"model": src})["model"]
    made = target.remote_path("made-on-target.txt")
    assert PurePosixPath(made).is_absolute() and made.endswith("/made-on-target.txt")
    assert target.remote_path(made) == made, "an absolute path stays as it is"
    code = (
        "import hashlib, os, sys\n"
        "digest = hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest()\n"
        "os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)\n"
        "open(sys.argv[2], 'w').write(digest)\n"
    )
    proc = target.exec(["-c", code, pushed, made], EXEC_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    back = target.pull(made, tmp_path / "pulled.txt")
    assert back.read_text() == _sha(src.read_bytes())


def test_missing_files_are_clear_errors(target, tmp_path):
    dest = tmp_path / "pulled" / "nothing.bin"
    with pytest.raises(EdgepedError, match=r"no-such-file\.bin not found on") as err:
        target.pull(target.remote_path("no-such-file.bin"), dest)
    assert err.value.fix
    assert not dest.exists()
    with pytest.raises(EdgepedError, match=r"absent\.tflite not found on the host"):
        target.push({"model": tmp_path / "absent.tflite"})


def test_exec_past_its_timeout_is_stopped(target):
    with pytest.raises(TargetTimeout, match="did not finish within 3 s"):
        target.exec(["-c", "import time; time.sleep(120)"], 3)


def test_run_benchmarks_a_model(target, device_models):
    result = bench_model(
        device_models["int8"], target, BenchOptions(min_runs=3, min_seconds=0, warmup=1)
    )
    summary = result.summary()
    assert result.target["kind"] == target.kind and summary["emulated"] is target.emulated
    assert result.model_sha256 == _sha(Path(device_models["int8"]).read_bytes())
    assert summary["invoke_ms_p50"] > 0
