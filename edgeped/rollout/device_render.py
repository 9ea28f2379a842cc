"""Rich renderings of release manifests and agent replies: slots, health checks, history, waivers.

Pure: every function returns renderables or strings; the CLI prints them.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from edgeped.rollout.agent_client import AgentReply


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def waiver_lines(releases: list[dict[str, Any] | None]) -> list[str]:
    """One line per recorded waiver of the given releases (manifest or slot summaries)."""
    lines, seen = [], set()
    for release in releases:
        if not release:
            continue
        for w in release.get("waivers") or []:
            key = (release.get("release_id"), w.get("budget"))
            if key in seen:
                continue
            seen.add(key)
            lines.append(
                f"WAIVED {w.get('budget')} ({w.get('status')}) in {release.get('release_id')}: "
                f"{w.get('reason')} [by {w.get('by', '?')} at {w.get('time', '?')}]"
            )
    return lines


def manifest_lines(manifest: dict[str, Any]) -> list[str]:
    """What a release holds, in a few lines (the gate's budget groups included)."""
    gate = manifest["gate"]
    model = manifest["model"]
    lines = [
        f"release {manifest['release_id']}: {model['name']} sha256 {model['sha256']} "
        f"({model['size_bytes']} bytes)",
        f"gate {'PASSED' if gate['passed'] else 'NOT PASSED'}: {len(gate['budgets_passed'])} "
        f"passed, {len(gate['budgets_failed'])} failed, {len(gate['budgets_missing'])} missing",
        f"checked with {manifest['runtime']['checked_with']} {manifest['runtime']['version']}; "
        f"{manifest['health'].get('golden_crops', '?')} golden crops",
    ]
    if manifest.get("replaces"):
        lines.append(f"replaces {manifest['replaces']['release_id']}")
    if manifest.get("drift_reference"):
        lines.append("drift reference profile included")
    return lines + waiver_lines([manifest])


def health_table(health: dict[str, Any] | None, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for check in (health or {}).get("checks", []):
        result = "[green]ok[/green]" if check["ok"] else "[red]FAIL[/red]"
        table.add_row(check["check"], result, escape(str(check["detail"])))
    return table


def slots_table(state: dict[str, Any], current: dict[str, Any] | None = None) -> Table:
    table = Table(title="slots", title_justify="left")
    for column in ("slot", "", "status", "sha256", "release", "attempts left", "note"):
        table.add_column(column)
    active = state.get("active")
    for slot, record in sorted(state.get("slots", {}).items()):
        release = record.get("release") or {}
        note = record.get("reason") or ""
        if release.get("waivers"):
            note = (
                (note + "; " if note else "")
                + "waived: "
                + ", ".join(w["budget"] for w in release["waivers"])
            )
        table.add_row(
            slot,
            "current" if slot == active else "",
            record.get("status", "?"),
            _short(record.get("sha256")),
            escape(release.get("release_id") or "-"),
            str(record.get("attempts_left", "-")),
            escape(note),
        )
    return table


def store_table(store: list[dict[str, Any]], state: dict[str, Any]) -> Table:
    table = Table(title="store", title_justify="left")
    for column in ("sha256", "verifies", "release", "gate", "role"):
        table.add_column(column)
    roles = {state.get("previous"): "previous", state.get("candidate"): "candidate"}
    active = state.get("active")
    if active:
        roles[state["slots"][active]["sha256"]] = "current"
    for entry in store:
        verified = "[green]yes[/green]" if entry["verified"] else "[red]NO[/red]"
        problems = escape("; ".join(entry["problems"]))
        gate = {True: "passed", False: "waived"}.get(entry.get("gate_passed"), "?")
        table.add_row(
            _short(entry["sha256"]),
            verified + ("" if entry["verified"] else f" ({problems})"),
            escape(entry.get("release_id") or "-"),
            gate,
            roles.get(entry["sha256"], ""),
        )
    return table


def history_lines(history: list[dict[str, Any]]) -> list[str]:
    out = []
    for record in history:
        parts = [record.get("time", "?"), record.get("event", "?")]
        if record.get("sha256"):
            parts.append(_short(record["sha256"]))
        if record.get("automatic"):
            parts.append("(automatic)")
        if record.get("reason"):
            parts.append(f"reason: {record['reason']}")
        if "trusted_keys" in record:
            policy = "unsigned allowed" if record.get("allow_unsigned") else "signatures required"
            keys = ", ".join(record["trusted_keys"]) or "none"
            parts.append(f"trusted keys: {keys}; {policy}")
        out.append(" ".join(parts))
    return out


def trust_lines(reply: AgentReply) -> list[str]:
    """The board's agent.json after `edgeped trust`: where it is and each key, marked."""
    r = reply.result
    if not r.get("provisioned"):
        return [f"{r.get('config')}: not provisioned (no trusted key: every install is refused)"]
    trust = r.get("trust") or {}
    if trust.get("mode") == "config_invalid":
        return [
            f"{r.get('config')}: unreadable, every install is refused; write a new one with "
            "`edgeped trust --key PUB --replace`"
        ]
    added = set(r.get("added") or [])
    lines = [f"{r.get('config')}:"]
    for kid in trust.get("trusted_keys") or []:
        lines.append(f"  trusted key {kid}" + (" (added)" if kid in added else ""))
    if not trust.get("trusted_keys"):
        lines.append("  no trusted key")
    for kid in r.get("removed") or []:
        lines.append(f"  removed key {kid}")
    return lines


def _trust_headline(r: dict[str, Any], where: str) -> str:
    added, removed = len(r.get("added") or []), len(r.get("removed") or [])
    return {
        "trust_changed": f"TRUST UPDATED on {where}: {added} key(s) added, {removed} removed",
        "trust_unchanged": f"{where}: the board already trusts what was asked; nothing written",
        "trust_shown": f"{where}: trust shown; nothing changed",
    }[r["outcome"]]


def reply_headline(reply: AgentReply) -> str:
    r = reply.result
    sha = _short(r.get("sha256"))
    where = f"{reply.target}:{reply.root}"
    if reply.outcome.startswith("trust_"):
        return _trust_headline(r, where)
    return {
        "installed": f"INSTALLED {sha} on {where}: health check passed after the switch",
        "already_active": f"{sha} is already the active model on {where}: nothing to do",
        "rolled_back": (
            f"ROLLED BACK on {where}: {sha} failed its health check after the switch; "
            "the previous model runs again"
            if r.get("command") == "install"
            else f"ROLLED BACK on {where}: {sha} is the active model now"
        ),
        "status": f"{where}: current {_short((r.get('current') or {}).get('sha256'))}",
        "recovered": f"{where}: recovered",
    }.get(reply.outcome, f"{where}: {reply.outcome}")
