"""The board's trust (ROOT/agent.json): Ed25519 keys, release signatures, no downgrades."""

from __future__ import annotations

import hashlib
import json
import os

from ..common import sha256_file
from .common import CONFIG_KIND, SIGNATURE_FILE, SIGNATURE_MESSAGE_VERSION, AgentError, read_json
from .device import Device


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


def trust_config(keys: dict, allow_unsigned: bool, extra: dict) -> bytes:
    config = {
        **extra,
        "kind": CONFIG_KIND,
        "allow_unsigned": allow_unsigned,
        "trusted_keys": [key_line(raw) for raw in keys.values()],
    }
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


def new_keys(lines: list) -> dict:
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
