"""Signed releases: keys, `release --sign`, and the board refusing every tampered bundle.

The tamper table of docs/rollout.md is TAMPER below: each case is installed on a board
that requires signatures and already runs a signed release; the test checks the exit
code, the agent's error code, and that the board still runs the release it ran before.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from release_support import (
    current_sha,
    make_bundle,
    make_run,
    preload_runtime,
    provision,
    release_sha,
    rewrite_manifest,
    run_agent,
    tiny_models,
)

from edgeped.cli import main
from edgeped.errors import EdgepedError
from edgeped.rollout.signing import generate_keypair, sign_bundle

RUNS = ["--runs", "3"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keys")
    return {"main": generate_keypair(tmp / "release"), "other": generate_keypair(tmp / "other")}


@pytest.fixture(scope="module")
def signed(tmp_path_factory, device_models, keys):
    """Signed bundles in release order: old (good1) then new (good2) and newer (good3)."""
    tmp = tmp_path_factory.mktemp("signed")
    models = tiny_models(device_models)
    key = keys["main"][0]
    out = {}
    for name in ("good1", "good2", "good3"):
        run = make_run(tmp / f"r-{name}", models[name])
        out[name] = make_bundle(run, tmp / f"b-{name}", sign_key=key)
    out["unsigned"] = make_bundle(make_run(tmp / "r-u", models["good3"]), tmp / "b-unsigned")
    preload_runtime()
    return out


def board(tmp_path: Path, keys, allow_unsigned: bool = False, which=("main",)) -> Path:
    root = tmp_path / "dev"
    provision(root, tuple(keys[k][1] for k in which), allow_unsigned=allow_unsigned)
    return root


def install(root: Path, bundle: Path, *extra: str):
    run = run_agent(["--root", str(root), *RUNS, "install", *extra, str(bundle)], provisioned=False)
    assert not run.killed and run.result is not None
    return run


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path):
    result = CliRunner().invoke(main, ["keygen", str(tmp_path / "k" / "fleet")])
    assert result.exit_code == 0, result.output
    private, public = tmp_path / "k" / "fleet.key", tmp_path / "k" / "fleet.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    algorithm, raw, kid = public.read_text().split()
    assert algorithm == "ed25519" and len(base64.b64decode(raw)) == 32 and kid in result.output
    assert f"edgeped trust --host HOST [--root DIR] --key {public}" in result.output
    before = private.read_bytes()
    again = CliRunner().invoke(main, ["keygen", str(tmp_path / "k" / "fleet")])
    assert again.exit_code == 65 and "never overwritten" in again.output
    assert private.read_bytes() == before


def test_a_key_readable_by_others_is_refused(tmp_path, keys, signed):
    loose = tmp_path / "loose.key"
    shutil.copyfile(keys["main"][0], loose)
    os.chmod(loose, 0o644)
    with pytest.raises(EdgepedError, match="readable by others"):
        sign_bundle(signed["good1"], loose)


def test_the_signature_covers_release_json_model_and_card(signed):
    sig = json.loads((signed["good1"] / "release.sig").read_text())
    manifest = json.loads((signed["good1"] / "release.json").read_text())
    lines = sig["message"].splitlines()
    assert lines[1] == f"release.json {release_sha(signed['good1'])}"
    assert lines[2] == f"model.tflite {manifest['model']['sha256']}"
    assert lines[3] == f"card.json {manifest['files']['card.json']['sha256']}"
    assert (
        manifest["sequence"]
        < json.loads((signed["good2"] / "release.json").read_text())["sequence"]
    )


def _modified_model(bundle: Path, tmp: Path) -> Path:
    """Model bytes changed and re-hashed into release.json: consistent, but not what was signed."""
    out = shutil.copytree(bundle, tmp / "model")
    os.chmod(out / "model.tflite", 0o644)
    data = bytearray((out / "model.tflite").read_bytes())
    data[-20] ^= 0xFF
    (out / "model.tflite").write_bytes(bytes(data))
    rewrite_manifest(out, "model.tflite")
    manifest = json.loads((out / "release.json").read_text())
    manifest["model"]["sha256"] = manifest["files"]["model.tflite"]["sha256"]
    (out / "release.json").write_text(json.dumps(manifest))
    return out


def _modified_release_json(bundle: Path, tmp: Path) -> Path:
    out = shutil.copytree(bundle, tmp / "manifest")
    manifest = json.loads((out / "release.json").read_text())
    manifest["waivers"] = []  # e.g. hide a waiver; every file still matches its sha256
    manifest["gate"]["passed"] = True
    manifest["sequence"] += 10**12
    (out / "release.json").write_text(json.dumps(manifest))
    return out


def _modified_signature(bundle: Path, tmp: Path) -> Path:
    out = shutil.copytree(bundle, tmp / "signature")
    sig = json.loads((out / "release.sig").read_text())
    raw = bytearray(base64.b64decode(sig["signature"]))
    raw[0] ^= 0x01
    sig["signature"] = base64.b64encode(bytes(raw)).decode()
    (out / "release.sig").write_text(json.dumps(sig))
    return out


def _swapped_key(bundle: Path, tmp: Path, keys) -> Path:
    """Re-signed with a key the board does not trust (an attacker's own key)."""
    out = shutil.copytree(bundle, tmp / "swapped")
    os.chmod(out / "release.sig", 0o644)
    sign_bundle(out, keys["other"][0])
    return out


def _unsigned(bundle: Path, tmp: Path) -> Path:
    out = shutil.copytree(bundle, tmp / "unsigned")
    (out / "release.sig").unlink()
    return out


# (case, how the bundle is made from the newest signed release, agent error code).
TAMPER = [
    ("modified model bytes", lambda b, t, k: _modified_model(b, t), "bad_signature"),
    ("modified release.json", lambda b, t, k: _modified_release_json(b, t), "bad_signature"),
    ("modified signature", lambda b, t, k: _modified_signature(b, t), "bad_signature"),
    ("swapped key", _swapped_key, "untrusted_key"),
    ("signature removed", lambda b, t, k: _unsigned(b, t), "unsigned"),
]


@pytest.mark.parametrize("case,make,code", TAMPER, ids=[c[0] for c in TAMPER])
def test_tampered_bundle_is_refused_and_the_board_keeps_running_its_release(
    tmp_path, keys, signed, case, make, code
):
    root = board(tmp_path, keys)
    assert install(root, signed["good1"]).code == 0
    bad = make(signed["good3"], tmp_path, keys)
    run = install(root, bad)
    assert run.code == 3, run.result
    assert run.result["error"]["code"] == code, run.result["error"]
    assert current_sha(root) == release_sha(signed["good1"])  # what the board runs after
    assert os.listdir(root / "store") == [release_sha(signed["good1"])]  # nothing stored
    assert os.listdir(root / "incoming") == []
    history = [json.loads(x) for x in (root / "history.jsonl").read_text().splitlines()]
    assert history[-1]["event"] == "refused" and code in history[-1]["reason"]


def test_replayed_older_bundle_is_refused_unless_downgrade_is_allowed(tmp_path, keys, signed):
    root = board(tmp_path, keys)
    assert install(root, signed["good1"]).code == 0
    assert install(root, signed["good2"]).code == 0
    run = install(root, signed["good1"])  # a genuine, signed, but older release
    assert run.code == 3 and run.result["error"]["code"] == "downgrade", run.result
    assert current_sha(root) == release_sha(signed["good2"])
    run = install(root, signed["good1"], "--allow-downgrade")
    assert run.code == 0 and current_sha(root) == release_sha(signed["good1"])
    # The board still remembers the newest it ran: good2 again is not a downgrade, good1 is.
    assert install(root, signed["good2"]).code == 0
    assert install(root, signed["good3"]).code == 0


def test_a_correctly_signed_release_installs_and_says_so(tmp_path, keys, signed):
    root = board(tmp_path, keys)
    run = install(root, signed["good1"])
    assert run.code == 0 and run.result["outcome"] == "installed"
    slot = run.result["state"]["slots"]["a"]
    assert slot["signature"] == {
        "verified": True,
        "key_id": keys["main"][2],
        "note": f"signed by {keys['main'][2]}",
    }
    assert run.result["trust"]["mode"] == "signatures_required"
    assert run.result["trust"]["trusted_keys"] == [keys["main"][2]]


def test_unsigned_bundle_on_a_board_that_allows_it_is_flagged_everywhere(tmp_path, keys, signed):
    root = board(tmp_path, keys, allow_unsigned=True)
    run = install(root, signed["unsigned"])
    assert run.code == 0 and run.result["trust"]["mode"] == "unsigned_allowed"
    assert run.result["state"]["slots"]["a"]["signature"]["verified"] is False
    # Even an allowing board refuses a signature that does not verify: that is tampering.
    bad = _modified_signature(signed["good3"], tmp_path)
    run = install(root, bad)
    assert run.code == 3 and run.result["error"]["code"] == "bad_signature"
    # Every command's output states the policy, through the CLI too.
    result = CliRunner().invoke(main, ["status", "--host", "local", "--root", str(root)])
    assert result.exit_code == 0 and "UNSIGNED BUNDLES ALLOWED" in result.output
    assert "unverified: slot a" in result.output


def test_an_unprovisioned_board_refuses_everything_and_a_bad_config_is_named(tmp_path, signed):
    root = tmp_path / "fresh"
    run = install(root, signed["good1"])
    assert run.code == 3 and run.result["error"]["code"] == "untrusted_key"
    root.mkdir(exist_ok=True)
    (root / "agent.json").write_text('{"kind": "edgeped.agent_config", "trusted_keys": ["x"]}')
    run = install(root, signed["good1"])
    assert run.code == 3 and run.result["error"]["code"] == "config_invalid"
    assert current_sha(root) is None


def test_signed_release_and_install_through_the_cli(tmp_path, keys, device_models):
    run = make_run(tmp_path / "run", tiny_models(device_models)["good1"])
    out = tmp_path / "bundle"
    result = CliRunner().invoke(
        main, ["release", str(run), "--out", str(out), "--sign", str(keys["main"][0])]
    )
    assert result.exit_code == 0, result.output
    assert (out / "release.sig").is_file()
    root = board(tmp_path, keys)
    result = CliRunner().invoke(main, ["install", str(out), "--host", "local", "--root", str(root)])
    assert result.exit_code == 0 and "INSTALLED" in result.output, result.output
    assert f"signatures: required (trusted keys: {keys['main'][2]}" in result.output
    bad = _modified_signature(out, tmp_path)
    result = CliRunner().invoke(main, ["install", str(bad), "--host", "local", "--root", str(root)])
    assert result.exit_code == 65 and "does not match this bundle" in result.output
    assert "Traceback" not in result.output


def test_a_board_without_cryptography_refuses_signed_required_installs(tmp_path, keys, signed):
    """The agent stays stdlib + numpy + LiteRT; without a verifier it refuses, clearly."""
    import subprocess
    import sys

    from release_support import REPO_ROOT

    from edgeped.rollout.agent_client import bundle_tar

    root = board(tmp_path, keys)
    agent_py = str(REPO_ROOT / "device" / "agent.py")
    prelude = (
        "import sys, runpy; sys.modules['cryptography'] = None; "  # import fails as on the board
        f"sys.argv = [{agent_py!r}] + sys.argv[1:]; runpy.run_path({agent_py!r}, run_name='__main__')"
    )
    manifest = json.loads((signed["good1"] / "release.json").read_text())
    proc = subprocess.run(
        [sys.executable, "-c", prelude, "--root", str(root), *RUNS, "install", "-"],
        input=bundle_tar(signed["good1"], manifest),
        capture_output=True,
        timeout=300,
    )
    result = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert proc.returncode == 3 and result["error"]["code"] == "no_verifier", result
    assert "install_device_runtime.sh" in result["error"]["fix"]
    assert result["trust"]["verifier"] is None and current_sha(root) is None


@pytest.mark.emulated
def test_signed_install_verified_on_the_emulated_arm64_board(tmp_path, arm64_board, keys, signed):
    from edgeped.rollout import agent_client
    from edgeped.targets import resolve_target

    assert (arm64_board / "site" / "cryptography").is_dir()  # tools/install_device_runtime.sh
    target = resolve_target("arm64-emu", None, "a53")
    root = board(tmp_path, keys)
    device = agent_client.DeviceRoot(target, str(root))
    reply = agent_client.install(device, signed["good1"])
    assert reply.outcome == "installed", reply.result
    assert reply.result["state"]["slots"]["a"]["signature"]["verified"] is True
    assert reply.result["trust"]["verifier"].startswith("cryptography")
    with pytest.raises(EdgepedError, match="does not match this bundle"):
        agent_client.install(device, _modified_signature(signed["good3"], tmp_path))
    assert current_sha(root) == release_sha(signed["good1"])
