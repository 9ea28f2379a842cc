"""One device root: its paths, state.json, history.jsonl, slot links and the device lock."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time

from .common import SCHEMA_VERSION, SLOTS, STATE_KIND, AgentError, now, read_json
from .durable import disk_full, write_atomic


class Device:
    """Paths and state of one device root."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.store = os.path.join(self.root, "store")
        self.slots = os.path.join(self.root, "slots")
        self.incoming = os.path.join(self.root, "incoming")
        self.quarantine = os.path.join(self.root, "quarantine")
        self.current = os.path.join(self.root, "current")
        self.state_path = os.path.join(self.root, "state.json")
        self.history_path = os.path.join(self.root, "history.jsonl")

    def init(self) -> None:
        for path in (self.root, self.store, self.slots, self.incoming, self.quarantine):
            os.makedirs(path, exist_ok=True)

    def entry(self, sha: str) -> str:
        return os.path.join(self.store, sha)

    def slot_link(self, slot: str) -> str:
        return os.path.join(self.slots, slot)

    # -- state ------------------------------------------------------------------------

    def load_state(self) -> dict:
        if not os.path.exists(self.state_path):
            return {
                "kind": STATE_KIND,
                "schema_version": SCHEMA_VERSION,
                "generation": 0,
                "active": None,
                "previous": None,
                "candidate": None,
                "transaction": None,
                "slots": {s: empty_slot() for s in SLOTS},
            }
        try:
            state = read_json(self.state_path)
        except (OSError, ValueError) as exc:
            raise AgentError(
                "state_corrupt",
                f"{self.state_path} cannot be read ({exc})",
                "restore state.json from history.jsonl by hand; the store "
                "and slot links are intact",
            ) from exc
        if state.get("kind") != STATE_KIND:
            raise AgentError(
                "state_corrupt",
                f"{self.state_path} is not a device state file",
                "point --root at an edgeped device root",
            )
        return state

    def save_state(self, state: dict) -> None:
        state["generation"] = int(state.get("generation", 0)) + 1
        state["updated"] = now()
        write_atomic(self.state_path, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())

    # -- history ----------------------------------------------------------------------

    def log(self, event: str, **fields) -> dict:
        record = {"time": now(), "event": event, **fields}
        line = json.dumps(record, sort_keys=True) + "\n"
        fd = os.open(self.history_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line  # a line torn by a power cut stays, the next starts clean
            os.write(fd, line.encode())  # one write: a kill cannot tear it
            os.fsync(fd)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise disk_full(exc, "history.jsonl") from exc
            raise
        finally:
            os.close(fd)
        return record

    def history(self, last: int | None = None) -> list:
        if not os.path.exists(self.history_path):
            return []
        out = []
        with open(self.history_path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"event": "unreadable_line", "text": line[:200]})
        return out[-last:] if last else out

    def logged(self, txn_id: str, event: str) -> bool:
        return any(r.get("txn") == txn_id and r.get("event") == event for r in self.history(50))

    # -- links ------------------------------------------------------------------------

    def link_sha(self, link: str):
        """The store sha256 a slot link (or ``current``, through its slot) points at."""
        try:
            target = os.path.realpath(link)
        except OSError:
            return None
        if os.path.dirname(target) != os.path.realpath(self.store) or not os.path.isdir(target):
            return None
        return os.path.basename(target)

    def current_slot(self):
        try:
            return os.path.basename(os.readlink(self.current))
        except OSError:
            return None


def empty_slot() -> dict:
    return {"sha256": None, "status": "empty", "attempts_left": 0, "release": None}


def other(slot) -> str:
    return "b" if slot == "a" else "a"


class Lock:
    """fcntl.flock on ROOT/lock; waits up to ``wait_s`` then refuses with ``busy``."""

    def __init__(self, dev: Device, op: str, wait_s: float) -> None:
        self.dev, self.op, self.wait_s = dev, op, wait_s
        self.path = os.path.join(dev.root, "lock")
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(self.fd, 512, 0).decode(errors="replace").strip()
                    os.close(self.fd)
                    raise AgentError(
                        "busy",
                        f"another agent command holds the device lock ({holder or '?'})",
                        "wait for it to finish, or pass a longer wait (--wait SECONDS)",
                    ) from None
                time.sleep(0.05)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"pid {os.getpid()} {self.op} since {now()}".encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def try_lock(dev: Device, op: str):
    try:
        return Lock(dev, op, 0).__enter__()
    except AgentError:
        return None
