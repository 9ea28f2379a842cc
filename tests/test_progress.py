"""Training progress (steps, rate, ETA, loss), the quiet stderr filter, and training logs."""

import json
import os
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from edgeped import quiet
from edgeped.train.config import LoggingConfig, TrainConfig
from edgeped.train.progress import EpochMeter, PlainRecords


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_meter_rate_eta_and_line():
    clock = FakeClock()
    meter = EpochMeter("teacher", 1, 3, 200, clock=clock)
    assert meter.rate is None and meter.eta_s is None
    clock.now += 30.0  # the first step traces the graph: slow, and left out of the rate
    meter.update(1, 1.2)
    assert meter.rate is None and meter.line() == "teacher epoch 1/3: step 1/200 0% loss 1.2000"
    clock.now += 10.0
    meter.update(51, 0.41344)
    assert meter.rate == pytest.approx(5.0)
    assert meter.eta_s == pytest.approx(29.8)
    assert meter.line() == "teacher epoch 1/3: step 51/200 26% 5.0 steps/s ETA 30 s loss 0.4134"


def test_meter_unknown_total_has_no_eta():
    clock = FakeClock()
    meter = EpochMeter("student", 2, 6, None, clock=clock)
    meter.update(1, None)
    clock.now += 4.0
    meter.update(9, None)
    assert meter.eta_s is None
    assert meter.line() == "student epoch 2/6: step 9 2.0 steps/s"


def test_plain_records_are_rate_limited_single_lines():
    clock, lines = FakeClock(), []
    meter = EpochMeter("teacher", 1, 1, 1000, clock=clock)
    display = PlainRecords(lines.append, interval_s=10.0)
    display.start(meter)
    for step in range(1, 101):
        clock.now += 1.0
        meter.update(step, 0.5)
        display.update(meter)
    assert len(lines) == 10
    assert all("\n" not in line and len(line) < 80 for line in lines)
    assert lines[-1].startswith("teacher epoch 1/1: step 100/1000 10%")


def test_noise_patterns_drop_library_chatter_and_keep_the_rest():
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796115049.385195    3745 cudart_stub.cc:31] Could not find cuda drivers "
        "on your machine, GPU will not be used.",
        "I0000 00:00:1796115389.866866   14795 cpu_feature_guard.cc:227] This TensorFlow binary",
        "fully_quantize: 0, inference_type: 6, input_inference_type: INT8, "
        "output_inference_type: INT8",
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
        "E0000 00:00:1796126596.205031   31160 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
        "WARNING:absl:Compiled the loaded model, but the compiled metrics have yet to be built. ",
    ]
    kept = [
        "error: run directory not found: runs/x",
        "Traceback (most recent call last):",
        "E0000 00:00:1796115049.385195    3745 some_kernel.cc:12] real failure",
        "teacher: epoch 1/3 loss 0.4134",
    ]
    assert all(quiet.is_noise(line) for line in noise)
    assert not any(quiet.is_noise(line) for line in kept)


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


FILTER_SCRIPT = """
import os, sys
from edgeped import quiet
quiet.install_stderr_filter()
os.write(2, b"I0000 00:00:1.5    3745 cudart_stub.cc:31] Could not find cuda drivers\\n")
os.write(2, b"native message kept\\n")
os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
print("python message kept", file=sys.stderr)
"""


def test_stderr_filter_drops_native_noise_and_verbose_keeps_it():
    quiet_run = _run(FILTER_SCRIPT, EDGEPED_VERBOSE="")
    assert quiet_run.returncode == 0
    # The two streams reach the terminal by different routes, so only the set is fixed.
    assert sorted(quiet_run.stderr.splitlines()) == ["native message kept", "python message kept"]
    loud = _run(FILTER_SCRIPT, EDGEPED_VERBOSE="1")
    assert "cudart_stub" in loud.stderr and "XNNPACK" in loud.stderr


def test_logging_config_round_trips_and_validates():
    config = TrainConfig("d", logging=LoggingConfig(tensorboard=True, csv=True))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    parsed = tomllib.loads("data_dir = 'd'\n[logging]\ncsv = true\n")
    assert TrainConfig.from_dict(parsed).logging == LoggingConfig(csv=True)
    with pytest.raises(ValueError, match="logging.csv"):
        LoggingConfig(csv="yes")


def test_callback_reports_steps_and_writes_csv_and_tensorboard(tmp_path):
    from edgeped._keras import keras
    from edgeped.train.logs import log_callbacks
    from edgeped.train.progress import progress_callback

    clock, lines = FakeClock(), []

    class Ticking(PlainRecords):
        def update(self, meter):
            clock.now += 1.0
            super().update(meter)

    model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((32, 4), np.float32), np.zeros((32, 1), np.float32)
    callbacks = [
        progress_callback("tiny", 2, Ticking(lines.append, interval_s=2.0), clock=clock),
        *log_callbacks(tmp_path, "tiny", LoggingConfig(tensorboard=True, csv=True)),
    ]
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=callbacks)
    assert lines, "no progress records"
    assert lines[0].startswith("tiny epoch 1/2: step 2/8 25%")
    assert any(line.startswith("tiny epoch 2/2: step 8/8 100%") for line in lines)
    assert all("loss " in line and "steps/s" in line for line in lines)
    assert all("ETA" in line for line in lines)
    rows = (tmp_path / "train_log.tiny.csv").read_text().splitlines()
    assert rows[0].split(",")[:2] == ["epoch", "loss"] and len(rows) == 3
    assert list((tmp_path / "tensorboard" / "tiny").rglob("events.out.tfevents.*"))
