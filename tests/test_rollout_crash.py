"""SIGKILL the slot agent between every pair of steps, and at seeded random points.

After every kill, ``current`` resolves to the model that ran before the command or to the
one it was switching to, and that model's sha256 verifies; the next command completes or
undoes the interrupted one and leaves a consistent device (no transaction, links equal
state, store verified, history parseable, no staging left).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from release_support import (
    check_after_kill,
    check_consistent,
    current_sha,
    make_bundle,
    make_run,
    preload_runtime,
    run_agent,
    sha256,
    tamper_golden,
    tiny_models,
)

RUNS = ["--runs", "3"]  # timed invokes per health check: the crash test is about steps


@pytest.fixture
def tmp_path(tmp_path):
    """Device roots on tmpfs when there is one: a SIGKILL leaves the page cache intact, so
    these tests exercise step order, not fsync (which only matters for power loss) and
    run many times faster without it."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="edgeped-crash-", dir=shm))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, device_models):
    tmp = tmp_path_factory.mktemp("crash")
    models = tiny_models(device_models)
    out = {}
    for name in ("good1", "good2", "good3"):
        out[name] = make_bundle(make_run(tmp / f"run-{name}", models[name]), tmp / f"b-{name}")
    bad = make_bundle(make_run(tmp / "run-bad", models["good2"]), tmp / "b-bad")
    out["bad"] = tamper_golden(bad)
    preload_runtime()
    return out


def _sha(bundle: Path) -> str:
    return sha256(bundle / "release.json")  # the board keys a release by its release.json


def _install(root: Path, bundle: Path) -> list[str]:
    return ["--root", str(root), *RUNS, "install", str(bundle)]


def _rollback(root: Path, to: str | None = None) -> list[str]:
    return ["--root", str(root), *RUNS, "rollback", *(["--to", to] if to else [])]


def _status(root: Path) -> list[str]:
    return ["--root", str(root), *RUNS, "status"]


def _pending(root: Path, rollback: bool) -> set:
    """Shas a command may legitimately switch to besides its own target: the previous model
    (plain rollback) and both ends of a transaction an earlier kill left pending."""
    path = root / "state.json"
    if not path.exists():
        return set()
    state = json.loads(path.read_text())
    out = {state["previous"]} if rollback else set()
    txn = state.get("transaction")
    if txn:
        out |= {txn["sha256"], txn["from_sha256"]}
        if rollback:
            out.add(txn["from_sha256"])
    return out


def _prepare(root: Path, bundles: dict, installs: list[str]) -> None:
    for name in installs:
        run = run_agent(_install(root, bundles[name]))
        assert run.code == 0, run.result


def _scenarios(bundles):
    """(name, installs done beforehand, command, shas current may hold after a kill)."""
    g1, g2, g3, bad = (_sha(bundles[n]) for n in ("good1", "good2", "good3", "bad"))
    return [
        ("first install", [], lambda r: _install(r, bundles["good1"]), {None, g1}),
        ("install over good", ["good1"], lambda r: _install(r, bundles["good2"]), {g1, g2}),
        ("bad install rolls back", ["good1"], lambda r: _install(r, bundles["bad"]), {g1, bad}),
        ("rollback to previous", ["good1", "good2"], lambda r: _rollback(r), {g2, g1}),
        (
            "rollback --to an older model",
            ["good1", "good2", "good3"],
            lambda r: _rollback(r, g1[:16]),
            {g3, g1},
        ),
    ]


def test_kill_between_every_pair_of_steps(tmp_path, bundles):
    """Every step boundary of every command, one kill each, then the next command."""
    tally = {}
    for name, installs, command, allowed in _scenarios(bundles):
        template = tmp_path / f"template-{len(tally)}"
        template.mkdir()
        _prepare(template, bundles, installs)
        before = current_sha(template) if installs else None
        kill_at = 1
        while True:
            root = tmp_path / f"dev-{len(tally)}-{kill_at}"
            shutil.copytree(template, root, symlinks=True)
            run = run_agent(command(root), kill_at=kill_at)
            if not run.killed:
                assert run.result and run.result["ok"], run.result
                check_consistent(root, allowed)
                break
            check_after_kill(root, allowed)
            after = run_agent(_status(root))
            assert after.code == 0, after.result
            sha = check_consistent(root, allowed)
            assert sha in allowed and (sha == before or sha in allowed - {before})
            shutil.rmtree(root)
            kill_at += 1
        tally[name] = kill_at - 1
    # Each command has its full set of step boundaries (an install with a failing health
    # check ends in the rollback steps), so none of them can shrink unnoticed.
    assert tally["first install"] >= 13 and tally["install over good"] >= 13
    assert tally["bad install rolls back"] >= 14 and tally["rollback to previous"] >= 8
    print(f"kill points per command: {tally}, total {sum(tally.values())}")


@pytest.mark.parametrize("seed", range(3))
def test_seeded_random_kills_over_a_sequence_of_commands(tmp_path, bundles, seed):
    """Random commands on one device, each killed at a random step or mid-step (or not).

    A killed command's successor, which must first finish or undo it, is itself killed at
    random too, so kills inside recovery are covered.
    """
    rng = random.Random(seed)
    root = tmp_path / "dev"
    names = ["good1", "good2", "good3", "bad"]
    shas = {n: _sha(bundles[n]) for n in names}
    possible = {None}  # what current may be now; one value once a command completed
    kills = 0
    for _ in range(80):
        op = rng.choice(["install", "install", "install", "rollback", "rollback_to", "status"])
        target = None
        if op == "install":
            target = rng.choice(names)
            argv = _install(root, bundles[target])
            target = shas[target]
        elif op == "rollback":
            argv = _rollback(root)
        elif op == "rollback_to":
            target = rng.choice([shas[n] for n in names if n != "bad"])
            argv = _rollback(root, target)
        else:
            argv = _status(root)
        allowed = possible | ({target} if target else set()) | _pending(root, op == "rollback")
        kill_at = rng.randint(1, 14) if rng.random() < 0.75 else None
        jitter = rng.uniform(0, 0.003) if kill_at and rng.random() < 0.3 else None
        run = run_agent(argv, kill_at=kill_at, jitter_s=jitter)
        if run.killed:
            kills += 1
            check_after_kill(root, allowed)
            possible = allowed
            continue
        assert run.result is not None, run
        if not run.result["ok"]:  # a refusal (nothing to roll back to, already active, ...)
            assert run.code == 3 and run.result["error"]["code"] in {
                "no_model",
                "no_previous",
                "already_active",
                "not_found",
                "health_failed",
                "failed_here",
            }, run.result
        sha = check_consistent(root, allowed)
        possible = {sha}
    assert kills >= 20
    print(f"seed {seed}: 80 commands, {kills} killed")
    history = (root / "history.jsonl").read_text().splitlines()
    assert any('"undone"' in ln or '"committed"' in ln for ln in history)
