"""The release cycle over SSH to the test `ecu-dev` board, and the agent on the emulated board.

The board's Python here is the host's (a real, non-emulated target, so the health check
judges latency against the release's budget); the emulated-board test runs the same agent
under qemu-user.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from release_support import (
    check_consistent,
    current_sha,
    make_bundle,
    make_run,
    provision,
    sha256,
    tamper_golden,
    tiny_models,
)

from edgeped.cli import main
from edgeped.rollout import agent_client
from edgeped.targets import resolve_target

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


def _targets(tmp_path: Path, sshd: dict, **keys) -> Path:
    spec = {
        "ssh_alias": "ecu-dev",
        "ssh_config": str(sshd["ssh_config"]),
        "python": sys.executable,
        "workdir": str(tmp_path / "board"),
        **keys,
    }
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in spec.items())
    path = tmp_path / "targets.toml"
    path.write_text(f"[targets.ecu-dev]\n{body}\n")
    provision(tmp_path / "board" / "device")  # a development board: unsigned allowed
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, device_models):
    tmp = tmp_path_factory.mktemp("ssh_bundles")
    models = tiny_models(device_models)
    out = {n: make_bundle(make_run(tmp / f"r-{n}", m), tmp / f"b-{n}") for n, m in models.items()}
    out["bad"] = tamper_golden(make_bundle(make_run(tmp / "r-bad", models["good2"]), tmp / "bad"))
    return out


def _sha(bundle: Path) -> str:
    return sha256(bundle / "release.json")  # the board keys a release by its release.json


def test_full_cycle_on_ecu_dev(tmp_path, ecu_sshd, bundles):
    """install, status, a bad install rolled back by the board itself, a manual rollback."""
    targets = str(_targets(tmp_path, ecu_sshd))
    cli = CliRunner()
    common = ["--host", "ecu-dev", "--targets", targets]
    result = cli.invoke(main, ["install", str(bundles["good1"]), *common])
    assert result.exit_code == 0, result.output
    assert "latency" in result.output and "budget 12 ms" in result.output  # judged: real board
    result = cli.invoke(main, ["install", str(bundles["good3"]), *common])
    assert result.exit_code == 0, result.output
    result = cli.invoke(main, ["install", str(bundles["bad"]), *common])
    assert result.exit_code == 1 and "ROLLED BACK" in result.output, result.output
    result = cli.invoke(main, ["status", *common])
    assert result.exit_code == 0 and "(automatic)" in result.output
    root = tmp_path / "board" / "device"
    assert current_sha(root) == _sha(bundles["good3"])
    result = cli.invoke(main, ["rollback", *common, "--reason", "drill on ecu-dev"])
    assert result.exit_code == 0 and "ROLLED BACK" in result.output
    assert current_sha(root) == _sha(bundles["good1"])
    check_consistent(root, {_sha(bundles["good1"])})
    if ecu_sshd["MODE"] == "netns":
        history = (root / "history.jsonl").read_text()
        assert "drill on ecu-dev" in history


def test_dropped_connection_does_not_stop_the_switch(tmp_path, ecu_sshd, bundles):
    """The ssh client dies mid-install; the board's agent finishes the install on its own."""
    target = resolve_target("ecu-dev", _targets(tmp_path, ecu_sshd))
    device = agent_client.DeviceRoot(target, agent_client.default_root(target, None))
    agent_client.install(device, bundles["good1"])
    manifest = json.loads((bundles["good2"] / "release.json").read_text())
    argv = target.ssh_argv(
        f"cd {target.config.workdir} && exec {sys.executable} agent.py --root {device.root} "
        "install -"
    )
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdin.write(agent_client.bundle_tar(bundles["good2"], manifest))
    proc.stdin.close()
    for raw in proc.stderr:
        if b"step switched" in raw:
            proc.send_signal(signal.SIGKILL)  # the connection drops right after the switch
            break
    proc.wait(30)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        reply = agent_client.status(device)
        if not reply.result["busy"] and reply.state.get("transaction") is None:
            break
        time.sleep(0.5)
    root = Path(device.root)
    assert current_sha(root) == _sha(bundles["good2"])
    check_consistent(root, {_sha(bundles["good2"])})
    events = [json.loads(ln)["event"] for ln in (root / "history.jsonl").read_text().splitlines()]
    assert events[-1] in {"committed", "pruned"} and "undone" not in events


def test_seeded_kills_over_ssh(tmp_path, ecu_sshd, bundles):
    """A smaller crash run over the real SSH path: the remote agent is SIGKILLed by PID
    (through a second SSH session) when a seeded step marker arrives."""
    import random

    target = resolve_target("ecu-dev", _targets(tmp_path, ecu_sshd))
    device = agent_client.DeviceRoot(target, agent_client.default_root(target, None))
    agent_client.status(device)  # pushes the agent and runner once
    root = Path(device.root)
    rng = random.Random(7)
    order = ["good1", "good2", "good3", "bad", "good1", "good3", "good2", "bad"]
    kills, possible = 0, {None}
    for name in order:
        manifest = json.loads((bundles[name] / "release.json").read_text())
        argv = target.ssh_argv(
            f"cd {target.config.workdir} && exec {sys.executable} agent.py --root {device.root} "
            "--runs 3 install -"
        )
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        proc.stdin.write(agent_client.bundle_tar(bundles[name], manifest))
        proc.stdin.close()
        kill_at, seen, pid = rng.randint(1, 14), 0, None
        for raw in proc.stderr:
            line = raw.decode()
            if line.startswith("edgeped-agent: pid "):
                pid = int(line.split()[2])
            elif "edgeped-agent: step " in line:
                seen += 1
                if seen == kill_at:
                    target.exec_script(["-c", f"import os; os.kill({pid}, 9)"], 30)
                    kills += 1
                    break
        proc.wait(60)
        time.sleep(0.2)
        allowed = possible | {_sha(bundles[name])}
        sha = current_sha(root)
        assert sha in allowed
        reply = agent_client.status(device)  # the next command completes or undoes
        assert reply.state["transaction"] is None
        possible = {check_consistent(root, allowed)}
    assert kills >= 5


@pytest.mark.emulated
def test_same_agent_on_the_emulated_board(tmp_path, arm64_board, bundles):
    target = resolve_target("arm64-emu", None, "a53")
    device = agent_client.DeviceRoot(target, str(tmp_path / "emu-root"))
    provision(tmp_path / "emu-root")
    reply = agent_client.install(device, bundles["good1"])
    assert reply.exit_code == 0 and reply.outcome == "installed", reply.result
    latency = next(c for c in reply.result["health"]["checks"] if c["check"] == "latency")
    assert "not judged" in latency["detail"]  # emulated time is not board time
    parity = next(c for c in reply.result["health"]["checks"] if c["check"] == "parity")
    assert parity["ok"] and "bit-exact" in parity["detail"]
    assert agent_client.status(device).result["current"]["sha256"] == _sha(bundles["good1"])
    assert os.readlink(tmp_path / "emu-root" / "current") == "slots/a"
