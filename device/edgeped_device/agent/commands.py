"""The agent's commands: install, rollback, recover, status and trust, each under the lock."""

from __future__ import annotations

import os
import shutil

from ..common import sha256_file
from .common import EXIT_NOT_INSTALLED, SLOTS, AgentError, now, read_json, step
from .device import Device, Lock, other, try_lock
from .durable import write_atomic
from .health import health_check
from .store import (
    file_problems,
    prune,
    read_manifest,
    receive,
    release_sha,
    release_summary,
    store_bundle,
    verify_entry,
)
from .transactions import begin, check_after_switch, commit, link_slot, recover, switch_to, why
from .trust import (
    check_sequence,
    check_signature,
    load_trust,
    new_keys,
    trust_config,
    trust_path,
)


def cmd_install(dev: Device, opts) -> tuple:
    with Lock(dev, "install", opts.wait):
        recovered = recover(dev, opts)
        step("locked")
        inc = receive(dev, opts.source)
        step("received")
        try:
            manifest = read_manifest(inc)
            problems = file_problems(inc, manifest)
        except AgentError:
            shutil.rmtree(inc, ignore_errors=True)
            raise
        if problems:
            shutil.rmtree(inc, ignore_errors=True)
            dev.log("refused", reason="hash mismatch on arrival: " + "; ".join(problems))
            raise AgentError(
                "hash_mismatch",
                "the bundle failed its check on arrival: " + "; ".join(problems),
                "rebuild the bundle or push it again; nothing was stored or switched",
            )
        try:
            signature = check_signature(inc, manifest, load_trust(dev))
            check_sequence(dev.load_state(), manifest, signature, opts.allow_downgrade)
        except AgentError as exc:
            shutil.rmtree(inc, ignore_errors=True)
            dev.log("refused", reason=f"{exc.code}: {exc.problem}")
            raise
        step("verified")
        state = dev.load_state()
        sha = release_sha(inc)
        if state["active"] and state["slots"][state["active"]]["sha256"] == sha:
            shutil.rmtree(inc, ignore_errors=True)
            return 0, {"outcome": "already_active", "sha256": sha, "recovered": recovered}
        store_bundle(dev, inc, sha)
        manifest = read_manifest(dev.entry(sha))  # the stored copy is what gets checked
        step("stored")
        before = None
        if state["active"]:
            # The running model, before anything changes: a broken one is noted, not a blocker.
            try:
                before = health_check(dev.current, read_manifest(dev.current), None, opts.runs)
            except AgentError as exc:
                before = {"ok": False, "reason": exc.problem, "checks": []}
            dev.log(
                "precheck",
                sha256=state["slots"][state["active"]]["sha256"],
                ok=before["ok"],
                reason=before["reason"],
            )
        step("prechecked")
        to = other(state["active"]) if state["active"] else "a"
        txn = begin(dev, state, "install", sha, to)
        state["candidate"] = sha
        state["slots"][to] = {
            "sha256": sha,
            "status": "installed",
            "attempts_left": opts.attempts,
            "installed": now(),
            "release": release_summary(manifest),
            "reason": None,
            "manifest_sha256": sha256_file(os.path.join(dev.entry(sha), "release.json")),
            "signature": signature,
            "sequence": manifest.get("sequence"),
        }
        dev.save_state(state)
        step("txn_begun")
        dev.log(
            "install_started", txn=txn["id"], sha256=sha, slot=to, release=release_summary(manifest)
        )
        link_slot(dev, to, sha)
        step("slot_linked")
        switch_to(dev, to)
        step("switched")
        health = check_after_switch(dev, state, manifest, opts)
        # The switch is decided and durable: tidying the store is best effort and can
        # never turn the outcome into a failure (the next command retries it).
        warnings = list(health.pop("warnings", []))
        try:
            prune(dev, state, opts.keep_extra)
        except (OSError, AgentError) as exc:
            warnings.append(f"pruning the store was skipped: {why(exc)}")
        step("pruned")
    outcome = "installed" if health["ok"] else "rolled_back"
    return (
        0 if health["ok"] else EXIT_NOT_INSTALLED,
        {
            "outcome": outcome,
            "sha256": sha,
            "health_before": before,
            "health": health,
            "recovered": recovered,
            "warnings": warnings,
        },
    )


def resolve_sha(dev: Device, text: str) -> str:
    text = text.lower()
    names = os.listdir(dev.store)
    matches = [n for n in names if n.startswith(text)]
    if not matches:  # also by the model's sha256, as `edgeped status` shows both
        matches = [n for n in names if _entry_model_sha(dev, n).startswith(text)]
    if len(matches) != 1:
        raise AgentError(
            "not_found",
            f"{len(matches)} stored models match {text!r}",
            "pass more of the sha256 (`edgeped status` lists the store)",
        )
    return matches[0]


def _entry_model_sha(dev: Device, name: str) -> str:
    try:
        return str(read_manifest(dev.entry(name)).get("model", {}).get("sha256") or "")
    except AgentError:
        return ""


def cmd_rollback(dev: Device, opts) -> tuple:
    with Lock(dev, "rollback", opts.wait):
        recovered = recover(dev, opts)
        step("locked")
        state = dev.load_state()
        active = state["active"]
        if not active:
            raise AgentError(
                "no_model", "no model is installed: nothing to roll back", "install a release first"
            )
        sha = resolve_sha(dev, opts.to) if opts.to else state.get("previous")
        if not sha:
            raise AgentError(
                "no_previous",
                "there is no previous model to roll back to",
                "pass --to SHA256 of a stored model (`edgeped status`)",
            )
        if sha == state["slots"][active]["sha256"]:
            raise AgentError(
                "already_active",
                f"{sha[:12]} is already the active model",
                "pick another stored model with --to",
            )
        slot = next((s for s in SLOTS if state["slots"][s]["sha256"] == sha), None)
        if slot and state["slots"][slot]["status"] == "failed":
            raise AgentError(
                "failed_here",
                f"{sha[:12]} failed its health check on this board: "
                f"{state['slots'][slot].get('reason')}",
                "install its bundle again to re-check it, or roll back to another model",
            )
        problems = verify_entry(
            dev, sha, state["slots"][slot].get("manifest_sha256") if slot else None
        )
        if problems:
            dev.log("refused", op="rollback", sha256=sha, reason="; ".join(problems))
            raise AgentError(
                "not_verified",
                f"the stored copy of {sha[:12]} does not verify: " + "; ".join(problems),
                "install its bundle again to repair the store; nothing was switched",
            )
        manifest = read_manifest(dev.entry(sha))
        health = health_check(dev.entry(sha), manifest, None, opts.runs)
        step("checked")
        if not health["ok"]:
            dev.log("refused", op="rollback", sha256=sha, reason=health["reason"])
            raise AgentError(
                "health_failed",
                f"{sha[:12]} fails its health check: {health['reason']}",
                "roll back to another stored model",
            )
        to = other(active)
        txn = begin(dev, state, "rollback", sha, to, reason=opts.reason or "manual rollback")
        if state["slots"][to]["sha256"] != sha:
            state["slots"][to] = {
                "sha256": sha,
                "status": "installed",
                "attempts_left": 0,
                "installed": now(),
                "release": release_summary(manifest),
                "reason": None,
                "manifest_sha256": sha256_file(os.path.join(dev.entry(sha), "release.json")),
            }
        dev.save_state(state)
        step("txn_begun")
        link_slot(dev, to, sha)
        step("slot_linked")
        switch_to(dev, to)
        step("switched")
        txn["step"] = "committed"
        dev.save_state(state)
        step("commit_recorded")
        commit(dev, state)
    return 0, {"outcome": "rolled_back", "sha256": sha, "health": health, "recovered": recovered}


def cmd_recover(dev: Device, opts) -> tuple:
    with Lock(dev, "recover", opts.wait):
        return 0, {"outcome": "recovered", "recovered": recover(dev, opts)}


def cmd_status(dev: Device, opts) -> tuple:
    lock = try_lock(dev, "status")
    recovered, busy = [], lock is None
    try:
        if lock is not None:
            recovered = recover(dev, opts)
        store = []
        for sha in sorted(os.listdir(dev.store)):
            try:
                manifest = read_manifest(dev.entry(sha))
                summary = release_summary(manifest)
            except AgentError:
                summary = {}
            problems = verify_entry(dev, sha)
            store.append(
                {
                    "sha256": sha,
                    "verified": not problems,
                    "problems": problems,
                    "size_bytes": os.path.getsize(os.path.join(dev.entry(sha), "model.tflite"))
                    if os.path.isfile(os.path.join(dev.entry(sha), "model.tflite"))
                    else None,
                    **summary,
                }
            )
        current = {"slot": dev.current_slot(), "sha256": dev.link_sha(dev.current)}
    finally:
        if lock is not None:
            lock.__exit__()
    return 0, {
        "outcome": "status",
        "busy": busy,
        "recovered": recovered,
        "current": current,
        "store": store,
        "history": dev.history(opts.history),
    }


def cmd_trust(dev: Device, opts) -> tuple:
    """Shows the board's trust, or merges keys and the signature policy into agent.json.

    The one writer of agent.json: temp file, fsync, rename(2), fsync of the directory, under
    the device lock (an install never reads a half-changed trust). A config that trusts no
    key while requiring signatures would refuse every install: it is never written.
    """
    path = trust_path(dev)
    new = new_keys(opts.key)
    if not new and opts.allow_unsigned is None and not opts.replace:
        return 0, {"outcome": "trust_shown", "config": path, "provisioned": os.path.exists(path)}
    with Lock(dev, "trust", opts.wait):
        try:
            before = load_trust(dev)
            extra = read_json(path) if os.path.exists(path) else {}
        except AgentError as exc:
            if not opts.replace:
                raise AgentError(
                    "config_invalid",
                    f"{exc.problem}; it was left as it is (keys cannot be added to it)",
                    "pass --replace with every key the board should trust to write a new one",
                ) from None
            before, extra = None, {}
        keys = {} if opts.replace or before is None else dict(before["keys"])
        keys.update(new)
        allow = opts.allow_unsigned
        if allow is None:
            allow = before["allow_unsigned"] if before else False
        if not keys and not allow:
            raise AgentError(
                "lockout",
                f"{path} would trust no key while requiring signatures: the board would "
                "refuse every install; nothing was written",
                "add a key (--key PREFIX.pub), or pass --allow-unsigned for a development board",
            )
        if opts.replace:
            extra = {}
        data = trust_config(keys, allow, extra)
        old = before["keys"] if before else {}
        added = [k for k in keys if k not in old]
        removed = [k for k in old if k not in keys]
        try:
            with open(path, "rb") as handle:
                changed = handle.read() != data
        except OSError:
            changed = True
        if changed:
            try:
                write_atomic(path, data)
            except OSError as exc:
                raise AgentError(
                    "config_unwritable",
                    f"cannot write {path} ({exc.strerror or exc}); the board's trust is unchanged",
                    "on a read-only board image, change agent.json in the image; otherwise "
                    "make the device root writable for the agent's user",
                ) from exc
            step("trust_written")
            dev.log(
                "trust_changed",
                added=added,
                removed=removed,
                trusted_keys=list(keys),
                allow_unsigned=allow,
            )
    return 0, {
        "outcome": "trust_changed" if changed else "trust_unchanged",
        "config": path,
        "provisioned": True,
        "added": added,
        "removed": removed,
    }


COMMANDS = {
    "install": cmd_install,
    "rollback": cmd_rollback,
    "status": cmd_status,
    "recover": cmd_recover,
    "trust": cmd_trust,
}
