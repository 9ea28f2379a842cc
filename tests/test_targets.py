"""Targets: configs, the registry, ssh failure classification, local bench and bench.json."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeped.errors import EdgepedError
from edgeped.fileio import sha256_file
from edgeped.targets import BenchOptions, RunnerJob, bench_model, resolve_target
from edgeped.targets.bench import card_path, preprocess_from_card
from edgeped.targets.local import LocalTarget
from edgeped.targets.registry import register_kind, target_kinds
from edgeped.targets.ssh import SshTarget, SshTargetConfig, classify_ssh_failure

FAST = BenchOptions(min_runs=10, min_seconds=0.0, warmup=1)


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "config",
    [
        BenchOptions(),
        BenchOptions(
            threads=2, batch=4, pin=(0, 1), xnnpack=False, delegate="/x.so", load_threads=1
        ),
        SshTargetConfig(name="ecu-dev", python="/usr/bin/python3", ssh_alias="ecu-dev"),
        SshTargetConfig(
            name="ecu",
            python="/opt/py/bin/python3",
            host="10.0.0.5",
            port=2222,
            user="ecu",
            identity_file="~/.ssh/id_ecu",
            workdir="/data/edgeped",
            timeout_s=120,
            emulated=True,
            core="cortex-a76",
        ),
    ],
)
def test_configs_round_trip_through_json_and_toml(config):
    cls = type(config)
    assert cls.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    toml_text = "\n".join(
        f"{k} = {json.dumps(v)}" for k, v in config.to_dict().items() if v is not None
    )  # TOML has no null: absent means default
    assert cls.from_dict(tomllib.loads(toml_text)) == config


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"threads": 0}, "threads"),
        ({"batch": -1}, "batch"),
        ({"min_seconds": -1}, "min_seconds"),
        ({"pin": (-1,)}, "pin"),
        ({"load_threads": -2}, "load_threads"),
    ],
)
def test_bench_options_reject_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        BenchOptions(**kwargs)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"python": "/usr/bin/python3"}, "exactly one of ssh_alias or host"),
        ({"python": "python3", "ssh_alias": "a"}, "absolute path"),
        ({"python": "/p", "ssh_alias": "a", "host": "h"}, "exactly one"),
        ({"python": "/p", "host": "h", "port": 70000}, "port"),
        ({"python": "/p", "host": "h", "workdir": "rel"}, "workdir"),
    ],
)
def test_ssh_config_rejects_bad_values(kwargs, words):
    with pytest.raises(ValueError, match=words):
        SshTargetConfig(name="t", **kwargs)


def test_unknown_target_key_is_rejected():
    with pytest.raises(ValueError, match=r"unknown key\(s\)"):
        SshTargetConfig.from_dict({"name": "t", "python": "/p", "host": "h", "hots": "x"})


def test_example_targets_file_builds_what_it_says_with_documented_keys():
    root = Path(__file__).resolve().parents[1]
    example = root / "targets.example.toml"
    readme = (root / "targets.README.md").read_text()
    tables = tomllib.loads(example.read_text())["targets"]
    assert {spec.get("kind", "ssh") for spec in tables.values()} == {"local", "arm64-emu", "ssh"}
    for name, spec in tables.items():
        target = resolve_target(name, example)
        facts = target.describe()
        assert (facts["name"], facts["kind"]) == (name, spec.get("kind", "ssh"))
        for key, value in spec.items():
            assert f"`{key}`" in readme, f"targets.README.md does not explain {key}"
            if key in ("python", "workdir"):
                assert facts[key] == value
            elif key == "core":
                assert facts["core"].removeprefix("cortex-") == value.removeprefix("cortex-")
        if "ssh_alias" in spec:
            assert facts["destination"] == spec["ssh_alias"]
        elif "host" in spec:
            assert facts["destination"] == f"{spec['user']}@{spec['host']}"


@pytest.mark.parametrize("kind", ["local", "arm64-emu", "ssh"])
def test_a_misspelt_key_is_refused_for_every_kind(tmp_path, kind):
    toml = tmp_path / "targets.toml"
    toml.write_text(
        f'[targets.t]\nkind = "{kind}"\nhost = "h"\npython = "/p"\npyhton = "/p"\n'
        if kind == "ssh"
        else f'[targets.t]\nkind = "{kind}"\npyhton = "/p"\n'
    )
    with pytest.raises(EdgepedError, match=r"bad \[targets.t\].*pyhton"):
        resolve_target("t", toml)


# --------------------------------------------------------------------------- registry


def test_builtin_targets_resolve(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGEPED_TARGETS", raising=False)
    local = resolve_target("local")
    assert isinstance(local, LocalTarget) and local.describe()["emulated"] is False
    emu = resolve_target("arm64-emu", core="a53")
    assert emu.emulated is True and emu.describe()["core"] == "cortex-a53"
    assert {"local", "arm64-emu", "ssh"} <= set(target_kinds())


def test_targets_toml_resolves_ssh_and_rejects_unknowns(tmp_path):
    toml = tmp_path / "targets.toml"
    toml.write_text(
        '[targets.ecu-dev]\nssh_alias = "ecu-dev"\npython = "/usr/bin/python3"\n'
        '[targets.weird]\nkind = "carrier-pigeon"\n'
        '[targets.broken]\nhost = "h"\npython = "python3"\n'
    )
    target = resolve_target("ecu-dev", toml)
    assert isinstance(target, SshTarget) and target.describe()["destination"] == "ecu-dev"
    with pytest.raises(EdgepedError, match="unknown target 'nope'"):
        resolve_target("nope", toml)
    with pytest.raises(EdgepedError, match="unknown kind 'carrier-pigeon'"):
        resolve_target("weird", toml)
    with pytest.raises(EdgepedError, match=r"bad \[targets.broken\]"):
        resolve_target("broken", toml)
    with pytest.raises(EdgepedError, match="--core applies to the emulated board"):
        resolve_target("ecu-dev", toml, core="a53")
    with pytest.raises(EdgepedError, match="not found"):
        resolve_target("ecu-dev", tmp_path / "absent.toml")


def test_a_registered_fake_kind_is_used(tmp_path, device_models):
    class RecordingTarget:
        kind = "recording"
        emulated = False

        def __init__(self, name):
            self.name = name
            self.jobs = []

        def describe(self):
            return {"name": self.name, "kind": self.kind, "emulated": False, "core": None}

        def run(self, job, progress=None):
            self.jobs.append(job)
            return LocalTarget().run(job, progress)

    if "recording" not in target_kinds():
        register_kind("recording")(lambda name, spec, core: RecordingTarget(name))
    with pytest.raises(ValueError, match="already registered"):
        register_kind("recording")(lambda name, spec, core: None)
    toml = tmp_path / "targets.toml"
    toml.write_text('[targets.rec]\nkind = "recording"\n')
    target = resolve_target("rec", toml)
    result = bench_model(device_models["int8"], target, FAST)
    assert isinstance(target.jobs[0], RunnerJob)
    assert result.target["kind"] == "recording"


# --------------------------------------------------------------------------- ssh failures


_CFG = SshTargetConfig(
    name="ecu-dev", python="/usr/bin/python3", ssh_alias="ecu-dev", workdir="/data/edgeped"
)


@pytest.mark.parametrize(
    "stderr, words",
    [
        ("ssh: connect to host 10.0.0.9 port 22: Connection refused", "cannot reach ecu-dev"),
        ("ssh: Could not resolve hostname ecu-devx: Name or service not known", "cannot reach"),
        ("ssh: connect to host 10.0.0.9 port 22: Connection timed out", "cannot reach"),
        ("root@10.0.0.9: Permission denied (publickey).", "refused the key"),
        (
            "No ED25519 host key is known for [10.77.0.2]:2222 and you have requested strict "
            "checking.\r\nHost key verification failed.",
            "host key of ecu-dev is not known",
        ),
        (
            "@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @\nHost key verification failed.",
            "has CHANGED",
        ),
        ("tar: model.tflite: Cannot write: No space left on device", "disk of ecu-dev is full"),
        ("kex_exchange_identification: something odd", "ssh to ecu-dev failed"),
    ],
)
def test_ssh_failures_get_distinct_messages(stderr, words):
    error = classify_ssh_failure(stderr, 255, _CFG)
    assert words in error.problem and error.fix


def test_ssh_command_keeps_host_key_checking_and_uses_batch_mode():
    argv = SshTarget(_CFG).ssh_argv("true")
    joined = " ".join(argv)
    assert "BatchMode=yes" in joined
    assert "StrictHostKeyChecking" not in joined and "/dev/null" not in joined
    assert argv[-2:] == ["ecu-dev", "true"]


# --------------------------------------------------------------------------- local bench


@pytest.mark.slow
def test_local_bench_and_bench_json(device_models, device_crops, tmp_path):
    result = bench_model(
        device_models["int8"], resolve_target("local"), FAST, crops=device_crops, parity=True
    )
    path = result.save(tmp_path / "out" / "bench.json")
    data = json.loads(path.read_text())
    for key in (
        "schema_version",
        "tool_versions",
        "model_sha256",
        "target_name",
        "target_kind",
        "emulated",
        "invoke_ms_p50",
        "invoke_ms_p95",
        "e2e_ms_per_crop_p50",
        "e2e_ms_per_crop_p95",
        "peak_rss_mb",
        "size_bytes",
        "parity_ok",
        "instructions_per_invoke",
        "core",
    ):
        assert key in data, key
    assert data["kind"] == "edgeped.bench"
    assert data["model_sha256"] == result.model_sha256
    assert data["size_bytes"] == device_models["int8"].stat().st_size
    assert data["emulated"] is False and data["parity_ok"] is True
    assert data["invoke_ms_p50"] <= data["invoke_ms_p95"]
    assert data["peak_rss_mb"] > 0
    assert data["inputs"]["crops_sha256"] and data["inputs"]["runner_sha256"]


def test_a_failed_bench_save_keeps_the_previous_file(tmp_path, monkeypatch):
    """bench.json is written beside and renamed: a failure mid-write leaves the old one whole."""
    import edgeped.fileio as fileio
    from edgeped.fileio import write_json_atomic

    path = tmp_path / "bench.json"
    write_json_atomic(path, {"kind": "edgeped.bench", "old": True})
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", broken_replace)
    with pytest.raises(EdgepedError, match="cannot write"):
        write_json_atomic(path, {"kind": "edgeped.bench", "old": False})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"], "no temp file left behind"


@pytest.mark.slow
def test_model_card_preprocessing_is_used(device_models, tmp_path):
    model = tmp_path / "student.tflite"
    model.write_bytes(device_models["float"].read_bytes())
    assert card_path(model) is None
    card = tmp_path / "student.card.json"
    card.write_text(
        json.dumps(
            {
                "model": {"sha256": sha256_file(model)},
                "preprocessing": {
                    "metadata": {"mean": [1, 2, 3, 4, 5, 6], "std": [1, 1, 1, 2, 2, 2], "clip": 4.0}
                },
            }
        )
    )
    assert preprocess_from_card(model)["metadata"]["mean"] == [1, 2, 3, 4, 5, 6]
    result = bench_model(model, resolve_target("local"), FAST)
    assert result.inputs["preprocess"] == str(card)
    assert result.runner["config"]["preprocess"] is not None
    card.write_text(
        json.dumps(
            {
                "model": {"sha256": sha256_file(model)},
                "preprocessing": {"metadata": {"mean": [0] * 6}},
            }
        )
    )
    with pytest.raises(EdgepedError, match="no metadata mean/std"):
        bench_model(model, resolve_target("local"), FAST)
    # A card made for another model never lends it its normalisation.
    card.write_text(json.dumps({"model": {"sha256": "0" * 64}, "preprocessing": {}}))
    with pytest.raises(EdgepedError, match="made for the model with sha256 000000000000"):
        bench_model(model, resolve_target("local"), FAST)


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(EdgepedError, match="model not found"):
        bench_model(tmp_path / "absent.tflite", resolve_target("local"), FAST)
    with pytest.raises(EdgepedError, match="--golden needs the crops"):
        bench_model(
            tmp_path / "absent.tflite", resolve_target("local"), FAST, golden=tmp_path / "g.npz"
        )


@pytest.mark.slow
def test_runs_are_bounded_by_the_timeout(device_models, tmp_path):
    # The runner stops its timed loop well inside the timeout...
    bounded = BenchOptions(min_runs=10**7, min_seconds=0, warmup=0, timeout_s=8)
    result = bench_model(device_models["int8"], resolve_target("local"), bounded)
    assert result.runner["loop_seconds"] < 4
    # ...a minimum time that cannot fit in the timeout is refused up front...
    with pytest.raises(ValueError, match="does not fit in timeout_s 8"):
        BenchOptions(min_seconds=60, timeout_s=8)
    # ...and a runner that hangs anyway is stopped with a clear message.
    hung = tmp_path / "hung-python"
    hung.write_text("#!/bin/sh\nexec sleep 60\n")
    hung.chmod(0o755)
    with pytest.raises(EdgepedError, match="did not finish within 2 s"):
        bench_model(device_models["int8"], LocalTarget(python=str(hung)), BenchOptions(timeout_s=2))


# --------------------------------------------------------------------------- CLI


def test_cli_import_is_lean():
    code = (
        "import sys, edgeped.cli\n"
        "heavy = [m for m in ('tensorflow', 'numpy', 'edgeped.targets.bench') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_cli_bench_local_in_process(device_models, tmp_path):
    from edgeped.cli import main

    out = tmp_path / "b"
    result = CliRunner().invoke(
        main,
        [
            "bench",
            str(device_models["int8"]),
            "--target",
            "local",
            "--runs",
            "10",
            "--min-seconds",
            "0",
            "--parity",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "invoke p95" in result.output and "parity vs host" in result.output
    (saved,) = out.glob("*.local.json")  # --out names a folder
    assert json.loads(saved.read_text())["parity_ok"] is True
    assert saved.with_name(saved.stem + ".latency.png").is_file()


@pytest.mark.slow
def test_cli_bench_through_entry_point(device_models, tmp_path):
    out = tmp_path / "b"
    proc = subprocess.run(
        [
            "edgeped",
            "bench",
            str(device_models["float"]),
            "--runs",
            "10",
            "--min-seconds",
            "0",
            "--batch",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (saved,) = out.glob("*.local.json")
    assert json.loads(saved.read_text())["batch"] == 2
    bad = subprocess.run(
        ["edgeped", "bench", str(device_models["float"]), "--target", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 65 and "unknown target 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_cli_bench_exits_1_when_parity_fails(device_models, device_crops, tmp_path):
    import numpy as np
    from conftest import run_device_runner

    from edgeped.cli import main

    golden = tmp_path / "golden.npz"
    run_device_runner(device_models["int8"], "--crops", device_crops, "--write-golden", golden)
    with np.load(golden) as npz:
        data = {k: npz[k] for k in npz.files}
    data["raw"] = (data["raw"].astype(np.int16) ^ 1).astype(np.int8)
    np.savez(golden, **data)
    result = CliRunner().invoke(
        main,
        [
            "bench",
            str(device_models["int8"]),
            "--crops",
            str(device_crops),
            "--golden",
            str(golden),
            "--runs",
            "5",
            "--min-seconds",
            "0",
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "parity FAILED" in result.output
    (saved,) = (tmp_path / "b").glob("*.local.json")
    assert json.loads(saved.read_text())["parity_ok"] is False


def test_pushes_carry_the_whole_device_package_and_it_runs_from_there(tmp_path):
    # What a runner job or an agent call stages, laid out under the names an SSH push
    # gives it, is a working copy of device/: runner.py and agent.py start from it alone.
    from edgeped.rollout.agent_client import agent_files
    from edgeped.targets.base import runner_code_sha256

    device = Path(__file__).resolve().parents[1] / "device"
    package = {p.relative_to(device).as_posix() for p in device.rglob("*.py")}
    package -= {"runner.py", "agent.py"}
    staged = RunnerJob(model=tmp_path / "m.tflite").staged()
    pushed = agent_files()
    assert package and package <= set(staged) and package <= set(pushed)
    board = tmp_path / "board"
    for role, path in {**staged, **pushed}.items():
        if role != "model":
            dest = board / SshTarget._remote_name(role, path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(Path(path).read_bytes())
    assert {p.relative_to(board).as_posix() for p in board.rglob("*.py")} == {
        "runner.py",
        "agent.py",
        *package,
    }
    helped = subprocess.run(
        [sys.executable, str(board / "runner.py"), "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "--crops" in helped.stdout, helped.stderr
    status = subprocess.run(
        [sys.executable, str(board / "agent.py"), "--root", str(tmp_path / "root"), "status"],
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and json.loads(status.stdout)["ok"], status.stderr
    assert len(runner_code_sha256()) == 64
