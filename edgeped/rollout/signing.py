"""Signed releases: Ed25519 keys, the signature of a bundle, and its check.

A bundle's signature (``release.sig``) covers exactly the bound set of the integrity
chain: the sha256 of ``release.json`` (which lists the sha256 of every other file,
carries the release's monotonic ``sequence`` and the gate and waivers) and, spelled
out, the sha256 of ``model.tflite`` and ``card.json``. The signed message is
:func:`signed_message`; the board's agent (device/agent.py) builds the same bytes from
the files it received and verifies them against the public keys it trusts.

Keys: ``edgeped keygen PREFIX`` writes ``PREFIX.key`` (PKCS#8 PEM, mode 0600, never
overwritten) and ``PREFIX.pub`` (one line: ``ed25519 <base64 raw key> <key id>``); the
key id is the first 16 hex digits of the sha256 of the raw public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from edgeped.errors import EdgepedError
from edgeped.fileio import sha256_file

SIGNATURE_FILE = "release.sig"
SIGNATURE_KIND = "edgeped.release_signature"
ALGORITHM = "ed25519"
# Bumped if the signed message's layout ever changes; the agent knows the same value.
MESSAGE_VERSION = "edgeped-release-signature-v1"


def key_id(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:16]


def signed_message(release_sha256: str, model_sha256: str, card_sha256: str) -> bytes:
    """The exact bytes signed: the release.json, model and card sha256 values, one a line."""
    return (
        f"{MESSAGE_VERSION}\n"
        f"release.json {release_sha256}\n"
        f"model.tflite {model_sha256}\n"
        f"card.json {card_sha256}\n"
    ).encode()


def generate_keypair(prefix: str | os.PathLike) -> tuple[Path, Path, str]:
    """Writes a new Ed25519 key pair: PREFIX.key (0600) and PREFIX.pub.

    Returns:
        (private key path, public key path, key id).

    Raises:
        EdgepedError: either file exists (a key is never overwritten) or cannot be written.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    base = Path(prefix)
    private_path, public_path = Path(f"{base}.key"), Path(f"{base}.pub")
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise EdgepedError(
                f"{path} exists: a signing key is never overwritten",
                "pass another OUT_PREFIX (rotate keys by adding the new public key to the "
                "boards first, see docs/rollout.md)",
            )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = key_id(raw)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.chmod(private_path, 0o600)  # whatever the umask
        public_path.write_text(f"{ALGORITHM} {base64.b64encode(raw).decode()} {kid}\n")
    except OSError as exc:
        raise EdgepedError(f"cannot write the key pair {base}: {exc}", "check the folder") from exc
    return private_path, public_path, kid


def read_public_key(path: str | os.PathLike) -> tuple[str, str]:
    """(base64 raw key, key id) from a PREFIX.pub file.

    Raises:
        EdgepedError: the file is missing, is the private key or an OpenSSH key, or is not
            an edgeped Ed25519 public key line (a stated key id must match the key).
    """
    p = Path(path)
    fix = "pass the PREFIX.pub `edgeped keygen` wrote (make one with `edgeped keygen PREFIX`)"
    if not p.is_file():
        raise EdgepedError(f"public key file not found: {p}", fix)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgepedError(f"{p} cannot be read as a public key ({exc})", fix) from exc
    if "PRIVATE KEY" in text:
        raise EdgepedError(
            f"{p} is a PRIVATE key: it signs releases and never goes to a board",
            f"pass the .pub beside it ({p.with_suffix('.pub').name}) and keep {p.name} secret",
        )
    parts = text.split()
    if parts and parts[0].startswith("ssh-"):
        raise EdgepedError(f"{p} is an OpenSSH key ({parts[0]}), not a release signing key", fix)
    try:
        if len(parts) not in (2, 3) or parts[0] != ALGORITHM:
            raise ValueError(f"expected one line `{ALGORITHM} <base64 key> <key id>`")
        raw = base64.b64decode(parts[1], validate=True)
        if len(raw) != 32:
            raise ValueError(f"the key is {len(raw)} bytes, an Ed25519 key is 32")
    except ValueError as exc:
        raise EdgepedError(f"{p} is not an edgeped Ed25519 public key: {exc}", fix) from exc
    kid = key_id(raw)
    if len(parts) == 3 and parts[2] != kid:
        raise EdgepedError(
            f"{p} names key id {parts[2]} but holds the key {kid}: the file was edited",
            "use the .pub exactly as `edgeped keygen` wrote it",
        )
    return parts[1], kid


def public_key_line(path: str | os.PathLike) -> str:
    """The trusted_keys line of a PREFIX.pub: ``ed25519 <base64 key> <key id>``.

    Raises:
        EdgepedError: as :func:`read_public_key`.
    """
    raw, kid = read_public_key(path)
    return f"{ALGORITHM} {raw} {kid}"


def _private_key(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not path.is_file():
        raise EdgepedError(f"signing key not found: {path}", "pass the .key `edgeped keygen` wrote")
    mode = path.stat().st_mode & 0o077
    if mode:
        raise EdgepedError(
            f"signing key {path} is readable by others (mode {oct(path.stat().st_mode & 0o777)})",
            f"chmod 600 {path}",
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise EdgepedError(
            f"{path} is not an unencrypted PEM private key ({exc})",
            "pass the .key `edgeped keygen` wrote",
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise EdgepedError(f"{path} is not an Ed25519 key", "make one with `edgeped keygen`")
    return key


def sign_bundle(folder: Path, key_path: str | os.PathLike) -> dict:
    """Signs a bundle in place: writes ``release.sig`` over release.json, model and card.

    Raises:
        EdgepedError: the key is missing, not private to its owner, or not Ed25519.
    """
    from cryptography.hazmat.primitives import serialization

    from edgeped.fileio import write_json_atomic

    key = _private_key(Path(key_path))
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    manifest = json.loads((folder / "release.json").read_text(encoding="utf-8"))
    message = signed_message(
        sha256_file(folder / "release.json"),
        manifest["model"]["sha256"],
        manifest["files"]["card.json"]["sha256"],
    )
    signature = {
        "kind": SIGNATURE_KIND,
        "schema_version": 1,
        "algorithm": ALGORITHM,
        "key_id": key_id(raw),
        "message": message.decode(),
        "signature": base64.b64encode(key.sign(message)).decode(),
    }
    write_json_atomic(folder / SIGNATURE_FILE, signature)
    return signature
