"""Slot transactions: write-ahead in state.json, link switch, commit, undo, rollback, recovery."""

from __future__ import annotations

import contextlib
import os
import shutil
import time

from .common import AgentError, now, progress, step
from .device import Device
from .durable import remove_link, swap_link
from .health import health_check
from .store import read_manifest, verify_entry


def begin(dev: Device, state: dict, op: str, sha: str, to_slot: str, **extra) -> dict:
    """Write-ahead: the transaction is durable in state.json before any link moves."""
    txn = {
        "id": f"{op}-{time.time_ns()}-{os.getpid()}",
        "op": op,
        "sha256": sha,
        "from_slot": state["active"],
        "to_slot": to_slot,
        "from_sha256": state["slots"][state["active"]]["sha256"] if state["active"] else None,
        "to_before": dict(state["slots"][to_slot]),
        "step": "switching",
        "started": now(),
        **extra,
    }
    state["transaction"] = txn
    return txn


def link_slot(dev: Device, slot: str, sha) -> None:
    if sha:
        swap_link(dev.slot_link(slot), os.path.join("..", "store", sha))
    else:
        remove_link(dev.slot_link(slot))


def switch_to(dev: Device, slot) -> None:
    if slot:
        swap_link(dev.current, os.path.join("slots", slot))
    else:
        remove_link(dev.current)


def undo(dev: Device, state: dict, why: str) -> dict:
    """Puts links and state back as they were before the transaction began."""
    txn = state["transaction"]
    switch_to(dev, txn["from_slot"])
    step("undo_switched")
    link_slot(dev, txn["to_slot"], txn["to_before"]["sha256"])
    state["slots"][txn["to_slot"]] = txn["to_before"]
    state["active"], state["candidate"] = txn["from_slot"], None
    state["transaction"] = None
    dev.save_state(state)
    step("undone")
    return dev.log(
        "undone",
        txn=txn["id"],
        op=txn["op"],
        sha256=txn["sha256"],
        reason=why,
        active_sha256=txn["from_sha256"],
    )


def commit(dev: Device, state: dict) -> dict:
    """Makes the transaction's target the active model (idempotent)."""
    txn = state["transaction"]
    switch_to(dev, txn["to_slot"])
    to, frm = txn["to_slot"], txn["from_slot"]
    state["slots"][to]["status"] = "good"
    state["slots"][to]["reason"] = None
    if frm and txn["op"] == "rollback":
        state["slots"][frm]["status"] = "rolled_back"
        state["slots"][frm]["reason"] = txn.get("reason")
    state["active"], state["candidate"] = to, None
    if txn["from_sha256"] != txn["sha256"]:
        state["previous"] = txn["from_sha256"]
    slot = state["slots"][to]
    if txn["op"] == "install" and (slot.get("signature") or {}).get("verified"):
        seq = slot.get("sequence")
        if isinstance(seq, int):  # the newest signed release this board has run
            state["highest_sequence"] = max(int(state.get("highest_sequence") or 0), seq)
    if not dev.logged(txn["id"], "committed"):
        dev.log(
            "committed",
            txn=txn["id"],
            op=txn["op"],
            sha256=txn["sha256"],
            slot=to,
            replaced_sha256=txn["from_sha256"],
            reason=txn.get("reason"),
            waivers=state["slots"][to].get("release", {}).get("waivers", []),
        )
    step("commit_logged")
    state["transaction"] = None
    dev.save_state(state)
    step("committed")
    return state


def roll_back(dev: Device, state: dict) -> dict:
    """The health check failed after the switch: back to the model that ran before."""
    txn = state["transaction"]
    frm = txn["from_slot"]
    if frm and verify_entry(dev, txn["from_sha256"]):
        # Never switch to a copy that no longer verifies: the candidate stays, flagged.
        state["slots"][txn["to_slot"]]["status"] = "failed"
        state["slots"][txn["to_slot"]]["reason"] = (
            txn["reason"] + "; previous model does not verify"
        )
        state["transaction"], state["candidate"] = None, None
        dev.log("rollback_impossible", txn=txn["id"], sha256=txn["sha256"], reason=txn["reason"])
        dev.save_state(state)
        return state
    switch_to(dev, frm)
    step("rollback_switched")
    state["slots"][txn["to_slot"]]["status"] = "failed"
    state["slots"][txn["to_slot"]]["reason"] = txn["reason"]
    state["active"], state["candidate"] = frm, None
    if not dev.logged(txn["id"], "rolled_back"):
        dev.log(
            "rolled_back",
            txn=txn["id"],
            automatic=True,
            sha256=txn["sha256"],
            active_sha256=txn["from_sha256"],
            reason=txn["reason"],
        )
    step("rollback_logged")
    state["transaction"] = None
    dev.save_state(state)
    step("rolled_back")
    return state


def check_after_switch(dev: Device, state: dict, manifest: dict, opts) -> dict:
    """Health check through ``current``, retried while attempts are left (latency only)."""
    txn = state["transaction"]
    slot = state["slots"][txn["to_slot"]]
    health = None
    while True:
        if slot["attempts_left"] <= 0:
            txn["reason"] = (health or {}).get(
                "reason"
            ) or "attempts exhausted: the health check was interrupted on every attempt"
            break
        slot["attempts_left"] -= 1
        slot["status"] = "testing"
        txn["step"] = "checking"
        dev.save_state(state)
        step("check_started")
        health = health_check(dev.current, manifest, opts.latency_ms_p95, opts.runs)
        step("checked")
        if health["ok"]:
            txn["step"] = "committed"
            txn["health"] = _brief(health)
            dev.save_state(state)
            step("commit_recorded")
            try:
                commit(dev, state)
            except (OSError, AgentError) as exc:
                # The commit is durable in state.json: the new model stays and the next
                # command (or `recover` at boot) finishes the bookkeeping.
                health["warnings"] = [f"finishing the commit was deferred: {why(exc)}"]
            return health
        dev.log(
            "health_failed",
            txn=txn["id"],
            sha256=txn["sha256"],
            reason=health["reason"],
            attempts_left=slot["attempts_left"],
        )
        if not health["retryable"]:
            txn["reason"] = health["reason"]
            break
    txn["step"] = "rolling_back"
    txn["reason"] = "health check after the switch failed: " + txn["reason"]
    dev.save_state(state)
    step("rollback_recorded")
    roll_back(dev, state)
    return health or {"ok": False, "reason": txn["reason"], "checks": []}


def _brief(health: dict) -> dict:
    return {k: health.get(k) for k in ("ok", "reason", "e2e_ms_p95", "latency_judged")}


def recover(dev: Device, opts) -> list:
    """Finishes or undoes whatever an interrupted command left; clears staging."""
    done = []
    for name in os.listdir(dev.incoming):
        shutil.rmtree(os.path.join(dev.incoming, name), ignore_errors=True)
    for folder in (dev.root, dev.slots):
        for name in os.listdir(folder):
            if ".new." in name or ".tmp." in name:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))
    state = dev.load_state()
    txn = state.get("transaction")
    if not txn:
        return done
    where = txn["step"]
    progress(f"resuming {txn['op']} {txn['sha256'][:12]} interrupted at {where}")
    if where == "committed":
        commit(dev, state)
        done.append(f"completed the interrupted {txn['op']} of {txn['sha256'][:12]}")
    elif where == "rolling_back":
        roll_back(dev, state)
        done.append(f"completed the rollback from {txn['sha256'][:12]}: {txn['reason']}")
    elif where == "checking" and txn["op"] == "install":
        manifest = read_manifest(dev.entry(txn["sha256"]))
        switch_to(dev, txn["to_slot"])
        health = check_after_switch(dev, state, manifest, opts)
        outcome = "committed" if health["ok"] else "rolled back"
        done.append(f"resumed the interrupted health check of {txn['sha256'][:12]}: {outcome}")
    else:
        undo(dev, state, f"interrupted at step {where}")
        done.append(f"undid the interrupted {txn['op']} of {txn['sha256'][:12]} (step {where})")
    return done


def why(exc: Exception) -> str:
    return exc.problem if isinstance(exc, AgentError) else str(exc)
