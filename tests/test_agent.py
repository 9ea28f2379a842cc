"""The slot agent on a local device root: every transition (RAUC-style before/after) and faults.

Faults covered: a full disk during the push, a corrupted stored model, a hash mismatch on
arrival, a health check that fails after the switch (golden outputs that disagree, a
latency over budget), two installs racing for the lock, a torn history line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from release_support import (
    REPO_ROOT,
    check_consistent,
    current_sha,
    make_bundle,
    make_run,
    preload_runtime,
    provision,
    run_agent,
    sha256,
    tamper_golden,
    tiny_models,
)

RUNS = ["--runs", "3"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, device_models):
    tmp = tmp_path_factory.mktemp("agent")
    models = tiny_models(device_models)
    out = {n: make_bundle(make_run(tmp / f"r-{n}", m), tmp / f"b-{n}") for n, m in models.items()}
    bad = make_bundle(make_run(tmp / "r-bad", models["good2"]), tmp / "b-bad")
    out["bad"] = tamper_golden(bad)
    preload_runtime()
    return out


def sha_of(bundle: Path) -> str:
    return sha256(bundle / "release.json")  # the board keys a release by its release.json


def agent(root: Path, *args: str, **kw):
    run = run_agent(["--root", str(root), *RUNS, *args], **kw)
    assert not run.killed and run.result is not None, run
    return run


def state(root: Path) -> dict:
    return json.loads((root / "state.json").read_text())


def history(root: Path) -> list[dict]:
    return [json.loads(ln) for ln in (root / "history.jsonl").read_text().splitlines()]


def view(root: Path) -> tuple:
    """The RAUC-style row: (slot a status, slot b status, current slot) with model names."""
    st = state(root)
    names = {}
    for name, bundle in BUNDLES.items():
        names.setdefault(sha_of(bundle), name)
    cells = []
    for slot in ("a", "b"):
        rec = st["slots"][slot]
        cells.append(f"{names.get(rec['sha256'], '-')}:{rec['status']}")
    cells.append(st["active"])
    return tuple(cells)


BUNDLES: dict[str, Path] = {}


@pytest.fixture(autouse=True)
def _names(bundles):
    BUNDLES.clear()
    BUNDLES.update({k: bundles[k] for k in ("good1", "good2", "good3")})
    BUNDLES["bad"] = bundles["bad"]


# Before/after for every transition (docs/rollout.md carries the same table). Each row:
# (setup installs, command, expected exit, expected row after, expected history event).
TRANSITIONS = [
    ([], ("install", "good1"), 0, ("good1:good", "-:empty", "a"), "committed"),
    (["good1"], ("install", "good2"), 0, ("good1:good", "good2:good", "b"), "committed"),
    (["good1", "good2"], ("install", "good3"), 0, ("good3:good", "good2:good", "a"), "committed"),
    (["good1"], ("install", "bad"), 1, ("good1:good", "bad:failed", "a"), "rolled_back"),
    ([], ("install", "bad"), 1, ("bad:failed", "-:empty", None), "rolled_back"),
    (["good1"], ("install", "good1"), 0, ("good1:good", "-:empty", "a"), None),
    (["good1", "good2"], ("rollback",), 0, ("good1:good", "good2:rolled_back", "a"), "committed"),
    (
        ["good1", "good2", "good3"],
        ("rollback", "--to", "good1"),
        0,
        ("good3:rolled_back", "good1:good", "b"),
        "committed",
    ),
    (["good1", "good2"], ("rollback", "--to", "good1", "--reason", "x"), 0, None, "committed"),
]


def _command(cmd: tuple, bundles: dict) -> list[str]:
    if cmd[0] == "install":
        return ["install", str(bundles[cmd[1]])]
    out = list(cmd)
    if "--to" in out:
        i = out.index("--to") + 1
        out[i] = sha_of(bundles[out[i]])[:16]
    return out


@pytest.mark.parametrize("setup,cmd,code,after,event", TRANSITIONS)
def test_state_table(tmp_path, bundles, setup, cmd, code, after, event):
    root = tmp_path / "dev"
    for name in setup:
        assert agent(root, "install", str(bundles[name])).code == 0
    before_events = len(history(root)) if setup else 0
    run = agent(root, *_command(cmd, bundles))
    assert run.code == code, run.result
    check_consistent(root, {None, *(sha_of(b) for b in bundles.values())})
    if after is not None:
        assert view(root) == after
    new = [r["event"] for r in history(root)[before_events:]] if event else []
    if event:
        assert event in new
    if event == "rolled_back":
        record = next(r for r in history(root) if r["event"] == "rolled_back")
        assert record["automatic"] is True and "parity" in record["reason"]
        assert re.search(r"1 of \d+ golden crops differ", record["reason"])


def test_install_status_and_manual_rollback_keep_previous(tmp_path, bundles):
    root = tmp_path / "dev"
    agent(root, "install", str(bundles["good1"]))
    run = agent(root, "install", str(bundles["good2"]))
    assert run.result["outcome"] == "installed"
    assert run.result["health_before"]["ok"] is True  # the running model, before the switch
    assert [c["check"] for c in run.result["health"]["checks"]] == [
        "integrity",
        "load",
        "io",
        "parity",
        "decisions",
        "range",
        "latency",
    ]
    st = state(root)
    assert st["previous"] == sha_of(bundles["good1"]) and st["candidate"] is None
    assert st["slots"]["b"]["attempts_left"] == 2  # one of three attempts used
    status = agent(root, "status").result
    assert status["current"] == {"slot": "b", "sha256": sha_of(bundles["good2"])}
    assert all(e["verified"] for e in status["store"])
    rb = agent(root, "rollback").result
    assert rb["outcome"] == "rolled_back" and current_sha(root) == sha_of(bundles["good1"])


def test_rollback_to_a_model_that_failed_here_is_refused(tmp_path, bundles):
    root = tmp_path / "dev"
    agent(root, "install", str(bundles["good1"]))
    assert agent(root, "install", str(bundles["bad"])).code == 1
    run = agent(root, "rollback", "--to", sha_of(bundles["bad"])[:12])
    assert run.code == 3 and run.result["error"]["code"] == "failed_here"
    assert "parity" in run.result["error"]["problem"]
    assert current_sha(root) == sha_of(bundles["good1"])


def test_pruning_never_removes_current_or_previous(tmp_path, bundles):
    root = tmp_path / "dev"
    for name in ("good1", "good2", "good3", "good1", "good2"):
        assert agent(root, "install", "--keep-extra", "0", str(bundles[name])).code == 0
    stored = set(os.listdir(root / "store"))
    assert stored == {sha_of(bundles["good1"]), sha_of(bundles["good2"])}
    assert any(r["event"] == "pruned" for r in history(root))


# --------------------------------------------------------------------------- faults


def test_hash_mismatch_on_arrival_is_refused(tmp_path, bundles):
    root = tmp_path / "dev"
    agent(root, "install", str(bundles["good1"]))
    damaged = tmp_path / "damaged"
    shutil.copytree(bundles["good2"], damaged)
    data = bytearray((damaged / "model.tflite").read_bytes())
    data[-20] ^= 0xFF  # one flipped byte in transit
    (damaged / "model.tflite").write_bytes(bytes(data))
    run = agent(root, "install", str(damaged))
    assert run.code == 3 and run.result["error"]["code"] == "hash_mismatch"
    assert "model.tflite: sha256 differs" in run.result["error"]["problem"]
    assert current_sha(root) == sha_of(bundles["good1"])
    assert sha_of(bundles["good2"]) not in os.listdir(root / "store")
    assert history(root)[-1]["event"] == "refused"
    check_consistent(root, {sha_of(bundles["good1"])})


def test_corrupted_stored_model_blocks_rollback_and_reinstall_repairs_it(tmp_path, bundles):
    root = tmp_path / "dev"
    agent(root, "install", str(bundles["good1"]))
    agent(root, "install", str(bundles["good2"]))
    g1 = sha_of(bundles["good1"])
    stored = root / "store" / g1 / "model.tflite"
    os.chmod(stored, 0o644)
    data = bytearray(stored.read_bytes())
    data[100] ^= 0x01  # bit rot in the previous model
    stored.write_bytes(bytes(data))
    status = agent(root, "status").result
    entry = next(e for e in status["store"] if e["sha256"] == g1)
    assert entry["verified"] is False and "model.tflite" in entry["problems"][0]
    run = agent(root, "rollback")
    assert run.code == 3 and run.result["error"]["code"] == "not_verified"
    assert current_sha(root) == sha_of(bundles["good2"]), "nothing switched"
    # Installing the release again repairs the store; the rotten copy is kept aside.
    assert agent(root, "install", str(bundles["good1"])).code == 0
    assert sha256(root / "store" / g1 / "release.json") == g1
    assert any(p.startswith(g1) for p in os.listdir(root / "quarantine"))


def test_failing_health_check_rolls_back_automatically(tmp_path, bundles):
    root = tmp_path / "dev"
    agent(root, "install", str(bundles["good1"]))
    run = agent(root, "install", str(bundles["bad"]))
    assert run.code == 1 and run.result["outcome"] == "rolled_back"
    parity = next(c for c in run.result["health"]["checks"] if c["check"] == "parity")
    assert parity["ok"] is False and re.match(r"1 of \d+ golden crops differ", parity["detail"])
    assert current_sha(root) == sha_of(bundles["good1"])
    events = [r["event"] for r in history(root)]
    assert events[-3:] == ["health_failed", "rolled_back", "pruned"] or events[-2:] == [
        "health_failed",
        "rolled_back",
    ]
    assert state(root)["slots"]["b"]["status"] == "failed"
    assert "parity" in state(root)["slots"]["b"]["reason"]


def test_latency_over_budget_uses_every_attempt_then_rolls_back(tmp_path, bundles):
    root = tmp_path / "dev"
    agent(root, "install", str(bundles["good1"]))
    run = agent(
        root, "install", "--attempts", "2", "--latency-ms-p95", "0.000001", str(bundles["good2"])
    )
    assert run.code == 1
    failed = [r for r in history(root) if r["event"] == "health_failed"]
    assert [r["attempts_left"] for r in failed] == [1, 0]
    assert "latency: e2e p95" in history(root)[-1]["reason"] or any(
        "latency" in r.get("reason", "") for r in history(root) if r["event"] == "rolled_back"
    )
    assert current_sha(root) == sha_of(bundles["good1"])
    assert state(root)["slots"]["b"]["attempts_left"] == 0


def test_full_disk_during_push_leaves_the_board_as_it_was(tmp_path, bundles):
    if os.geteuid() != 0:
        pytest.skip("simulating a full disk mounts a small tmpfs, which needs root")
    root = tmp_path / "dev"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(root)], check=True)
    try:
        assert agent(root, "install", str(bundles["good1"])).code == 0
        before = (root / "state.json").read_bytes()
        filler = root / "filler"
        with open(filler, "wb") as handle:  # leave less room than a bundle needs
            free = os.statvfs(root).f_bavail * os.statvfs(root).f_frsize
            handle.write(b"\0" * max(free - 200_000, 0))
        run = agent(root, "install", str(bundles["good2"]))
        assert run.code == 3 and run.result["error"]["code"] == "disk_full", run.result
        assert "nothing was switched" in run.result["error"]["problem"]
        assert (root / "state.json").read_bytes() == before
        assert os.listdir(root / "incoming") == []
        assert current_sha(root) == sha_of(bundles["good1"])
        filler.unlink()
        assert agent(root, "install", str(bundles["good2"])).code == 0
    finally:
        subprocess.run(["umount", str(root)], check=True)


def test_two_racing_installs_one_is_refused_and_one_waits(tmp_path, bundles):
    root = tmp_path / "dev"
    agent(root, "install", str(bundles["good1"]))
    gate = threading.Event()
    results = {}

    def slow_install():  # holds the lock: paused right after taking it
        def pause_then_go():
            gate.wait(30)

        results["first"] = run_agent(
            ["--root", str(root), *RUNS, "install", str(bundles["good2"])],
            kill_at=None,
            on_step={"locked": pause_then_go},
        )

    worker = threading.Thread(target=slow_install)
    worker.start()
    deadline = time.monotonic() + 20
    while "pid" not in (root / "lock").read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    refused = agent(root, "install", str(bundles["good3"]))
    assert refused.code == 3 and refused.result["error"]["code"] == "busy"
    assert "install" in refused.result["error"]["problem"]
    busy_status = agent(root, "status").result
    assert busy_status["busy"] is True  # status reads without the lock
    waiter = {}
    second = threading.Thread(
        target=lambda: waiter.update(
            run=agent(root, "--wait", "30", "install", str(bundles["good3"]))
        )
    )
    second.start()
    time.sleep(0.3)
    gate.set()
    worker.join(60)
    second.join(60)
    assert results["first"].code == 0 and waiter["run"].code == 0
    assert current_sha(root) == sha_of(bundles["good3"])
    check_consistent(root, {sha_of(bundles["good3"])})
    assert [r["event"] for r in history(root)].count("committed") == 3


def test_torn_history_line_is_tolerated_and_the_next_line_starts_clean(tmp_path, bundles):
    root = tmp_path / "dev"
    agent(root, "install", str(bundles["good1"]))
    with open(root / "history.jsonl", "a") as handle:
        handle.write('{"event": "commit')  # a power cut mid-line
    agent(root, "install", str(bundles["good2"]))
    lines = (root / "history.jsonl").read_text().splitlines()
    assert lines[-1].startswith("{") and json.loads(lines[-1])
    status = agent(root, "status").result
    assert any(r["event"] == "unreadable_line" for r in status["history"])


def test_agent_as_a_process_with_a_tar_stream_on_stdin(tmp_path, bundles):
    """The real entry point, as the host runs it: `python agent.py ... install -`."""
    from edgeped.rollout.agent_client import bundle_tar

    manifest = json.loads((bundles["good1"] / "release.json").read_text())
    provision(tmp_path / "d")  # a development board: unsigned bundles allowed
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "device" / "agent.py"), "--root", str(tmp_path / "d")]
        + ["install", "-"],
        input=bundle_tar(bundles["good1"], manifest),
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert result["outcome"] == "installed"
    steps = [ln for ln in proc.stderr.decode().splitlines() if "edgeped-agent: step" in ln]
    assert steps[0].endswith("locked") and steps[-1].endswith("pruned")


def test_bad_stream_and_bad_arguments(tmp_path):
    agent_py = str(REPO_ROOT / "device" / "agent.py")
    proc = subprocess.run(
        [sys.executable, agent_py, "--root", str(tmp_path / "d"), "install", "-"],
        input=b"not a tar stream",
        capture_output=True,
        timeout=120,
    )
    result = json.loads(proc.stdout.decode().strip())
    assert proc.returncode == 3 and result["error"]["code"] == "bundle_invalid"
    assert os.listdir(tmp_path / "d" / "incoming") == []
    proc = subprocess.run([sys.executable, agent_py, "install", "x"], capture_output=True)
    assert proc.returncode == 2 and b"--root" in proc.stderr


# --------------------------------------------------------------------------- the integrity chain


def _recard(tmp_path: Path, bundle: Path, score: float) -> Path:
    """The same model with a new card (another threshold): a new, consistent bundle."""
    from release_support import rewrite_manifest

    new = shutil.copytree(bundle, tmp_path / f"recard-{score}")
    os.chmod(new / "card.json", 0o644)
    card = json.loads((new / "card.json").read_text())
    card["threshold"]["score"] = score
    (new / "card.json").write_text(json.dumps(card))
    rewrite_manifest(new, "card.json")
    return new


@pytest.mark.parametrize("active", [True, False], ids=["while-active", "as-previous"])
def test_same_model_with_a_new_card_is_a_new_release_that_really_installs(
    tmp_path, bundles, active
):
    root = tmp_path / "dev"
    agent(root, "install", str(bundles["good1"]))
    if not active:
        agent(root, "install", str(bundles["good2"]))
    recard = _recard(tmp_path, bundles["good1"], 0.73)
    assert sha_of(recard) != sha_of(bundles["good1"])
    run = agent(root, "install", str(recard))
    assert run.code == 0 and run.result["outcome"] == "installed", run.result
    assert current_sha(root) == sha_of(recard)
    assert json.loads((root / "current" / "card.json").read_text())["threshold"]["score"] == 0.73
    # The old release (same model, old card) is still stored and is what a rollback returns to.
    assert sha_of(bundles["good1"]) in os.listdir(root / "store")
    check_consistent(root, {sha_of(recard)})


def test_a_failure_after_the_committed_switch_never_turns_success_into_failure(
    tmp_path, bundles, monkeypatch
):
    from edgeped_device.agent import commands, transactions
    from edgeped_device.agent.common import AgentError

    root = tmp_path / "dev"
    agent(root, "install", str(bundles["good1"]))

    def prune_fails(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(commands, "prune", prune_fails)  # the forked agent inherits it
    run = agent(root, "install", str(bundles["good2"]))
    assert run.code == 0 and run.result["outcome"] == "installed", run.result
    assert any("pruning the store was skipped" in w for w in run.result["warnings"])
    assert current_sha(root) == sha_of(bundles["good2"])
    monkeypatch.undo()

    def commit_disk_full(dev, state):
        raise AgentError("disk_full", "the board's disk is full", "free space")

    monkeypatch.setattr(transactions, "commit", commit_disk_full)
    run = agent(root, "install", str(bundles["good3"]))
    assert run.code == 0 and run.result["outcome"] == "installed", run.result
    assert any("deferred" in w for w in run.result["warnings"])
    assert state(root)["transaction"]["step"] == "committed"  # durable; finished next time
    monkeypatch.undo()  # the disk has room again
    status = agent(root, "status").result
    assert status["ok"], status.get("error")
    assert any("completed the interrupted install" in r for r in status["recovered"])
    check_consistent(root, {sha_of(bundles["good3"])})


def test_dangling_store_entry_is_pruned_without_failing_the_install(tmp_path, bundles):
    root = tmp_path / "dev"
    agent(root, "install", str(bundles["good1"]))
    os.symlink(tmp_path / "gone", root / "store" / ("f" * 64))  # a dangling entry
    run = agent(root, "install", "--keep-extra", "0", str(bundles["good2"]))
    assert run.code == 0 and run.result["outcome"] == "installed", run.result
    assert not os.path.lexists(root / "store" / ("f" * 64))
    check_consistent(root, {sha_of(bundles["good2"])})


@pytest.mark.parametrize("wait", ["nan", "-1", "inf", "1e9"])
def test_agent_refuses_a_wait_that_could_hang(tmp_path, wait):
    agent_py = str(REPO_ROOT / "device" / "agent.py")
    proc = subprocess.run(
        [sys.executable, agent_py, "--root", str(tmp_path / "d"), "--wait", wait, "status"],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2 and b"--wait must be" in proc.stderr


def test_rollback_to_accepts_the_models_sha256_as_status_shows_it(tmp_path, bundles):
    root = tmp_path / "dev"
    agent(root, "install", str(bundles["good1"]))
    agent(root, "install", str(bundles["good2"]))
    model_sha = json.loads((bundles["good1"] / "release.json").read_text())["model"]["sha256"]
    run = agent(root, "rollback", "--to", model_sha[:12])
    assert run.code == 0 and current_sha(root) == sha_of(bundles["good1"]), run.result
