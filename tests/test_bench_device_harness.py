"""benchmarks/device on the shared harness: one provenance key set, one result name scheme,
one launcher of the emulated board's Python (the product's target), no sys.path edits."""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import harness
from benchmarks.device import (
    arch_cost,
    bench_device,
    bench_frames,
    bench_peer,
    bench_variants,
    emu,
    peer_report,
)
from edgeped.errors import EdgepedError
from edgeped.targets import emulated
from edgeped.targets.base import DEVICE_DIR, RunnerJob, TargetTimeout
from edgeped.targets.emulated import EmulatedArm64Target

DEVICE = harness.BENCHMARKS / "device"
OLD = harness.RESULTS / "device"
# The scripts that write a result, and the subject their files are named after.
WRITERS = {
    arch_cost: "arch-cost",
    bench_device: "device",
    bench_frames: "frames",
    bench_peer: "peer",
    bench_variants: "variants",
}
# What the harness records: a script must not set these itself, nor keep its old spellings.
OWN_KEYS = {*harness.PROVENANCE_KEYS, "loadavg", "load_avg", "versions", "environment"}
BOARD_READY = (emulated.default_board_dir() / "READY").is_file()


def _today() -> str:
    return f"{dt.datetime.now(dt.UTC).date():%Y%m%d}"


def _keys_set_by(tree: ast.AST) -> set[str]:
    """Constant keys a module writes into dicts: literals, `x[key] = ...`, `.update(key=...)`."""
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys |= {k.value for k in node.keys if isinstance(k, ast.Constant)}
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            if isinstance(node.slice, ast.Constant):
                keys.add(node.slice.value)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "update"
        ):
            keys |= {k.arg for k in node.keywords if k.arg}
    return keys


def _harness_calls(tree: ast.AST) -> set[str]:
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "harness"
    }


@pytest.mark.parametrize("module", list(WRITERS), ids=lambda m: m.__name__.split(".")[-1])
def test_writers_take_provenance_from_the_harness_only(module):
    tree = ast.parse(Path(module.__file__).read_text())
    assert {"provenance", "finish", "write_result"} <= _harness_calls(tree)
    assert _keys_set_by(tree) & OWN_KEYS == set()


@pytest.mark.parametrize("module", list(WRITERS), ids=lambda m: m.__name__.split(".")[-1])
def test_default_output_follows_the_name_scheme(module, tmp_path):
    subject = WRITERS[module]
    # The subject is the one the moved result files already carry.
    assert any(p.name.startswith(f"{subject}-20") for p in OLD.glob("*.json")), subject
    labelled = module.out_path(None, "vgg-w025")
    assert labelled == OLD / f"{subject}-{_today()}-vgg-w025.json"
    assert module.out_path(None, "").name == f"{subject}-{_today()}.json"
    assert harness.RESULT_NAME.match(labelled.name)
    if module is bench_device:  # --out-dir: a folder, the same name
        assert module.out_path(tmp_path, "trained") == tmp_path / f"device-{_today()}-trained.json"
    else:  # --out: the JSON path itself
        assert module.out_path(tmp_path / "x.json", "vgg") == tmp_path / "x.json"
    doc = module.__doc__
    assert f"python -m benchmarks.device.{module.__name__.split('.')[-1]}" in doc
    assert f"benchmarks/results/device/{subject}-<YYYYMMDD>" in doc


def test_arch_cost_resumes_an_old_result_and_writes_harness_keys(tmp_path):
    # Every variant is already in the (pre-harness) file: nothing is built or emulated.
    out = tmp_path / "arch-cost.json"
    shutil.copy(OLD / "arch-cost-20261202-vgg.json", out)
    old_rows = json.loads(out.read_text())["rows"]
    assert arch_cost.main(["--variants", "vgg:0.25:1", "--core", "a76", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert set(record) == {*harness.PROVENANCE_KEYS, "model_source", "rows"}
    assert record["kind"] == "edgeped.benchmark.arch_cost" and record["rows"] == old_rows
    assert all(isinstance(x, list) for x in record["loadavg_before_after"])
    table = out.with_suffix(".md").read_text()
    assert "| vgg-w0.25-d1 | 77,881 | 6.93 | 89 | 1,291,300 | a76 |" in table


def test_frames_render_reads_the_harness_keys():
    record = harness.provenance("frames", ["m.tflite", "--n", "16"])
    record = harness.finish(record)
    record["fps"] = 30.0
    record["rows"] = [
        {
            "where": "host",
            "n": 16,
            "load_threads": 0,
            "modes": {
                "batched": {"frame_ms_p50": 1.0, "frame_ms_p95": 2.0, "over_budget_share": 0.0}
            },
        },
        {
            "where": "emulated cortex-a76",
            "n": 16,
            "modes": {"batched": {"instructions_per_frame": 1600, "instructions_per_crop": 100}},
        },
    ]
    text = bench_frames.render(record)
    assert record["command"] in text and str(record["loadavg_before_after"]) in text
    assert "| emulated cortex-a76 | 16 | - | batched | - | - | - | 1,600 | 100 |" in text


def test_peer_report_header_reads_the_harness_keys():
    record = harness.finish(harness.provenance("peer", [], packages=bench_peer.PACKAGES))
    record["machine"].update(bench_peer.cpu_facts())
    board = {"python": "3.11.2", "numpy": "2.4.6", "runtime_version": "1.32.0"}
    record.update(
        ort_providers=["CPUExecutionProvider"],
        emulated={"cortex-a76": board},
        emulated_ort={"cortex-a76": board},
        inputs={"test_crops": 10, "test_positives": 2, "calibration_crops": 4},
        macs={"float32": 1000, "qat_int8": 1000},
    )
    text = "\n".join(peer_report.header(record))
    for name in ("onnxruntime", "onnx", "tf2onnx", "tensorflow"):
        assert f"{name} {record['tool_versions'][name]}" in text
    assert f"Python {platform.python_version()}" in text
    assert f"{record['machine']['cpu_count']} cores" in text and "CPUExecutionProvider" in text


def test_random_calibration_draws_what_the_old_representative_sets_drew():
    from benchmarks.device.calibration import random_calibration

    model = SimpleNamespace(
        inputs=[
            SimpleNamespace(name="image:0", shape=(None, 4, 2, 3)),
            SimpleNamespace(name="meta", shape=(None, 12)),
        ]
    )
    rng = np.random.default_rng(0)
    old = [
        {
            n: rng.uniform(-1, 1, (1, *s)).astype(np.float32)
            for n, s in (("image", (4, 2, 3)), ("meta", (12,)))
        }
        for _ in range(5)
    ]
    new = list(random_calibration(model, 5).samples(model))
    assert len(new) == 5
    for a, b in zip(old, new, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    with pytest.raises(ValueError, match="need 'image'"):
        random_calibration(SimpleNamespace(inputs=[SimpleNamespace(name="x", shape=(None, 2))]), 1)


# --------------------------------------------------------------------------- the launcher


def test_count_launches_device_count_through_the_emulated_target(monkeypatch, tmp_path):
    seen = {}

    def fake_exec(self, argv, timeout_s, stdin=b"", env=None, progress=None):
        seen.update(target=self, argv=argv, env=env, jobs=json.loads(Path(argv[1]).read_text()))
        assert Path(env["EDGEPED_INSN_OUT"]).is_file()  # the plugin appends to it
        line = json.dumps({"ok": True, "environment": {"python": "3.11.2"}, "results": []})
        return subprocess.CompletedProcess(argv, 0, f"noise\n{line}\n".encode(), b"")

    monkeypatch.setattr(EmulatedArm64Target, "exec", fake_exec)
    site = tmp_path / "aarch64-site"
    jobs = [{"name": "m", "model": "/m.onnx", "runs": 3}]
    result = emu.count(tmp_path, "cortex-a72", "ort", jobs, site=site, preprocess={"clip": 4.0})
    target = seen["target"]
    assert isinstance(target, EmulatedArm64Target) and target.fixed_layout
    assert target.core == "cortex-a72" and target.board_dir == tmp_path
    assert seen["argv"][0] == str(DEVICE / "device_count.py") and len(seen["argv"]) == 2
    assert seen["env"]["PYTHONPATH"].split(":") == [str(site), str(DEVICE_DIR)]
    assert seen["jobs"]["runtime"] == "ort" and seen["jobs"]["jobs"] == jobs
    assert result["core"] == "cortex-a72" and result["environment"]["python"] == "3.11.2"
    assert emu.guest_env(tmp_path / "c.txt")["PYTHONPATH"] == str(DEVICE_DIR)


def test_count_reports_a_failed_device_count(monkeypatch, tmp_path):
    line = json.dumps({"ok": False, "error": {"problem": "bad model", "fix": "x"}})
    monkeypatch.setattr(
        EmulatedArm64Target,
        "exec",
        lambda self, argv, *a, **k: subprocess.CompletedProcess(argv, 3, line.encode(), b""),
    )
    with pytest.raises(RuntimeError, match="bad model"):
        emu.count(tmp_path, "a76", "litert", [])


def test_a_missing_board_is_the_targets_error_and_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(emulated.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as exc:
        emu.board(tmp_path / "no-board")
    assert str(exc.value).startswith("error: qemu-aarch64 not found")
    assert "\nfix: apt-get install" in str(exc.value)
    with pytest.raises(SystemExit, match="^error: boom\nfix: do this$"), emu.clear_errors():
        raise EdgepedError("boom", "do this")


@pytest.fixture
def board(tmp_path):
    (tmp_path / "READY").write_text("")
    return tmp_path


@pytest.mark.parametrize("fixed", [True, False])
def test_fixed_layout_prefixes_exec_and_run(monkeypatch, board, tmp_path, fixed):
    calls = []

    def fake_exec_process(argv, target, timeout_s, env, stdin=b""):
        calls.append((argv, env))
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    def fake_run_process(argv, target, timeout_s, env=None):
        calls.append((argv, env))
        return {"ok": True}

    monkeypatch.setattr(emulated, "exec_process", fake_exec_process)
    monkeypatch.setattr(emulated, "run_process", fake_run_process)
    monkeypatch.setenv("PYTHONPATH", "/host/x86-only")  # never handed to the guest
    target = EmulatedArm64Target(core="a53", board_dir=board, fixed_layout=fixed)
    linux = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "aarch64")
    prefix = ["setarch", platform.machine(), "-R"] if fixed and linux else []
    assert emulated.fixed_layout_prefix() == (
        ["setarch", platform.machine(), "-R"] if linux else []
    )

    target.exec(["count.py", "jobs.json"], 5.0)
    argv, env = calls[-1]
    assert argv == [*prefix, str(board / "bin" / "python-aarch64"), "count.py", "jobs.json"]
    assert env["EDGEPED_EMU_CORE"] == "cortex-a53" and "QEMU_SET_ENV" not in env

    target.exec(["count.py"], 5.0, env={"PYTHONPATH": "/dev/pkg:/site", "EDGEPED_INSN_OUT": "/c"})
    argv, env = calls[-1]
    # python-aarch64 resets PYTHONPATH to the board's site: qemu sets the guest's instead.
    assert env["QEMU_SET_ENV"] == f"PYTHONPATH=/dev/pkg:/site:{board / 'site'}"
    assert env["EDGEPED_INSN_OUT"] == "/c"

    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    assert target.run(RunnerJob(model=model))["emulated"] is True
    argv, env = calls[-1]
    assert argv[: len(prefix) + 2] == [*prefix, str(target.python), str(DEVICE_DIR / "runner.py")]
    assert "EDGEPED_INSN_OUT" in env  # the target counts instructions by default


def test_a_timeout_names_the_script_not_the_setarch_prefix(monkeypatch, board):
    def timeout(argv, target, timeout_s, env, stdin=b""):
        raise TargetTimeout(f"{argv[1]} on {target} did not finish", "raise the timeout")

    monkeypatch.setattr(emulated, "exec_process", timeout)
    target = EmulatedArm64Target(board_dir=board, fixed_layout=True)
    with pytest.raises(TargetTimeout, match=r"^device_count.py on arm64-emu \(cortex-a76\)"):
        target.exec(["/x/device_count.py", "j.json"], 1.0)
    with pytest.raises(EdgepedError, match="holds a comma"):
        target.exec(["x.py"], 1.0, env={"PYTHONPATH": "/a,b"})


def test_no_sys_path_edits_in_benchmarks_device():
    hits = [
        f"{p.name}:{i}"
        for p in sorted(DEVICE.glob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "sys.path" in line
    ]
    assert hits == []


def test_device_count_finds_the_on_board_package_through_pythonpath_only():
    script = DEVICE / "device_count.py"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ok = subprocess.run(
        [sys.executable, str(script), "--help"],
        env={**env, "PYTHONPATH": str(DEVICE_DIR)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=harness.REPO_ROOT,
    )
    assert ok.returncode == 0 and "JOBS.json" in ok.stdout
    missing = subprocess.run(
        [sys.executable, str(script), "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert missing.returncode == 3
    assert "PYTHONPATH" in json.loads(missing.stdout)["error"]["problem"]


@pytest.mark.emulated
@pytest.mark.slow
@pytest.mark.skipif(not BOARD_READY, reason="no emulated board (.cache/arm64-emu/READY)")
def test_count_on_the_emulated_board(device_models):
    result = emu.count(
        emulated.default_board_dir(),
        "cortex-a76",
        "litert",
        [{"name": "int8", "model": str(device_models["int8"]), "runs": 3}],
        timeout_s=600,
    )
    (job,) = result["results"]
    assert result["environment"]["machine"] == "aarch64"
    assert len(job["per_invoke"]) == 3 and min(job["per_invoke"]) > 0
    assert job["instructions_per_invoke"] == sorted(job["per_invoke"])[1]
