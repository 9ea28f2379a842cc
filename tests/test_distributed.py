"""Two local tf.distribute workers (TF_CONFIG on localhost) train, save and convert correctly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgeped.errors import EdgepedError
from edgeped.train.distributed import worker_role

TOML = """
batch_size = 16
seed = 1
data_dir = "{data}"
[teacher]
architecture = "tiny"
[student]
architecture = "student"
width = 0.25
[teacher_stage]
epochs = 1
learning_rate = 0.01
steps_per_epoch = 2
[student_stage]
epochs = 1
learning_rate = 0.01
steps_per_epoch = 2
[qat_stage]
epochs = 1
learning_rate = 0.001
steps_per_epoch = 2
"""

WORKER = textwrap.dedent(
    """
    import sys
    from edgeped.config import load_mapping
    from edgeped.train.config import TrainConfig
    from edgeped.train.distributed import train_distributed

    def say(message):
        print(message, flush=True)

    config = TrainConfig.from_dict(load_mapping(sys.argv[1]))
    stages = ("teacher", "student_distilled", "student_qat")
    train_distributed(sys.argv[2], config, stages=stages, worker_dir=sys.argv[3], progress=say)
    """
)

CONVERT = textwrap.dedent(
    """
    import json, sys
    from edgeped.convert.inspect import load_interpreter, tensor_infos
    from edgeped.convert.run import convert_run

    convert_run(sys.argv[1], only=("student_qat_int8",), calibration_samples=32)
    inputs, _ = tensor_infos(load_interpreter(sys.argv[1] + "/student_qat_int8.tflite"))
    print(json.dumps({t.role: [t.scale, t.zero_point] for t in inputs}))
    """
)


def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(**extra) -> dict:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    env.update({"OMP_NUM_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}, **extra)
    return env


def _weights(path: Path) -> list[np.ndarray]:
    import h5py

    out = []
    with h5py.File(path, "r") as f:
        f["model_weights"].visititems(
            lambda name, obj: out.append((name, obj[()])) if isinstance(obj, h5py.Dataset) else None
        )
    return out


@pytest.fixture(scope="module")
def sharded_dataset(tmp_path_factory):
    """~480 crops in 32-record shards: ~8 train shards, so FILE sharding has files to split."""
    from edgeped.data.synthetic import SynthConfig, iter_drives
    from edgeped.data.writer import DatasetWriter

    out = tmp_path_factory.mktemp("sharded") / "data"
    config = SynthConfig(drives=24, crops_per_drive=20, positive_rate=0.25, seed=3, workers=1)
    writer = DatasetWriter(out, shard_records=32, split_fractions=(0.5, 0.25, 0.25))
    for batch in iter_drives(config):
        writer.add(batch)
    writer.close()
    return out


@pytest.mark.slow
def test_two_workers_end_with_identical_weights_and_pinned_input_ranges(tmp_path, sharded_dataset):
    config = tmp_path / "train.toml"
    config.write_text(TOML.format(data=sharded_dataset))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    ports = _ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    # Worker 1's folder already holds a checkpoint: a worker's copy is never refused
    # as an existing run (only the chief's run directory is protected).
    (tmp_path / "worker1").mkdir()
    (tmp_path / "worker1" / "teacher.h5").write_bytes(b"stale")
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    str(config),
                    str(tmp_path / "run"),
                    str(tmp_path / f"worker{index}"),
                ],
                env=_env(TF_CONFIG=tf_config),
                stdout=open(tmp_path / f"worker{index}.log", "w"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
        )
    try:
        for p in procs:
            p.wait(timeout=600)
    finally:
        for p in procs:
            p.kill()
    logs = [(tmp_path / n).read_text() for n in ("worker0.log", "worker1.log")]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]

    chief, other = tmp_path / "run", tmp_path / "worker1"
    assert not (tmp_path / "worker0").exists()  # the chief writes the run directory only
    for name in ("teacher.h5", "student_distilled.h5", "student_qat.h5"):
        a, b = _weights(chief / name), _weights(other / name)
        assert [n for n, _ in a] == [n for n, _ in b]
        for (n, x), (_, y) in zip(a, b, strict=True):
            assert np.array_equal(x, y), f"{name}: {n} differs between workers"

    assert (chief / "config.json").is_file() and (other / "config.json").is_file()

    # Conversion in a fresh process; both int8 inputs carry the pinned quantisation.
    out = subprocess.run(
        [sys.executable, "-c", CONVERT, str(chief)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ranges = [json.loads(out.stdout.strip().splitlines()[-1])]
    assert set(ranges[0]) == {"image", "meta"}
    assert ranges[0]["image"] == [1 / 128, 0]
    assert ranges[0]["meta"][0] == pytest.approx(8 / 255)  # pinned to [-4, 4]


def test_tf_config_is_checked():
    for bad, match in (
        (None, "not set"),
        ("{", "not a valid cluster spec"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "index 3"),
        ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "cannot train"),
    ):
        with pytest.raises(EdgepedError, match=match):
            worker_role(bad)
    role = worker_role(
        '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}'
    )
    assert role.workers == 2 and not role.is_chief


def test_kubernetes_recipe_runs_the_distributed_command_then_converts_apart():
    yaml = pytest.importorskip("yaml")
    root = Path(__file__).resolve().parents[1]
    docs = list(yaml.safe_load_all((root / "docker/k8s/train-tfjob.yaml").read_text()))
    job = next(d for d in docs if d["kind"] == "TFJob")
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]
    container = worker["template"]["spec"]["containers"][0]
    assert container["name"] == "tensorflow" and worker["replicas"] >= 2
    assert (
        container["command"][:2] == ["edgeped", "train"] and "--distributed" in container["command"]
    )
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    convert = yaml.safe_load((root / "docker/k8s/convert-job.yaml").read_text())
    assert "edgeped convert" in " ".join(
        convert["spec"]["template"]["spec"]["containers"][0]["command"]
    )
    recipe = (root / "docker/Dockerfile.worker").read_text()
    assert "tools/install.sh --beam" in recipe and "pip install" not in recipe


def test_metadata_input_quantiser_is_pinned_with_the_image_one():
    """AllValuesQuantizer ranges are per replica: pinning both inputs keeps workers equal."""
    from edgeped._keras import tfmot
    from edgeped.models import build_model
    from edgeped.models.registry import ModelSpec
    from edgeped.train.checkpoints import INPUT_RANGE, fix_input_ranges

    model = tfmot().quantization.keras.quantize_model(build_model(ModelSpec("student", width=0.25)))
    assert fix_input_ranges(model, (-4.0, 4.0)) == 2
    ranges = {
        len(layer.input_shape): sorted(
            float(w.numpy()) for w in layer.weights if w.name.endswith(("_min:0", "_max:0"))
        )
        for layer in model.layers
        if type(layer).__name__ == "QuantizeLayer"
    }
    assert ranges == {4: sorted(INPUT_RANGE), 2: [-4.0, 4.0]}


def test_train_command_checks_its_distributed_options(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from edgeped.cli import main

    monkeypatch.delenv("TF_CONFIG", raising=False)
    runner = CliRunner()
    data = tmp_path / "data"
    result = runner.invoke(
        main, ["train", str(tmp_path / "r"), "--data", str(data), "--distributed"]
    )
    assert result.exit_code == 65 and "needs TF_CONFIG" in result.output
    result = runner.invoke(
        main, ["train", str(tmp_path / "r"), "--data", str(data), "--worker-dir", str(tmp_path)]
    )
    assert result.exit_code == 64 and "--worker-dir needs --distributed" in result.output


def test_the_chief_refuses_an_existing_run_before_tensorflow_starts(
    tmp_path, monkeypatch, sharded_dataset
):
    from edgeped.config import load_mapping
    from edgeped.train.config import TrainConfig
    from edgeped.train.distributed import train_distributed

    config = tmp_path / "train.toml"
    config.write_text(TOML.format(data=sharded_dataset))
    cfg = TrainConfig.from_dict(load_mapping(config))
    run = tmp_path / "run"
    run.mkdir()
    (run / "teacher.h5").write_bytes(b"an earlier run")
    cluster = {"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    with pytest.raises(EdgepedError, match="already holds a run"):
        train_distributed(run, cfg, stages=("teacher",))
    with pytest.raises(EdgepedError, match="no config.json"):
        train_distributed(run, cfg, stages=("teacher",), resume=True)
    assert (run / "teacher.h5").read_bytes() == b"an earlier run"
