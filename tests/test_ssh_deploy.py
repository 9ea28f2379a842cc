"""`edgeped deploy --host ecu-dev` against a real sshd started here, and every SSH failure mode.

The sshd runs in a network namespace named ecu-dev (loopback if one cannot be made); the
deploy test's remote Python is the emulated arm64 one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeped.errors import EdgepedError
from edgeped.targets import BenchOptions, bench_model, resolve_target
from edgeped.targets.ssh import SshTarget

pytestmark = [pytest.mark.ssh, pytest.mark.slow]
QUICK = BenchOptions(min_runs=3, min_seconds=0, warmup=1)


def _targets(tmp_path: Path, sshd: dict, name: str = "ecu-dev", **keys) -> Path:
    spec = {
        "ssh_alias": "ecu-dev",
        "ssh_config": str(sshd["ssh_config"]),
        "python": sys.executable,
        "workdir": str(tmp_path / "board"),
        **keys,
    }
    spec = {k: v for k, v in spec.items() if v is not None}
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in spec.items())
    path = tmp_path / "targets.toml"
    path.write_text(f"[targets.{name}]\n{body}\n")
    return path


def _direct(sshd: dict, **keys) -> dict:
    """Keys for a host/port/user target without the ssh config alias."""
    return {
        "ssh_alias": None,
        "ssh_config": None,
        "host": sshd["HOST"],
        "port": int(sshd["PORT"]),
        "user": sshd["USER"],
        "identity_file": str(sshd["dir"] / "id_ed25519"),
        "known_hosts_file": str(sshd["dir"] / "known_hosts"),
        **keys,
    }


@pytest.mark.emulated
def test_deploy_end_to_end_on_emulated_ecu(
    tmp_path, ecu_sshd, arm64_board, device_models, device_crops
):
    targets = _targets(
        tmp_path,
        ecu_sshd,
        python=str(arm64_board / "bin" / "python-aarch64"),
        emulated=True,
        core="cortex-a76",
    )
    run_dir = tmp_path / "runs" / "r1"
    proc = subprocess.run(
        [
            "edgeped",
            "deploy",
            str(device_models["int8"]),
            "--host",
            "ecu-dev",
            "--targets",
            str(targets),
            "--run-dir",
            str(run_dir),
            "--crops",
            str(device_crops),
            "--runs",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "parity vs host" in proc.stdout and "PASS" in proc.stdout
    assert "pushing" in proc.stderr and "computing golden outputs on the host" in proc.stderr
    bench = json.loads((run_dir / "bench.json").read_text())
    assert bench["target_name"] == "ecu-dev" and bench["target_kind"] == "ssh"
    assert bench["emulated"] is True and bench["core"] == "cortex-a76"
    assert bench["parity_ok"] is True and bench["parity"]["exact"] is True
    assert bench["runner"]["environment"]["machine"] == "aarch64"
    if ecu_sshd["MODE"] == "netns":
        assert bench["runner"]["environment"]["hostname"] == "ecu-dev"
    board = tmp_path / "board"
    assert (board / f"model-{bench['model_sha256'][:16]}.tflite").is_file()
    assert not list(board.glob(".incoming*")), "staging directories are cleaned up"


def test_deploy_in_process_on_host_python(tmp_path, ecu_sshd, device_models):
    from click.testing import CliRunner

    from edgeped.cli import main

    targets = _targets(tmp_path, ecu_sshd)
    result = CliRunner().invoke(
        main,
        [
            "deploy",
            str(device_models["float"]),
            "--host",
            "ecu-dev",
            "--targets",
            str(targets),
            "--run-dir",
            str(tmp_path / "run"),
            "--runs",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    bench = json.loads((tmp_path / "run" / "bench.json").read_text())
    assert bench["emulated"] is False and bench["parity_ok"] is True


def test_unreachable_host(tmp_path, ecu_sshd, device_models):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    targets = _targets(tmp_path, ecu_sshd, **_direct(ecu_sshd, host="127.0.0.1", port=port))
    with pytest.raises(EdgepedError, match="cannot reach") as info:
        bench_model(device_models["int8"], resolve_target("ecu-dev", targets), QUICK)
    assert "targets.toml" in info.value.fix


def test_refused_key(tmp_path, ecu_sshd, device_models):
    stranger = tmp_path / "id_stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    targets = _targets(tmp_path, ecu_sshd, **_direct(ecu_sshd, identity_file=str(stranger)))
    with pytest.raises(EdgepedError, match="refused the key") as info:
        bench_model(device_models["int8"], resolve_target("ecu-dev", targets), QUICK)
    assert "identity_file" in info.value.fix


def test_unknown_and_changed_host_key(tmp_path, ecu_sshd, device_models):
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    targets = _targets(tmp_path, ecu_sshd, known_hosts_file=str(empty))
    with pytest.raises(EdgepedError, match="host key of ecu-dev is not known") as info:
        bench_model(device_models["int8"], resolve_target("ecu-dev", targets), QUICK)
    assert "host key checking stays on" in info.value.fix
    assert empty.read_text() == "", "an unknown key is never added silently"

    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = tmp_path / "known_hosts_wrong"
    key = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    wrong.write_text(f"[{ecu_sshd['HOST']}]:{ecu_sshd['PORT']} {key}\n")
    targets = _targets(tmp_path, ecu_sshd, known_hosts_file=str(wrong))
    with pytest.raises(EdgepedError, match="has CHANGED"):
        bench_model(device_models["int8"], resolve_target("ecu-dev", targets), QUICK)


def test_missing_runtime_on_the_board(tmp_path, ecu_sshd, device_models):
    targets = _targets(tmp_path, ecu_sshd, python="/opt/no-such/bin/python3")
    with pytest.raises(EdgepedError, match="runtime is missing on ecu-dev"):
        bench_model(device_models["int8"], resolve_target("ecu-dev", targets), QUICK)
    bare = tmp_path / "bare-python"  # a Python without site-packages: no numpy, no LiteRT
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    bare.chmod(0o755)
    targets = _targets(tmp_path, ecu_sshd, python=str(bare))
    with pytest.raises(EdgepedError, match="LiteRT runtime is missing on ecu-dev") as info:
        bench_model(device_models["int8"], resolve_target("ecu-dev", targets), QUICK)
    assert "install" in info.value.fix


def test_remote_timeout_ends_the_remote_process(tmp_path, ecu_sshd, device_models):
    targets = _targets(tmp_path, ecu_sshd, timeout_s=3)
    forever = BenchOptions(min_runs=10**7, min_seconds=120, warmup=0, timeout_s=600)
    start = time.monotonic()
    with pytest.raises(EdgepedError, match="hit the remote timeout of 3 s"):
        bench_model(device_models["int8"], resolve_target("ecu-dev", targets), forever)
    assert time.monotonic() - start < 30
    time.sleep(1)
    left = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "board" / "runner.py")], capture_output=True, text=True
    )
    assert left.returncode == 1, f"runner still running on the board: {left.stdout}"


def test_full_remote_disk_leaves_nothing_half_written(
    tmp_path, ecu_sshd, device_models, device_crops
):
    if os.geteuid() != 0:
        pytest.skip("simulating a full disk mounts a tiny tmpfs, which needs root")
    board = tmp_path / "board"
    board.mkdir()
    # The tmpfs goes into the board's own mount namespace (`ip netns exec` gives sshd one).
    on_board = [
        "nsenter",
        "--target",
        (ecu_sshd["dir"] / "sshd.pid").read_text().strip(),
        "--mount",
        "--",
    ]
    subprocess.run(
        [*on_board, "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(board)], check=True
    )
    try:
        targets = _targets(tmp_path, ecu_sshd)
        with pytest.raises(EdgepedError, match="disk of ecu-dev is full") as info:
            bench_model(
                device_models["int8"], resolve_target("ecu-dev", targets), QUICK, crops=device_crops
            )  # ~150 KB of crops cannot fit in 64 KB
        assert "free space" in info.value.fix
        listing = subprocess.run(
            [*on_board, "ls", "-A", str(board)], capture_output=True, text=True, check=True
        )
        assert listing.stdout == "", "no partial model or staging directory remains"
    finally:
        subprocess.run([*on_board, "umount", str(board)], check=True)


def test_push_checks_sha256_on_the_far_side(tmp_path, ecu_sshd, device_models):
    target = resolve_target("ecu-dev", _targets(tmp_path, ecu_sshd))
    assert isinstance(target, SshTarget)
    model = device_models["int8"]
    name = SshTarget._remote_name("model", model)
    with pytest.raises(EdgepedError, match="sha256 mismatch"):
        target.push({"model": model}, manifest={name: "0" * 64})
    board = tmp_path / "board"
    assert not (board / name).exists(), "a model that failed verification is never in place"
    assert not list(board.glob(".incoming*"))
    paths = target.push({"model": model})
    assert Path(paths["model"]).read_bytes() == model.read_bytes()
