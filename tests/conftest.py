"""Shared fixtures: tiny datasets and a tiny trained+converted+evaluated run, built in code."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """~1.2k synthetic crops over 40 drives, 20% pedestrians so every split has both classes."""
    from edgeped.data.synthetic import SynthConfig, write_synthetic

    out = tmp_path_factory.mktemp("tiny_dataset")
    write_synthetic(
        str(out),
        SynthConfig(drives=40, crops_per_drive=30, positive_rate=0.2, seed=3, workers=1),
        split_fractions=(0.5, 0.25, 0.25),
    )
    return out


TINY_TRAIN_TOML = """
batch_size = 16
seed = 1
stages = ["teacher", "student_distilled", "student_qat"]
[teacher]
architecture = "tiny"
[student]
architecture = "tiny"
[teacher_stage]
epochs = 1
learning_rate = 0.01
steps_per_epoch = 6
[student_stage]
epochs = 2
learning_rate = 0.01
steps_per_epoch = 10
[qat_stage]
epochs = 1
learning_rate = 0.001
steps_per_epoch = 6
"""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_dataset):
    """A tiny model trained (float + QAT), converted and evaluated through the CLI."""
    from click.testing import CliRunner

    from edgeped.cli import main

    root = tmp_path_factory.mktemp("tiny_run")
    config = root / "train.toml"
    config.write_text(TINY_TRAIN_TOML)
    run = root / "run"
    runner = CliRunner()
    for args in (
        ["train", str(run), "--data", str(tiny_dataset), "--config", str(config)],
        ["convert", str(run), "--calibration-samples", "64"],
        ["eval", str(run)],
    ):
        result = runner.invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return run


# --- device harness fixtures (runner, targets, emulated board, test sshd) ---------------

import json as _json  # noqa: E402 (device harness section)
import os as _os  # noqa: E402 (device harness section)
import socket as _socket  # noqa: E402 (device harness section)
import subprocess as _subprocess  # noqa: E402 (device harness section)
from pathlib import Path as _Path  # noqa: E402 (device harness section)

from helpers import REPO_ROOT, RUNNER  # noqa: E402 (device harness section)


def _tiny_device_model(meta: bool = True, image_shape=(128, 64, 3)):
    """Two conv layers (+ a meta branch): the smallest model with the production I/O."""
    from edgeped._keras import keras

    keras.utils.set_random_seed(7)
    image = keras.Input(image_shape, name="image")
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(image)
    x = keras.layers.DepthwiseConv2D(3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    inputs = [image]
    if meta:
        m = keras.Input((12,), name="meta")
        inputs.append(m)
        x = keras.layers.Concatenate()([x, keras.layers.Dense(4, activation="relu")(m)])
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def _convert(model, int8: bool) -> bytes:

    from edgeped._keras import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)
        names = [t.name.split(":")[0] for t in model.inputs]
        shapes = [tuple(t.shape[1:]) for t in model.inputs]

        def representative():
            for _ in range(8):
                yield {
                    n: rng.uniform(-1, 1, (1, *s)).astype(np.float32)
                    for n, s in zip(names, shapes, strict=True)
                }

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="session")
def device_models(tmp_path_factory):
    """Tiny .tflite models: int8 and float32 with meta, int8 image-only, a wrong-shape one."""
    out = tmp_path_factory.mktemp("device_models")
    with_meta = _tiny_device_model()
    specs = {
        "int8": (with_meta, True),
        "float": (with_meta, False),
        "int8_image_only": (_tiny_device_model(meta=False), True),
        "bad_shape": (_tiny_device_model(meta=False, image_shape=(96, 48, 3)), False),
    }
    paths = {}
    for name, (model, int8) in specs.items():
        paths[name] = out / f"{name}.tflite"
        paths[name].write_bytes(_convert(model, int8))
    return paths


@pytest.fixture(scope="session")
def device_crops(tmp_path_factory):
    """Six real-format crops with some metadata missing (NaN)."""

    path = tmp_path_factory.mktemp("device_crops") / "crops.npz"
    rng = np.random.default_rng(11)
    metadata = rng.normal(3.0, 2.0, size=(6, 6)).astype(np.float32)
    metadata[0, :] = np.nan
    metadata[2, 4] = np.nan
    np.savez(path, images=rng.integers(0, 256, (6, 128, 64, 3), dtype=np.uint8), metadata=metadata)
    return path


def run_device_runner(*args, python=None, env=None, timeout=300):
    """Runs device/runner.py and returns (exit code, parsed JSON line, stderr)."""
    import sys

    proc = _subprocess.run(
        [python or sys.executable, str(RUNNER), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, (
        f"runner must print exactly one JSON line:\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.returncode, _json.loads(lines[0]), proc.stderr


@pytest.fixture(scope="session")
def arm64_board():
    """The emulated arm64 board, built (once, cached) by tools/setup_arm64_emu.sh."""
    import shutil

    if shutil.which("qemu-aarch64") is None:
        pytest.fail("qemu-aarch64 missing: apt-get install --no-install-recommends qemu-user")
    board = _Path(_os.environ.get("EDGEPED_ARM64_EMU", REPO_ROOT / ".cache" / "arm64-emu"))
    proc = _subprocess.run(
        ["bash", str(REPO_ROOT / "tools" / "setup_arm64_emu.sh"), str(board)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (board / "READY").is_file()
    return board


def _free_port() -> int:
    with _socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ecu_sshd(tmp_path_factory):
    """An sshd playing `ecu-dev` (netns ecu-dev when possible, else loopback)."""
    import shutil

    if shutil.which("sshd") is None and not _Path("/usr/sbin/sshd").exists():
        pytest.fail("sshd missing: apt-get install --no-install-recommends openssh-server")
    root = tmp_path_factory.mktemp("ecu_sshd")
    script = REPO_ROOT / "tools" / "setup_test_sshd.sh"
    proc = _subprocess.run(
        ["bash", str(script), "start", str(root), str(_free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    env = dict(line.split("=", 1) for line in (root / "env").read_text().splitlines())
    yield {"dir": root, "ssh_config": root / "ssh_config", **env}
    _subprocess.run(["bash", str(script), "stop", str(root)], capture_output=True, timeout=60)


@pytest.fixture(autouse=True)
def _ctrl_c_is_keyboard_interrupt():
    """Every test starts with Python's own SIGINT handler.

    A library run in this process (the Beam runner's workers among them) may leave SIGINT
    ignored; subprocesses would then inherit the ignore and a Ctrl-C test would prove
    nothing, so the handler is put back before each test and restored after it.
    """
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
