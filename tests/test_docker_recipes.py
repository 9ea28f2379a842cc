"""The container recipes call the tested tools/ scripts instead of carrying their own copy."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ecu_image_uses_the_shared_runtime_and_sshd_scripts():
    recipe = (ROOT / "docker" / "Dockerfile.ecu-arm64").read_text()
    assert "tools/install_device_runtime.sh" in recipe
    assert "tools/setup_test_sshd.sh" in recipe
    assert "device/runner.py" in recipe
    assert "pip install" not in recipe, "runtime installs go through install_device_runtime.sh"


def test_emulated_board_uses_the_same_runtime_script():
    setup = (ROOT / "tools" / "setup_arm64_emu.sh").read_text()
    assert "tools/install_device_runtime.sh" in setup
    assert "-cpu max" not in (ROOT / "tools" / "run_arm64.sh").read_text()


def test_dev_image_builds_the_board_with_the_setup_script():
    recipe = (ROOT / "docker" / "Dockerfile.dev").read_text()
    assert "tools/setup_arm64_emu.sh" in recipe and "make test" in recipe
