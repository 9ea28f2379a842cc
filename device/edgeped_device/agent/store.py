"""Release bundles on the board: received into incoming/, checked, kept in store/<sha256>."""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tarfile
import time

from ..common import sha256_file
from .common import BUNDLE_FILES, RELEASE_KIND, REQUIRED_FILES, AgentError, read_json
from .device import Device
from .durable import disk_full, fsync_dir


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
                    copy_stream(tar.extractfile(member), os.path.join(inc, member.name))
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
                        copy_stream(src, os.path.join(inc, name))
        fsync_dir(inc)
    except OSError as exc:
        shutil.rmtree(inc, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise disk_full(exc, "the incoming bundle") from exc
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


def copy_stream(src, dest: str) -> None:
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
