"""`edgeped trust`: provisioning a board's agent.json through its agent.

Every case goes through the command as a user types it (CliRunner), on `--host local
--root DIR` (the same agent that runs on every target), and checks the file on the board,
the exit code and the message; the last one runs on the emulated arm64 board.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from release_support import (
    agent_device,
    current_sha,
    make_bundle,
    make_run,
    release_sha,
    tiny_models,
)

from edgeped.cli import main
from edgeped.rollout.signing import generate_keypair
from edgeped.rollout.trust import TrustChange


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two key pairs: (private, public, key id) each."""
    tmp = tmp_path_factory.mktemp("keys")
    return {"fleet": generate_keypair(tmp / "fleet"), "lab": generate_keypair(tmp / "lab")}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, device_models, keys):
    """One bundle signed by the fleet key and one unsigned, of two distinct models."""
    tmp = tmp_path_factory.mktemp("bundles")
    models = tiny_models(device_models)
    signed = make_run(tmp / "r-signed", models["good1"])
    unsigned = make_run(tmp / "r-unsigned", models["good2"])
    return {
        "signed": make_bundle(signed, tmp / "b-signed", sign_key=keys["fleet"][0]),
        "unsigned": make_bundle(unsigned, tmp / "b-unsigned"),
    }


def cli(*args, codes=(0,)):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in codes, (args, result.output)
    assert "Traceback" not in result.output
    return result


def trust(root: Path, *args, codes=(0,)):
    return cli("trust", "--host", "local", "--root", root, *args, codes=codes)


def config(root: Path) -> dict:
    return json.loads((root / "agent.json").read_text())


def pub_line(keys, name: str) -> str:
    return keys[name][1].read_text().strip()


def history_events(root: Path) -> list[str]:
    path = root / "history.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["event"] for line in lines]


def test_trust_writes_agent_json_on_a_fresh_board(tmp_path, keys):
    root = tmp_path / "board"
    result = trust(root, "--key", keys["fleet"][1])
    assert config(root) == {
        "kind": "edgeped.agent_config",
        "allow_unsigned": False,
        "trusted_keys": [pub_line(keys, "fleet")],
    }
    assert f"trusted key {keys['fleet'][2]} (added)" in result.output
    assert "signatures: required" in result.output and "TRUST UPDATED" in result.output
    assert [n for n in os.listdir(root) if n.startswith("agent.json")] == ["agent.json"]
    assert history_events(root) == ["trust_changed"]
    # The agent reads back what it wrote: status shows the same trust.
    status = cli("status", "--host", "local", "--root", root, "--json", "-")
    assert json.loads(status.stdout)["trust"]["trusted_keys"] == [keys["fleet"][2]]


def test_trust_adds_keys_to_the_ones_the_board_trusts_and_keeps_its_policy(tmp_path, keys):
    root = tmp_path / "board"
    trust(root, "--key", keys["fleet"][1], "--allow-unsigned")
    result = trust(root, "--key", keys["lab"][1])
    assert config(root)["trusted_keys"] == [pub_line(keys, "fleet"), pub_line(keys, "lab")]
    assert config(root)["allow_unsigned"] is True  # not named: kept
    assert f"trusted key {keys['lab'][2]} (added)" in result.output
    assert f"trusted key {keys['fleet'][2]}\n" in result.output
    before = (root / "agent.json").read_bytes()
    again = trust(root, "--key", keys["lab"][1], "--key", keys["lab"][1])
    assert "already trusts what was asked; nothing written" in again.output
    assert (root / "agent.json").read_bytes() == before
    assert history_events(root) == ["trust_changed", "trust_changed"]
    trust(root, "--require-signed")
    assert config(root)["allow_unsigned"] is False
    assert len(config(root)["trusted_keys"]) == 2


def test_replace_leaves_only_the_keys_given(tmp_path, keys):
    root = tmp_path / "board"
    trust(root, "--key", keys["fleet"][1], "--key", keys["lab"][1])
    result = trust(root, "--key", keys["lab"][1], "--replace")
    assert config(root)["trusted_keys"] == [pub_line(keys, "lab")]
    assert config(root)["allow_unsigned"] is False
    assert f"removed key {keys['fleet'][2]}" in result.output
    assert "0 key(s) added, 1 removed" in result.output
    history = [json.loads(x) for x in (root / "history.jsonl").read_text().splitlines()]
    assert history[-1]["removed"] == [keys["fleet"][2]]
    assert history[-1]["trusted_keys"] == [keys["lab"][2]]


def _private(keys, tmp):
    return keys["fleet"][0]


def _missing(keys, tmp):
    return tmp / "nope.pub"


def _junk(keys, tmp):
    (tmp / "junk.pub").write_text("hello\n")
    return tmp / "junk.pub"


def _openssh(keys, tmp):
    (tmp / "id_ed25519.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG user@host\n")
    return tmp / "id_ed25519.pub"


def _edited_id(keys, tmp):
    algorithm, raw, _ = pub_line(keys, "fleet").split()
    (tmp / "edited.pub").write_text(f"{algorithm} {raw} 0123456789abcdef\n")
    return tmp / "edited.pub"


def _short_key(keys, tmp):
    (tmp / "short.pub").write_text("ed25519 AAAA 0123456789abcdef\n")
    return tmp / "short.pub"


# (case, how the bad file is made, what the error says about it).
BAD_PUB = [
    ("private key", _private, "is a PRIVATE key"),
    ("missing", _missing, "public key file not found"),
    ("not a key", _junk, "is not an edgeped Ed25519 public key"),
    ("OpenSSH key", _openssh, "is an OpenSSH key"),
    ("edited key id", _edited_id, "the file was edited"),
    ("short key", _short_key, "an Ed25519 key is 32"),
]


@pytest.mark.parametrize("case,make,says", BAD_PUB, ids=[c[0] for c in BAD_PUB])
def test_a_bad_pub_file_is_named_and_nothing_reaches_the_board(tmp_path, keys, case, make, says):
    root = tmp_path / "board"
    trust(root, "--key", keys["lab"][1])
    before = (root / "agent.json").read_bytes()
    bad = make(keys, tmp_path)
    # A good key beside the bad one is not sent either: the change is all or nothing.
    result = trust(root, "--key", keys["fleet"][1], "--key", bad, codes=(65,))
    assert str(bad) in result.output and says in result.output, result.output
    assert "nothing was sent to the board" in result.output
    assert "fix: " in result.output
    assert (root / "agent.json").read_bytes() == before
    assert history_events(root) == ["trust_changed"]


def test_every_bad_file_is_listed_at_once(tmp_path, keys):
    result = trust(
        tmp_path / "board", "--key", _junk(keys, tmp_path), "--key", _missing(keys, tmp_path),
        codes=(65,),
    )  # fmt: skip
    assert "2 key files are not usable" in result.output
    assert "junk.pub" in result.output and "nope.pub" in result.output
    assert not (tmp_path / "board" / "agent.json").exists()


def test_a_config_that_would_lock_the_board_out_is_refused(tmp_path, keys):
    fresh = tmp_path / "fresh"
    result = trust(fresh, "--require-signed", codes=(65,))
    assert "would trust no key while requiring signatures" in result.output
    assert "nothing was written" in result.output and "--key" in result.output
    assert not (fresh / "agent.json").exists()

    root = tmp_path / "board"
    trust(root, "--key", keys["fleet"][1])
    before = (root / "agent.json").read_bytes()
    for args in (["--replace"], ["--replace", "--require-signed"]):
        result = trust(root, *args, codes=(65,))
        assert "[lockout]" in result.output
        assert (root / "agent.json").read_bytes() == before
    # Dropping every key is fine on a development board that installs unsigned bundles.
    result = trust(root, "--replace", "--allow-unsigned")
    assert config(root) == {
        "kind": "edgeped.agent_config",
        "allow_unsigned": True,
        "trusted_keys": [],
    }
    assert "UNSIGNED BUNDLES ALLOWED" in result.output and "no trusted key" in result.output


def test_show_reads_the_trust_and_writes_nothing(tmp_path, keys):
    root = tmp_path / "board"
    result = trust(root, "--show")
    assert "not provisioned" in result.output and "trust shown" in result.output
    assert not (root / "agent.json").exists()
    trust(root, "--key", keys["fleet"][1])
    before = (root / "agent.json").read_bytes()
    for args in (["--show"], []):
        result = trust(root, *args)
        assert f"trusted key {keys['fleet'][2]}" in result.output
        assert "signatures: required" in result.output
    reply = json.loads(trust(root, "--show", "--json", "-").stdout)
    assert reply["outcome"] == "trust_shown" and reply["config"] == str(root / "agent.json")
    assert reply["trust"]["trusted_keys"] == [keys["fleet"][2]]
    assert (root / "agent.json").read_bytes() == before
    result = trust(root, "--show", "--key", keys["lab"][1], codes=(64,))
    assert "--show only shows" in result.output


def test_an_unreadable_agent_json_is_kept_until_replaced(tmp_path, keys):
    root = tmp_path / "board"
    root.mkdir()
    (root / "agent.json").write_text("{not json")
    shown = trust(root, "--show")
    assert "unreadable" in shown.output and "--replace" in shown.output
    result = trust(root, "--key", keys["fleet"][1], codes=(65,))
    assert "[config_invalid]" in result.output and "pass --replace" in result.output
    assert (root / "agent.json").read_text() == "{not json"
    trust(root, "--key", keys["fleet"][1], "--replace")
    assert config(root)["trusted_keys"] == [pub_line(keys, "fleet")]


def test_trust_waits_for_a_command_holding_the_board(tmp_path, keys):
    root = tmp_path / "board"
    trust(root, "--show")  # makes the device root
    with agent_device.Lock(agent_device.Device(str(root)), "install", 0):
        result = trust(root, "--key", keys["fleet"][1], codes=(65,))
    assert "[busy]" in result.output and "--wait" in result.output
    assert not (root / "agent.json").exists()


def test_after_trust_a_signed_bundle_installs_and_an_unsigned_one_is_refused(
    tmp_path, keys, bundles
):
    root = tmp_path / "board"
    trust(root, "--key", keys["fleet"][1])
    result = cli("install", bundles["signed"], "--host", "local", "--root", root)
    assert "INSTALLED" in result.output
    assert f"signatures: required (trusted keys: {keys['fleet'][2]}" in result.output
    result = cli("install", bundles["unsigned"], "--host", "local", "--root", root, codes=(65,))
    assert "the bundle is not signed" in result.output and "[unsigned]" in result.output
    assert current_sha(root) == release_sha(bundles["signed"])
    # A development board: the unsigned bundle installs, and every reply says so.
    trust(root, "--allow-unsigned")
    result = cli("install", bundles["unsigned"], "--host", "local", "--root", root)
    assert "INSTALLED" in result.output and "UNSIGNED BUNDLES ALLOWED" in result.output
    assert current_sha(root) == release_sha(bundles["unsigned"])


def test_a_key_dropped_by_replace_no_longer_installs(tmp_path, keys, bundles):
    root = tmp_path / "board"
    trust(root, "--key", keys["fleet"][1], "--key", keys["lab"][1])
    trust(root, "--key", keys["lab"][1], "--replace")
    result = cli("install", bundles["signed"], "--host", "local", "--root", root, codes=(65,))
    assert f"signed by key {keys['fleet'][2]}, which this board does not trust" in result.output
    assert current_sha(root) is None


def test_the_change_is_the_agents_trust_arguments():
    line = "ed25519 " + "A" * 43 + "= 0123456789abcdef"
    change = TrustChange((line,), allow_unsigned=False, replace=True)
    assert change.agent_args() == ["trust", "--key", line, "--require-signed", "--replace"]
    assert TrustChange().agent_args() == ["trust"] and not TrustChange().changes_anything
    with pytest.raises(ValueError, match="key_lines"):
        TrustChange(("ssh-ed25519 AAAA",))


@pytest.mark.emulated
def test_trust_and_a_signed_install_on_the_emulated_arm64_board(
    tmp_path, arm64_board, keys, bundles, monkeypatch
):
    monkeypatch.setenv("EDGEPED_ARM64_EMU", str(arm64_board))
    root = tmp_path / "emu-board"
    emu = ["--host", "arm64-emu", "--core", "a53", "--root", root]
    result = cli("trust", *emu, "--key", keys["fleet"][1])
    assert "TRUST UPDATED on arm64-emu" in result.output
    assert config(root)["trusted_keys"] == [pub_line(keys, "fleet")]
    assert "signatures: required" in result.output and "cryptography" in result.output
    result = cli("install", bundles["unsigned"], *emu, codes=(65,))
    assert "[unsigned]" in result.output and current_sha(root) is None
    result = cli("install", bundles["signed"], *emu)
    assert "INSTALLED" in result.output
    state = json.loads((root / "state.json").read_text())
    assert state["slots"]["a"]["signature"]["verified"] is True
