"""benchmarks/rollout and benchmarks/scale on the shared harness: every script imports, edits
no sys.path, starts its result from `harness.provenance` (one key set, no private header
keys), finishes it, and by default writes `results/<topic>/<subject>-<YYYYMMDD>...`.

Each script's `main` runs in-process with its measurements faked (or made tiny), with
`harness.RESULTS` pointed at a temporary folder, so what is checked is the file it writes.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks import harness

FOLDERS = ("rollout", "scale")
MODULES = sorted(
    f"benchmarks.{topic}.{p.stem}"
    for topic in FOLDERS
    for p in (harness.BENCHMARKS / topic).glob("*.py")
    if p.name != "__init__.py"
)
# What the scripts wrote before the harness; none of it may come back beside its keys.
PRIVATE_HEADER_KEYS = {
    "date",
    "command_line",
    "environment",
    "versions",
    "loadavg",
    "load_avg",
    "loadavg_before",
    "loadavg_after",
    "loadavg_start",
    "load_average_at_start",
}
RECORDED = harness.RESULTS / "rollout"


@pytest.fixture
def results(tmp_path, monkeypatch):
    """`harness.RESULTS` in a temporary folder: default paths land there, not in the repo."""
    root = tmp_path / "results"
    monkeypatch.setattr(harness, "RESULTS", root)
    return root


def _only_result(root: Path, topic: str, subject: str) -> tuple[Path, dict]:
    written = sorted((root / topic).glob("*.json"))
    assert len(written) == 1, written
    path = written[0]
    assert harness.RESULT_NAME.match(path.name), path.name
    assert re.fullmatch(rf"{re.escape(subject)}-20\d{{6}}(-[a-z0-9._-]+)?\.json", path.name)
    return path, json.loads(path.read_text())


def _check_provenance(record: dict, kind: str) -> None:
    assert set(harness.PROVENANCE_KEYS) <= set(record)
    assert not PRIVATE_HEADER_KEYS & set(record), PRIVATE_HEADER_KEYS & set(record)
    assert record["kind"] == f"edgeped.benchmark.{kind}"
    assert set(record["machine"]) == set(harness.provenance(kind, [])["machine"])
    before, after = record["loadavg_before_after"]
    assert after is not None, "harness.finish was not called"
    assert record["command"].split()[0] == "python"


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_in_a_fresh_interpreter(module):
    # From the repository root, as `python -m` runs it: a moved edgeped API fails here
    # (drift_detection once imported fleet.iter_drives, which no longer exists).
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=harness.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_no_script_edits_sys_path_or_writes_next_to_itself():
    found = []
    for topic in FOLDERS:
        for path in (harness.BENCHMARKS / topic).glob("*.py"):
            source = path.read_text()
            for node in ast.walk(ast.parse(source)):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr == "path"
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "sys"
                ):
                    found.append(f"{path.name}:{node.lineno}: sys.path")
            # HERE is the topic folder now: results do not go to HERE / "results"
            if re.search(r"HERE\s*/\s*[\"']results", source):
                found.append(f"{path.name}: HERE / 'results'")
    assert found == []


def test_drift_fleet_windows_are_the_generators_drives():
    from benchmarks.rollout.drift_detection import fleet
    from edgeped.data.fleet import FleetConfig, generate_drive
    from edgeped.data.schema import CropBatch

    batch = fleet(3, 4, 7, night_rate=0.7)
    config = FleetConfig(drives=3, crops_per_drive=4, seed=7, night_rate=0.7, workers=1)
    expected = CropBatch.concat([generate_drive(config, d) for d in range(3)])
    assert list(batch.crop_id) == list(expected.crop_id)
    assert (batch.images == expected.images).all()


def test_drift_detection_writes_a_harness_record(results):
    from benchmarks.rollout import drift_detection

    drift_detection.main(
        ["--seeds", "1", "--drives", "2", "--crops-per-drive", "5", "--reference-drives", "4"]
    )
    path, record = _only_result(results, "rollout", "drift")
    _check_provenance(record, "drift_detection")
    assert record["tool_versions"]["scipy"] != "not installed"
    assert record["false_alarm_rate"]["windows"] == 1
    assert path.with_suffix(".md").read_text() == drift_detection.render(record)


def test_drift_render_reproduces_the_recorded_table():
    from benchmarks.rollout import drift_detection

    recorded = json.loads((RECORDED / "drift-20261201.json").read_text())
    assert drift_detection.false_alarms(recorded["unshifted"]) == recorded["false_alarm_rate"]
    assert drift_detection.render(recorded) == (RECORDED / "drift-20261201.md").read_text()


def _fake_shadow_run(recorded: dict):
    def run_shadow(base, cand, target, out_dir, *, data_dir, limit, options):
        host = "host_fsync_every_32" if options.fsync_every == 32 else "host"
        cost = {**recorded[host]["cost"], "instructions": recorded["emulated"]["instructions"]}
        overall = {"crops": limit, "flip_rate": recorded["host"]["flip_rate"]}
        return SimpleNamespace(report=SimpleNamespace(overall=overall, cost=cost))

    return run_shadow


def test_bench_shadow_writes_a_harness_record(results, tmp_path, monkeypatch):
    from benchmarks.rollout import bench_shadow

    recorded = json.loads((RECORDED / "shadow-20261201.json").read_text())
    monkeypatch.setattr(bench_shadow, "run_shadow", _fake_shadow_run(recorded))
    monkeypatch.setattr(bench_shadow, "resolve_target", lambda name, **kw: name)
    run = tmp_path / "run"
    run.mkdir()
    card = {"source": {"dataset": str(tmp_path / "data")}}
    (run / "student_distilled_float32.card.json").write_text(json.dumps(card))
    bench_shadow.main([str(run), "--crops", "500", "--emu-crops", "8"])
    path, record = _only_result(results, "rollout", "shadow")
    _check_provenance(record, "shadow")
    assert len(record["host"]["loadavg_after"]) == 3  # the host phase's own load, kept
    table = path.with_suffix(".md").read_text().splitlines()
    assert table[:-1] == (RECORDED / "shadow-20261201.md").read_text().splitlines()[:-1]


def test_shadow_estimate_writes_a_harness_record_named_by_the_runs(results, monkeypatch):
    from benchmarks.rollout import shadow_estimate

    recorded = json.loads((RECORDED / "shadow-estimate-20261207-pfd.json").read_text())
    monkeypatch.setattr(shadow_estimate, "measure_run", lambda run, window: recorded["rows"])
    shadow_estimate.main(["runs/pfd", "--name", "pfd"])
    path, record = _only_result(results, "rollout", "shadow-estimate")
    assert path.name.endswith("-pfd.json")
    _check_provenance(record, "shadow_estimate")
    assert record["rows"] == recorded["rows"]
    assert path.with_suffix(".md").read_text() == shadow_estimate.table(recorded["rows"]) + "\n"


def test_bench_rollout_writes_a_harness_record(results, tmp_path, monkeypatch):
    from benchmarks.rollout import bench_rollout

    def bundles(run, model, work, key):
        return {name: tmp_path / name for name in ("good", "second", "bad")}

    def agent(root, *argv):
        failing = argv[0] == "install" and argv[1].endswith("bad")
        return 0.5, int(failing), {}

    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "model.tflite").write_bytes(b"x" * 2048)
    monkeypatch.setattr(bench_rollout, "_bundles", bundles)
    monkeypatch.setattr(bench_rollout, "_agent", agent)
    bench_rollout.main([str(tmp_path / "run"), "--repeats", "2"])
    path, record = _only_result(results, "rollout", "rollout")
    _check_provenance(record, "rollout")
    assert record["bundle_bytes"] == 2048 and record["repeats"] == 2
    assert record["seconds"]["status (store re-verified)"]["median"] == 0.5
    assert "2 repeats" in path.with_suffix(".md").read_text()


def test_bench_rollout_render_reproduces_the_recorded_table():
    from benchmarks.rollout import bench_rollout

    recorded = json.loads((RECORDED / "rollout-20261201.json").read_text())
    recorded["loadavg_before_after"] = [[], recorded["machine"]["loadavg"]]
    assert bench_rollout.render(recorded) == (RECORDED / "rollout-20261201.md").read_text()


def test_bench_shard_check_writes_a_harness_record(results, tmp_path):
    from benchmarks.scale import bench_shard_check

    argv = ["--work", str(tmp_path / "work"), "--drives", "2", "--crops-per-drive", "10"]
    assert bench_shard_check.main([*argv, "--repeat", "1", "--shard-records", "8"]) == 0
    _, record = _only_result(results, "scale", "shard-check")
    _check_provenance(record, "shard_check")
    assert record["dataset"]["records"] == 20
    assert 0 < record["median_ms"]["head_check_share_of_read"]


def _fake_child(name, *args):
    return {
        "crops": 10,
        "seconds": 1.0,
        "crops_per_s": 10.0,
        "crops_per_s_wall": 10.0,
        "crops_per_cpu_s": 10.0,
        "bytes_per_crop": 100.0,
        "peak_rss_mb": 1.0,
    }


def test_bench_data_writes_a_harness_record_and_its_csv(results, tmp_path, monkeypatch):
    from benchmarks.scale import bench_data

    monkeypatch.setattr(bench_data, "_child", _fake_child)
    monkeypatch.setattr(
        bench_data,
        "replicate",
        lambda base, out, copies: {"records": 10 * copies, "splits": {"train": {"records": 7}}},
    )
    bench_data.main(["--work", str(tmp_path / "work")])
    path, record = _only_result(results, "scale", "data")
    _check_provenance(record, "data")
    assert record["extrapolation_12_5M"]["disk_gb"] == pytest.approx(12.5e6 * 100 / 1e9)
    rows = path.with_suffix(".csv").read_text().splitlines()
    assert rows[0] == "measurement,crops,seconds,crops_per_s,peak_rss_mb"
    assert rows[1].startswith("generate_fleet_1proc,10,")


def test_bench_data_quick_run_stays_in_the_work_folder(tmp_path):
    from benchmarks.scale import bench_data

    path = bench_data.out_path(True, tmp_path)
    assert path.parent == tmp_path and harness.RESULT_NAME.match(path.name)


def test_bench_data_child_runs_as_a_module():
    from benchmarks.scale import bench_data

    result = bench_data._child("generate", "fleet", 2, 3)
    assert result["crops"] == 3  # drive 0 is the warm-up


def test_bench_scale_writes_a_harness_record_and_the_tables(results, tmp_path, monkeypatch):
    from benchmarks.scale import bench_scale

    recorded = json.loads((harness.BENCHMARKS / "results/scale/scale-20261201.json").read_text())
    monkeypatch.setattr(bench_scale, "bench_data", lambda work, drives: recorded["data"])
    monkeypatch.setattr(bench_scale, "bench_eval", lambda work, data: recorded["eval"])
    monkeypatch.setattr(bench_scale, "bench_train", lambda work, data, s: recorded["train"])
    table = tmp_path / "scale.md"
    bench_scale.main(["--work", str(tmp_path / "work"), "--table", str(table)])
    path, record = _only_result(results, "scale", "scale")
    _check_provenance(record, "scale")
    assert record["tool_versions"]["apache-beam"] != "not installed"
    assert record["ratios"] == pytest.approx(recorded["ratios"])
    text = table.read_text()
    assert f"Figures in `{path}`" in text and "apache-beam " in text
    assert text.split("## Beam")[1] == (bench_scale.TABLE.read_text()).split("## Beam")[1]


def test_bench_scale_render_keeps_the_recorded_figures_and_file(tmp_path):
    from benchmarks.scale import bench_scale

    old = harness.BENCHMARKS / "results/scale/scale-20261201.json"
    before = old.read_bytes()
    table = tmp_path / "scale.md"
    bench_scale.main(["--render", str(old), "--table", str(table)])
    assert old.read_bytes() == before  # old results are moved, never rewritten
    rendered, committed = table.read_text().splitlines(), bench_scale.TABLE.read_text().splitlines()
    # line 3 names the command; the committed table says how it is run now
    assert rendered[:2] + rendered[3:] == committed[:2] + committed[3:]
