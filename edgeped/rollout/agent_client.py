"""Drive the board's slot agent (device/agent.py) on a target: install, rollback, status, trust.

The host never switches slots itself: it streams the bundle to the agent on the board and
reads back one JSON answer. A dropped connection cannot leave the board half-switched,
because the agent finishes (or, on its next start, undoes) every step on its own.

The same agent runs on every target: a local directory (the host's Python), the emulated
arm64 board (qemu-user Python) and an SSH board (agent and runner pushed to workdir).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeped.errors import EdgepedError
from edgeped.rollout.bundle import read_bundle
from edgeped.rollout.trust import TrustChange
from edgeped.targets.base import (
    Progress,
    Target,
    TargetTimeout,
    device_package_files,
    runner_path,
)

EXIT_NOT_INSTALLED = 1  # device/agent.py: the install did not take (rolled back or refused)
EXIT_PROBLEM = 3
DEFAULT_TIMEOUT_S = 900.0


def agent_path() -> Path:
    """The slot agent shipped beside the runner in this checkout."""
    return runner_path().with_name("agent.py")


def agent_files() -> dict[str, Path]:
    """What a call pushes, by role: the agent, the runner and the package both import."""
    return {"agent": agent_path(), "runner": runner_path(), **device_package_files()}


@dataclass(frozen=True)
class AgentReply:
    """The agent's answer: its exit code and its one JSON result."""

    exit_code: int
    result: dict[str, Any]
    target: str
    root: str
    stderr: str = ""

    @property
    def outcome(self) -> str:
        return self.result.get("outcome", "error")

    @property
    def state(self) -> dict[str, Any]:
        return self.result.get("state") or {}

    def steps(self) -> list[str]:
        """The step markers the agent printed, in order (its progress on stderr)."""
        marker = "edgeped-agent: step "
        return [ln[len(marker) :] for ln in self.stderr.splitlines() if ln.startswith(marker)]


@dataclass(frozen=True)
class DeviceRoot:
    """Where the agent keeps store, slots and state on a target."""

    target: Target
    root: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not str(self.root).strip() or str(self.root).rstrip("/") == "":
            raise ValueError(f"root must be a directory other than /, got {self.root!r}")


def default_root(target: Target, root: str | None) -> str:
    """The device root: as given, else ``<workdir>/device`` on an SSH board.

    Raises:
        EdgepedError: a local or emulated target without --root.
    """
    if root:
        return target.remote_path(root)
    if target.workdir:
        return target.remote_path("device")
    raise EdgepedError(
        f"target {target.name!r} needs a device root directory",
        "pass --root DIR (a local directory plays the board's storage)",
    )


def call_agent(
    device: DeviceRoot, args: list[str], stdin: bytes = b"", progress: Progress | None = None
) -> AgentReply:
    """Runs ``agent.py --root ROOT ARGS`` on the target and parses its JSON line.

    Raises:
        EdgepedError: the target cannot run the agent, or the agent reported a problem
            (exit 3) such as busy, disk full, hash mismatch or an unverifiable model.
    """
    target = device.target
    argv_tail = ["--root", device.root, *args]
    paths = target.push(agent_files(), progress)
    try:
        proc = target.exec(
            [paths["agent"], *argv_tail],
            device.timeout_s,
            stdin,
            {"PYTHONHASHSEED": "0", **device.extra_env},
            progress,
        )
    except TargetTimeout as exc:
        raise EdgepedError(
            f"the agent on {target.name} did not finish within {device.timeout_s:g} s",
            "run `edgeped status` to see what it completed (an interrupted step is "
            "finished or undone by the next command)",
        ) from exc
    stdout = proc.stdout.decode(errors="replace")
    stderr = proc.stderr.decode(errors="replace")
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith("{")), None)
    if line is None:
        tail = "\n".join(stderr.strip().splitlines()[-8:])
        raise EdgepedError(
            f"the agent on {target.name} exited with code {proc.returncode} and no result"
            + (f":\n{tail}" if tail else ""),
            "run `edgeped status` for the board's state; check its Python and disk",
        )
    result = json.loads(line)
    if not result.get("ok"):
        err = result.get("error", {})
        raise EdgepedError(
            f"{target.name}: {err.get('problem', 'the agent failed')} [{err.get('code', '?')}]",
            err.get("fix"),
        )
    return AgentReply(proc.returncode, result, target.name, device.root, stderr)


def bundle_tar(bundle: Path, manifest: dict) -> bytes:
    """The bundle's files as one tar stream (what the agent reads on stdin)."""
    names = ["release.json", "release.sig", *sorted(manifest["files"])]  # .sig when signed
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in names:
            path = bundle / name
            if path.is_file():
                tar.add(str(path), arcname=name, recursive=False)
    return buffer.getvalue()


def latency_budget(target: Target, manifest: dict) -> float | None:
    """The e2e p95 budget the health check judges, or None where timings mean nothing.

    Emulated time is 50-120x real time and the host is not the board: only real boards of
    the gate's counted kinds (``runtime.target_kinds``, default ssh) are judged.
    """
    health = manifest.get("health") or {}
    kinds = health.get("latency_target_kinds") or ["ssh"]
    if target.emulated or target.kind not in kinds:
        return None
    return health.get("latency_ms_p95")


def install(
    device: DeviceRoot,
    bundle: str | os.PathLike,
    *,
    attempts: int = 3,
    wait_s: float = 0.0,
    allow_downgrade: bool = False,
    progress: Progress | None = None,
) -> AgentReply:
    """Streams a bundle to the agent: store, verify, health check, switch, check, keep or roll back.

    Returns:
        The reply; ``exit_code`` 1 with outcome ``rolled_back`` when the health check
        after the switch failed and the board went back by itself.

    Raises:
        EdgepedError: not a bundle, or the agent reported a problem (nothing switched).
    """
    if attempts < 1:
        raise EdgepedError(f"--attempts must be >= 1, got {attempts}", "pass --attempts 3")
    folder = Path(bundle)
    manifest = read_bundle(folder)
    args = ["--wait", str(wait_s), "install", "-", "--attempts", str(attempts)]
    if allow_downgrade:
        args.append("--allow-downgrade")
    budget = latency_budget(device.target, manifest)
    if budget is not None:
        args += ["--latency-ms-p95", str(budget)]
    if progress:
        progress(
            f"sending {manifest['release_id']} to {device.target.name}:{device.root} "
            f"(latency {'judged at ' + str(budget) + ' ms' if budget else 'not judged here'})"
        )
    return call_agent(device, args, bundle_tar(folder, manifest), progress)


def rollback(
    device: DeviceRoot,
    to: str | None = None,
    *,
    reason: str | None = None,
    wait_s: float = 0.0,
    progress: Progress | None = None,
) -> AgentReply:
    """Switches back to the previous model, or to ``to`` (a stored model whose copy verifies).

    Raises:
        EdgepedError: nothing to roll back to, the stored copy does not verify, it fails
            its health check, or another command holds the lock.
    """
    args = ["--wait", str(wait_s), "rollback"]
    if to:
        args += ["--to", to]
    if reason:
        args += ["--reason", reason]
    return call_agent(device, args, progress=progress)


def status(device: DeviceRoot, history: int = 20, progress: Progress | None = None) -> AgentReply:
    """Slots, states, store (every entry re-verified) and the last ``history`` events.

    Raises:
        EdgepedError: the agent cannot run or the state file is unreadable.
    """
    return call_agent(device, ["--history", str(history), "status"], progress=progress)


def trust(
    device: DeviceRoot,
    change: TrustChange,
    *,
    wait_s: float = 0.0,
    progress: Progress | None = None,
) -> AgentReply:
    """Shows the board's trust, or has its agent merge ``change`` into agent.json.

    The agent writes the file itself (temp file, fsync, rename, under the device lock),
    so an install on the board never reads a half-written trust.

    Returns:
        The reply: outcome ``trust_changed``, ``trust_unchanged`` or ``trust_shown``,
        the keys ``added`` and ``removed``, and the board's ``trust`` after it.

    Raises:
        EdgepedError: the agent refused (a config that would lock the board out, an
            unreadable agent.json without --replace, a read-only file, a busy board).
    """
    args = ["--wait", str(wait_s), *change.agent_args()]
    if progress and change.changes_anything:
        progress(f"changing the trust of {device.target.name}:{device.root}")
    return call_agent(device, args, progress=progress)
