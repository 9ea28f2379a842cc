#!/usr/bin/env python3
"""The slot agent: installs, health-checks and rolls back models on the board itself.

Ships with runner.py and the edgeped_device package beside it and needs only Python 3.9+
(plus the runner's numpy and LiteRT for health checks), so the switch and the rollback
never depend on a live SSH session.

Device root layout (RAUC-style)::

    store/<release>/     immutable: model.tflite, card.json, release.json, golden.npz,
                         crops.npz, preprocess.json (+ drift_reference.json); checked on arrival.
                         <release> is the sha256 of release.json, which lists the sha256 of
                         every other file: a changed card (threshold, calibration,
                         preprocessing) or waiver is a new release, never the old copy
    slots/a, slots/b     symlinks to ../store/<release>
    current              symlink to slots/<a|b>: the model the vehicle runs
    state.json           active slot, previous and candidate, per-slot status, attempts left,
                         and the transaction in progress (write-ahead, so any step resumes)
    history.jsonl        append-only log, one JSON object per line
    lock                 fcntl.flock: one mutating command at a time
    incoming/            staging for bundles in flight (cleared by the next command)
    quarantine/          store entries that stopped verifying, moved aside
    agent.json           the board's trust: Ed25519 public keys whose signed releases it
                         installs, and whether unsigned ones are allowed (never written by
                         an install; provisioned with the board image or by ``trust``,
                         which writes it atomically under the lock, see docs/rollout.md)

Every write goes to a temporary file, is fsynced, renamed over the old one, and the
directory is fsynced. A link swap is a symlink to a temporary name, rename(2), fsync of
the directory. Every command first finishes or undoes an interrupted one (``recover``).

Prints one JSON line on stdout; progress and step markers on stderr. Exit codes: 0 done,
1 the install did not take (health check failed: rolled back, or refused), 3 a problem
reported as {"ok": false, "error": {"code", "problem", "fix"}}, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import signal
import sys
import tarfile
import time

# The package ships beside this file; put it on the path when the agent is loaded by path.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from edgeped_device.common import sha256_file  # noqa: E402

RESULT_KIND = "edgeped.agent_result"
STATE_KIND = "edgeped.device_state"
RELEASE_KIND = "edgeped.release"
SCHEMA_VERSION = 1
SLOTS = ("a", "b")
REQUIRED_FILES = ("model.tflite", "card.json", "golden.npz", "crops.npz", "preprocess.json")
OPTIONAL_FILES = ("drift_reference.json",)
SIGNATURE_FILE = "release.sig"  # outside release.json's file list: it signs release.json
BUNDLE_FILES = ("release.json", SIGNATURE_FILE, *REQUIRED_FILES, *OPTIONAL_FILES)
CONFIG_KIND = "edgeped.agent_config"
SIGNATURE_MESSAGE_VERSION = "edgeped-release-signature-v1"  # edgeped/rollout/signing.py
EXIT_NOT_INSTALLED = 1
EXIT_PROBLEM = 3
MAX_WAIT_S = 3600.0  # the longest --wait for the device lock
# Called with each step name after the step is durable. Production never sets it; the
# crash-test harness does, in a forked child, to kill the agent exactly between steps.
STEP_HOOK = None


class AgentError(Exception):
    """A problem with a stable code, what went wrong and how to fix it."""

    def __init__(self, code: str, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.code, self.problem, self.fix = code, problem, fix


def progress(message: str) -> None:
    # The host may have gone (dropped SSH session): progress is best effort, the work is not.
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"edgeped-agent: {message}\n")
        sys.stderr.flush()


def step(name: str) -> None:
    progress(f"step {name}")
    if STEP_HOOK is not None:
        STEP_HOOK(name)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------- durable files


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_full(exc: OSError, what: str) -> AgentError:
    return AgentError(
        "disk_full",
        f"the board's disk is full while writing {what}; nothing was switched",
        "free space on the board and run the command again",
    )


def write_atomic(path: str, data: bytes) -> None:
    """Temp file beside ``path``, fsync, rename over it, fsync the directory."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.errno == errno.ENOSPC:
            raise _disk_full(exc, os.path.basename(path)) from exc
        raise
    fsync_dir(os.path.dirname(path) or ".")


def swap_link(link: str, target: str) -> None:
    """Points ``link`` at ``target`` atomically: symlink to a temp name, rename(2), fsync."""
    with contextlib.suppress(OSError):
        if os.readlink(link) == target:
            return
    tmp = f"{link}.new.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(os.path.dirname(link))


def remove_link(link: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
        fsync_dir(os.path.dirname(link))


def read_json(path: str):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# --------------------------------------------------------------------------- the device root


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
                raise _disk_full(exc, "history.jsonl") from exc
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


# --------------------------------------------------------------------------- locking


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


# --------------------------------------------------------------------------- bundles


def receive(dev: Device, source: str) -> str:
    """Copies a bundle (directory, or a tar stream on stdin for '-') into incoming/."""
    inc = os.path.join(dev.incoming, f"{time.time_ns()}-{os.getpid()}")
    os.makedirs(inc)
    try:
        if source == "-":
            with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
                for member in tar:
                    if member.name not in BUNDLE_FILES or not member.isfile():
                        raise AgentError(
                            "bundle_invalid",
                            f"the bundle stream holds an unexpected entry {member.name!r}",
                            "send a bundle made by `edgeped release`",
                        )
                    _copy_stream(tar.extractfile(member), os.path.join(inc, member.name))
        else:
            if not os.path.isdir(source):
                raise AgentError(
                    "bundle_invalid",
                    f"bundle directory not found: {source}",
                    "pass the directory written by `edgeped release`",
                )
            for name in BUNDLE_FILES:
                path = os.path.join(source, name)
                if os.path.isfile(path):
                    with open(path, "rb") as src:
                        _copy_stream(src, os.path.join(inc, name))
        fsync_dir(inc)
    except OSError as exc:
        shutil.rmtree(inc, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise _disk_full(exc, "the incoming bundle") from exc
        raise AgentError(
            "bundle_invalid",
            f"cannot receive the bundle: {exc}",
            "check the bundle and the board's storage",
        ) from exc
    except (AgentError, tarfile.TarError) as exc:
        shutil.rmtree(inc, ignore_errors=True)
        if isinstance(exc, AgentError):
            raise
        raise AgentError(
            "bundle_invalid",
            f"the bundle stream is not a valid tar ({exc})",
            "send the bundle again",
        ) from exc
    return inc


def _copy_stream(src, dest: str) -> None:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(folder: str) -> dict:
    path = os.path.join(folder, "release.json")
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as exc:
        raise AgentError(
            "bundle_invalid",
            f"release.json is missing or unreadable ({exc})",
            "rebuild the bundle with `edgeped release`",
        ) from exc
    if manifest.get("kind") != RELEASE_KIND or not isinstance(manifest.get("files"), dict):
        raise AgentError(
            "bundle_invalid",
            "release.json is not an edgeped release manifest",
            "rebuild the bundle with `edgeped release`",
        )
    return manifest


def file_problems(folder: str, manifest: dict) -> list:
    """Every file the manifest lists that is absent, of another size or another sha256."""
    problems = []
    files = manifest["files"]
    for name in REQUIRED_FILES:
        if name not in files:
            problems.append(f"{name}: not in the manifest")
    for name, want in sorted(files.items()):
        path = os.path.join(folder, name)
        if name not in BUNDLE_FILES:
            problems.append(f"{name}: not a bundle file")
        elif not os.path.isfile(path):
            problems.append(f"{name}: missing")
        elif os.path.getsize(path) != want.get("size_bytes"):
            problems.append(
                f"{name}: {os.path.getsize(path)} bytes, manifest says {want.get('size_bytes')}"
            )
        elif sha256_file(path) != want.get("sha256"):
            problems.append(f"{name}: sha256 differs from the manifest")
    model = manifest.get("model", {}).get("sha256")
    if model != files.get("model.tflite", {}).get("sha256"):
        problems.append("model.sha256 disagrees with files['model.tflite']")
    card = manifest.get("card")
    if isinstance(card, dict) and card.get("sha256") != files.get("card.json", {}).get("sha256"):
        problems.append("card.sha256 disagrees with files['card.json']")
    return problems


def verify_entry(dev: Device, sha: str, manifest_sha=None) -> list:
    """Problems of a store entry (empty list: it verifies)."""
    folder = dev.entry(sha)
    if not os.path.isdir(folder):
        return [f"store/{sha[:12]} does not exist"]
    try:
        manifest = read_manifest(folder)
    except AgentError as exc:
        return [exc.problem]
    problems = file_problems(folder, manifest)
    if release_sha(folder) != sha:
        problems.append("the entry's directory name is not its release's sha256")
    if manifest_sha and sha256_file(os.path.join(folder, "release.json")) != manifest_sha:
        problems.append("release.json changed since it was installed")
    return problems


def release_sha(folder: str):
    """The release's identity: the sha256 of its release.json (which binds every file)."""
    path = os.path.join(folder, "release.json")
    return sha256_file(path) if os.path.isfile(path) else None


def store_bundle(dev: Device, inc: str, sha: str) -> str:
    """Moves a verified bundle into store/<release sha256>; returns that sha256.

    The store is keyed by the whole release (release.json binds model, card and every
    other file), so an entry with this key holds exactly this release: kept when it
    still verifies, else moved to quarantine and replaced by the incoming copy.
    """
    dest = dev.entry(sha)
    if os.path.isdir(dest):
        if not verify_entry(dev, sha):
            shutil.rmtree(inc, ignore_errors=True)
            return sha
        os.replace(dest, os.path.join(dev.quarantine, f"{sha}.{time.time_ns()}"))
    os.replace(inc, dest)
    fsync_dir(dev.store)
    return sha


def release_summary(manifest: dict) -> dict:
    gate = manifest.get("gate", {})
    return {
        "release_id": manifest.get("release_id"),
        "model_name": manifest.get("model", {}).get("name"),
        "model_sha256": manifest.get("model", {}).get("sha256"),
        "card_sha256": (manifest.get("files", {}).get("card.json") or {}).get("sha256"),
        "gate_passed": gate.get("passed"),
        "waivers": manifest.get("waivers", []),
        "created": manifest.get("created"),
    }


# --------------------------------------------------------------------------- signatures


def trust_path(dev: Device) -> str:
    return os.path.join(dev.root, "agent.json")


def key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def parse_key_line(line) -> tuple:
    """(key id, raw key) of a trusted_keys line ``ed25519 <base64 raw key> [<key id>]``.

    Raises:
        ValueError, IndexError, TypeError: not an Ed25519 public key line.
    """
    import base64

    parts = str(line).split()
    raw = base64.b64decode(parts[1], validate=True)
    if parts[0] != "ed25519" or len(raw) != 32:
        raise ValueError(f"not an ed25519 public key: {line!r}")
    return key_id(raw), raw


def key_line(raw: bytes) -> str:
    """The trusted_keys line of a raw key: what `edgeped keygen` writes to PREFIX.pub."""
    import base64

    return f"ed25519 {base64.b64encode(raw).decode()} {key_id(raw)}"


def load_trust(dev: Device) -> dict:
    """The board's trust (ROOT/agent.json): trusted Ed25519 keys by id, allow_unsigned.

    No file means no trusted key and unsigned bundles refused: a board installs nothing
    until it is provisioned.
    """
    path = trust_path(dev)
    trust = {"keys": {}, "allow_unsigned": False, "config": path}
    if not os.path.exists(path):
        return trust
    try:
        config = read_json(path)
        if not isinstance(config, dict) or config.get("kind") != CONFIG_KIND:
            raise ValueError(f"kind is not {CONFIG_KIND}")
        allow = config.get("allow_unsigned", False)
        if not isinstance(allow, bool):
            raise ValueError("allow_unsigned must be true or false")
        for line in config.get("trusted_keys", []):
            kid, raw = parse_key_line(line)
            trust["keys"][kid] = raw
        trust["allow_unsigned"] = allow
    except (OSError, ValueError, IndexError, TypeError) as exc:
        raise AgentError(
            "config_invalid",
            f"{path} cannot be read ({exc}); nothing is installed until it is fixed",
            "write it again with the keys the board should trust: `edgeped trust --host HOST "
            "--key PREFIX.pub --replace` (on the board: agent.py --root ROOT trust --key "
            "'<line of the .pub>' --replace)",
        ) from exc
    return trust


def trust_summary(trust: dict) -> dict:
    """What every reply says about the board's trust (shown on every status line)."""
    try:
        import cryptography  # noqa: F401, PLC0415 - optional on the board

        verifier = f"cryptography {cryptography.__version__}"
    except ImportError:
        verifier = None
    return {
        "mode": "unsigned_allowed" if trust["allow_unsigned"] else "signatures_required",
        "trusted_keys": sorted(trust["keys"]),
        "verifier": verifier,
    }


def signature_message(folder: str, manifest: dict) -> bytes:
    """The bytes a release's signature covers, rebuilt from the files received."""
    card = (manifest.get("files", {}).get("card.json") or {}).get("sha256")
    return (
        f"{SIGNATURE_MESSAGE_VERSION}\n"
        f"release.json {sha256_file(os.path.join(folder, 'release.json'))}\n"
        f"model.tflite {manifest.get('model', {}).get('sha256')}\n"
        f"card.json {card}\n"
    ).encode()


def check_signature(folder: str, manifest: dict, trust: dict) -> dict:
    """Verifies ``release.sig`` against the trusted keys; returns the slot's signature record.

    Raises:
        AgentError: unsigned or signed by an untrusted key on a board that requires
            signatures, a signature that does not verify (always), or no verifier.
    """
    import base64

    path = os.path.join(folder, SIGNATURE_FILE)
    allow = trust["allow_unsigned"]
    fix_trust = (
        f"sign the release (`edgeped release RUN --sign KEY`) with a key this board trusts "
        f"(trusted_keys in {trust['config']})"
    )
    if not os.path.isfile(path):
        if allow:
            return {"verified": False, "key_id": None, "note": "unsigned (allowed on this board)"}
        raise AgentError(
            "unsigned", "the bundle is not signed; this board requires signatures", fix_trust
        )
    try:
        sig = read_json(path)
        key_id = str(sig["key_id"])
        signature = base64.b64decode(sig["signature"], validate=True)
        if sig.get("algorithm") != "ed25519":
            raise ValueError(f"algorithm {sig.get('algorithm')!r}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AgentError(
            "bad_signature", f"release.sig is not a readable signature ({exc})", fix_trust
        ) from exc
    raw = trust["keys"].get(key_id)
    if raw is None:
        if allow:
            return {
                "verified": False,
                "key_id": key_id,
                "note": "signed by an untrusted key (unsigned allowed)",
            }
        raise AgentError(
            "untrusted_key",
            f"the bundle is signed by key {key_id}, which this board does not trust",
            fix_trust,
        )
    try:
        from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
            Ed25519PublicKey,
        )
    except ImportError:
        if allow:
            return {"verified": False, "key_id": key_id, "note": "not verified: no cryptography"}
        raise AgentError(
            "no_verifier",
            "this board's Python has no 'cryptography' package to verify release signatures",
            "install the cryptography wheel on the board (tools/install_device_runtime.sh "
            "does), or set allow_unsigned in agent.json (every status line then says so)",
        ) from None
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(
            signature, signature_message(folder, manifest)
        )
    except InvalidSignature:
        raise AgentError(
            "bad_signature",
            f"the signature by key {key_id} does not match this bundle: release.json, the "
            "model or the card changed after signing",
            "rebuild and sign the release again; nothing was stored or switched",
        ) from None
    return {"verified": True, "key_id": key_id, "note": f"signed by {key_id}"}


def check_sequence(state: dict, manifest: dict, signature: dict, allow_downgrade: bool) -> None:
    """A verified release older than the newest this board ran is a replay: refused."""
    seq = manifest.get("sequence")
    highest = state.get("highest_sequence") or 0
    if not signature.get("verified") or allow_downgrade:
        return
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < highest:
        raise AgentError(
            "downgrade",
            f"release sequence {seq} is older than the newest this board has run ({highest}): "
            "a replayed or older bundle",
            "install a newer release, or pass --allow-downgrade to go back on purpose "
            "(`edgeped rollback` returns to a stored release without it)",
        )


# --------------------------------------------------------------------------- health check


class _RunnerArgs:
    threads = 1
    xnnpack = True
    delegate = None
    delegate_option: list = []


def health_check(folder: str, manifest: dict, latency_ms_p95=None, runs: int = 50) -> dict:
    """Golden-crop parity (bit-exact for int8), outputs in the card's range, latency.

    ``folder`` is a store entry or ``current`` (after the switch: the path the vehicle
    reads). ``latency_ms_p95`` is the e2e-per-crop budget, judged only when given (a
    real board); otherwise the figure is recorded, not judged.
    """
    checks = []

    def add(name, ok, detail, retryable=False):
        checks.append({"check": name, "ok": bool(ok), "detail": detail, "retryable": retryable})
        return ok

    def result(extra=None):
        failed = [c for c in checks if not c["ok"]]
        return {
            "ok": not failed,
            "checks": checks,
            "reason": "; ".join(f"{c['check']}: {c['detail']}" for c in failed) or None,
            "retryable": bool(failed) and all(c["retryable"] for c in failed),
            **(extra or {}),
        }

    problems = file_problems(folder, manifest)
    if not add("integrity", not problems, "; ".join(problems) or "every file matches its sha256"):
        return result()
    from edgeped_device import common, inputs, parity, preprocess  # noqa: PLC0415
    from edgeped_device import model as tflite  # noqa: PLC0415

    try:
        np, Interpreter, load_delegate, resolver, runtime = common.import_runtime()
        model = os.path.join(folder, "model.tflite")
        data = tflite.read_model(model)
        interpreter = tflite.make_interpreter(
            data, model, Interpreter, load_delegate, resolver, _RunnerArgs
        )
        io = tflite.ModelIO(interpreter, np)
        io.resize(1)
        mean, std, clip, _ = preprocess.load_preprocess(os.path.join(folder, "preprocess.json"))
        rule = preprocess.load_image_rule(os.path.join(folder, "preprocess.json"))
        images, metadata, _ = inputs.load_crops(os.path.join(folder, "crops.npz"), np, 1, 0)
        golden = parity.load_golden(os.path.join(folder, "golden.npz"), np)
    except common.RunnerError as exc:
        add("load", False, f"{exc.code}: {exc.problem}")
        return result()
    add("load", True, f"{runtime['name']} {runtime['version']}")
    card = read_json(os.path.join(folder, "card.json"))
    add("io", *_io_matches(io.quantisation(), card))
    pre = preprocess.Preprocessor(io, mean, std, clip, rule)
    raw, probs = parity.compute_outputs(pre, images, metadata, np)
    add("parity", *_parity(raw, probs, golden, manifest["model"]["sha256"], np))
    add("decisions", *_decisions(raw, probs, card, os.path.join(folder, "crops.npz"), np))
    finite = bool(np.all(np.isfinite(probs)))
    low, high = (float(probs.min()), float(probs.max())) if finite else (None, None)
    add(
        "range",
        finite and 0.0 <= low and high <= 1.0,
        f"probabilities in [{low}, {high}], card range [0, 1]" if finite else "non-finite output",
    )
    e2e = []
    n = len(images)
    for i in range(max(runs, 1) + 5):
        t0 = time.perf_counter()
        pre.set_inputs(images[i % n : i % n + 1], metadata[i % n : i % n + 1])
        interpreter.invoke()
        pre.probabilities(pre.raw_output())
        if i >= 5:  # warm-up invokes are not timed
            e2e.append((time.perf_counter() - t0) * 1e3)
    p95 = float(np.percentile(np.asarray(e2e), 95))
    if latency_ms_p95 is None:
        add("latency", True, f"e2e p95 {p95:.3f} ms per crop (not judged here)")
    else:
        add(
            "latency",
            p95 <= latency_ms_p95,
            f"e2e p95 {p95:.3f} ms per crop, budget {latency_ms_p95:g} ms",
            retryable=True,
        )
    return result(
        {
            "runtime": runtime,
            "e2e_ms_p95": p95,
            "runs": len(e2e),
            "latency_judged": latency_ms_p95 is not None,
        }
    )


def _io_matches(quant: dict, card: dict):
    by_role = {t.get("role"): t for t in card.get("inputs", []) + card.get("outputs", [])}
    wrong = []
    for role, name in (("image", "image"), ("meta", "meta"), ("score", "output")):
        have, want = quant.get(name), by_role.get(role)
        if have is None and want is None:
            continue
        if (
            have is None
            or want is None
            or have["dtype"] != want.get("dtype")
            or have["zero_point"] != want.get("zero_point")
            or abs(have["scale"] - float(want.get("scale", 0.0))) > 1e-9 * max(1.0, have["scale"])
        ):
            wrong.append(f"{name}: model {have}, card {want}")
    return (not wrong, "; ".join(wrong) or "inputs and output match the card's quantisation")


def _decisions(raw, probs, card: dict, crops: str, np):
    """The model's decisions on the golden crops (card threshold) must be eval's, crop by crop."""
    threshold = card.get("threshold") if isinstance(card.get("threshold"), dict) else {}
    score = threshold.get("score")
    if not isinstance(score, (int, float)) or isinstance(score, bool):
        return False, "the card has no decision threshold"
    try:
        with np.load(crops, allow_pickle=False) as npz:
            want = npz["eval_decision"].astype(np.int8) if "eval_decision" in npz.files else None
    except (OSError, ValueError) as exc:
        return False, f"cannot read the golden crops ({exc})"
    if want is None or len(want) != len(raw):
        return False, "the golden crops carry no eval decisions (re-release with edgeped release)"
    q = threshold.get("int8")
    if np.issubdtype(raw.dtype, np.integer) and isinstance(q, int) and not isinstance(q, bool):
        got = (raw.reshape(len(raw), -1)[:, 0].astype(np.int32) >= q).astype(np.int8)
        rule = f"output q >= {q}"
    else:
        got = (probs.reshape(-1) >= float(score)).astype(np.int8)
        rule = f"probability >= {score:g}"
    bad = int((got != want).sum())
    positives = int(want.sum())
    return bad == 0, (
        f"{bad} of {len(want)} decisions differ from eval's ({rule}; eval: {positives} "
        f"pedestrian, {len(want) - positives} background)"
    )


def _parity(raw, probs, golden, sha: str, np):
    want_sha = str(golden["model_sha256"]) if "model_sha256" in golden else None
    if want_sha != sha:
        return False, f"golden outputs are for model {str(want_sha)[:12]}, not {sha[:12]}"
    want_raw, want_probs = golden.get("raw"), golden.get("probabilities")
    if want_raw is None or len(want_raw) != len(raw):
        return False, "golden outputs do not match the golden crops"
    if np.issubdtype(raw.dtype, np.integer):
        bad = int(
            (raw.astype(np.int32) != want_raw.astype(np.int32))
            .reshape(len(raw), -1)
            .any(axis=1)
            .sum()
        )
        return bad == 0, f"{bad} of {len(raw)} golden crops differ (bit-exact int8)"
    bad = int((~(np.abs(probs - want_probs) <= 1e-5)).sum())
    return bad == 0, f"{bad} of {len(raw)} golden crops differ by more than 1e-5"


# --------------------------------------------------------------------------- transactions


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
                health["warnings"] = [f"finishing the commit was deferred: {_why(exc)}"]
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


def prune(dev: Device, state: dict, keep_extra: int) -> list:
    """Removes old store entries; never the active, previous, candidate or a slot's model."""
    keep = {state.get("previous"), state.get("candidate")}
    keep |= {s["sha256"] for s in state["slots"].values()}
    keep.add(dev.link_sha(dev.current))
    others = [n for n in os.listdir(dev.store) if n not in keep]

    def mtime(name: str) -> float:
        try:  # lstat: a dangling or broken entry sorts oldest and is pruned first
            return os.lstat(dev.entry(name)).st_mtime
        except OSError:
            return 0.0

    others.sort(key=mtime, reverse=True)
    removed = []
    for name in others[keep_extra:]:
        trash = os.path.join(dev.incoming, f"prune-{name}")
        try:
            os.replace(dev.entry(name), trash)  # off the store first: no half-deleted entry
        except FileNotFoundError:
            continue
        if os.path.isdir(trash) and not os.path.islink(trash):
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.unlink(trash)
        removed.append(name)
    if removed:
        fsync_dir(dev.store)
        dev.log("pruned", sha256s=removed)
    return removed


# --------------------------------------------------------------------------- commands


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
            warnings.append(f"pruning the store was skipped: {_why(exc)}")
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


def _why(exc: Exception) -> str:
    return exc.problem if isinstance(exc, AgentError) else str(exc)


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


def _trust_config(keys: dict, allow_unsigned: bool, extra: dict) -> bytes:
    config = {
        **extra,
        "kind": CONFIG_KIND,
        "allow_unsigned": allow_unsigned,
        "trusted_keys": [key_line(raw) for raw in keys.values()],
    }
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


def _new_keys(lines: list) -> dict:
    keys = {}
    for line in lines:
        try:
            kid, raw = parse_key_line(line)
        except (ValueError, IndexError, TypeError) as exc:
            raise AgentError(
                "bad_key",
                f"not an Ed25519 public key line: {str(line)[:80]!r} ({exc})",
                "pass the line of a .pub file `edgeped keygen` wrote",
            ) from exc
        parts = str(line).split()
        if len(parts) > 2 and parts[2] != kid:
            raise AgentError(
                "bad_key",
                f"the key line names key id {parts[2]!r} but its key is {kid}: an edited line",
                "pass the line of a .pub file `edgeped keygen` wrote, unchanged",
            )
        keys[kid] = raw
    return keys


def cmd_trust(dev: Device, opts) -> tuple:
    """Shows the board's trust, or merges keys and the signature policy into agent.json.

    The one writer of agent.json: temp file, fsync, rename(2), fsync of the directory, under
    the device lock (an install never reads a half-changed trust). A config that trusts no
    key while requiring signatures would refuse every install: it is never written.
    """
    path = trust_path(dev)
    new = _new_keys(opts.key)
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
        data = _trust_config(keys, allow, extra)
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


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="the device root (store, slots, state)")
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait for the device lock before refusing [0]",
    )
    p.add_argument("--runs", type=int, default=50, help="timed invokes in a health check")
    sub = p.add_subparsers(dest="command", required=True)
    inst = sub.add_parser(
        "install", help="store a bundle, switch to it, check it, keep or roll back"
    )
    inst.add_argument("source", help="bundle directory, or - for a tar stream on stdin")
    inst.add_argument("--attempts", type=int, default=3, help="health check attempts")
    inst.add_argument(
        "--allow-downgrade",
        action="store_true",
        help="install a signed release older than the newest this board has run",
    )
    inst.add_argument(
        "--latency-ms-p95",
        type=float,
        default=None,
        help="e2e per-crop p95 budget (real boards only; unset: recorded, not judged)",
    )
    inst.add_argument(
        "--keep-extra",
        type=int,
        default=2,
        help="stored models kept beyond the slots, previous and candidate",
    )
    rb = sub.add_parser("rollback", help="switch back to the previous (or a stored) model")
    rb.add_argument("--to", help="sha256 (or a unique prefix) of a stored model")
    rb.add_argument("--reason", help="why, for the history")
    sub.add_parser("status", help="slots, states, store and history")
    sub.add_parser("recover", help="finish or undo an interrupted command (run at boot)")
    tr = sub.add_parser(
        "trust",
        help="show the board's trust (agent.json), or add keys and set the signature policy",
    )
    tr.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="LINE",
        help="trust this public key: the line of a .pub `edgeped keygen` wrote (repeat)",
    )
    policy = tr.add_mutually_exclusive_group()
    policy.add_argument(
        "--allow-unsigned",
        dest="allow_unsigned",
        action="store_const",
        const=True,
        default=None,
        help="install unsigned bundles too (development boards; every reply says so)",
    )
    policy.add_argument(
        "--require-signed",
        dest="allow_unsigned",
        action="store_const",
        const=False,
        help="install only bundles signed by a trusted key",
    )
    tr.add_argument(
        "--replace",
        action="store_true",
        help="the --key lines become the only trusted keys (else they are added)",
    )
    p.add_argument("--history", type=int, default=20, help="history lines in status")
    args = p.parse_args(argv)
    for name in ("attempts", "runs"):
        if getattr(args, name, 1) < 1:
            p.error(f"--{name} must be >= 1")
    if not 0.0 <= args.wait <= MAX_WAIT_S:  # also false for nan: never an endless wait
        p.error(f"--wait must be a number of seconds from 0 to {MAX_WAIT_S:g}, got {args.wait}")
    args.latency_ms_p95 = getattr(args, "latency_ms_p95", None)
    return args


COMMANDS = {
    "install": cmd_install,
    "rollback": cmd_rollback,
    "status": cmd_status,
    "recover": cmd_recover,
    "trust": cmd_trust,
}


def _trust_or_problem(dev: Device) -> dict:
    try:
        return trust_summary(load_trust(dev))
    except AgentError as exc:
        return {"mode": "config_invalid", "problem": exc.problem, "trusted_keys": []}


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # A dropped SSH session must not stop a switch half-way: finish the work regardless.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    dev = Device(args.root)
    progress(f"pid {os.getpid()} {args.command}")
    try:
        dev.init()
        code, payload = COMMANDS[args.command](dev, args)
        try:
            state = dev.load_state()
        except AgentError as exc:  # the command is done: report it, not a reread problem
            state = None
            payload.setdefault("warnings", []).append(exc.problem)
        result = {
            "ok": True,
            "trust": _trust_or_problem(dev),
            "kind": RESULT_KIND,
            "schema_version": SCHEMA_VERSION,
            "command": args.command,
            "root": dev.root,
            "state": state,
            **payload,
        }
    except AgentError as exc:
        code = EXIT_PROBLEM
        result = {
            "ok": False,
            "kind": RESULT_KIND,
            "schema_version": SCHEMA_VERSION,
            "command": args.command,
            "root": dev.root,
            "error": {"code": exc.code, "problem": exc.problem, "fix": exc.fix},
            "trust": _trust_or_problem(dev),
        }
        with contextlib.suppress(AgentError, OSError):
            result["state"] = dev.load_state()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.write(json.dumps(result, sort_keys=True, default=str) + "\n")
        sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
