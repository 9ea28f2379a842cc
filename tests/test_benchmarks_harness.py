"""benchmarks/: one package on one harness (provenance keys, result names, module imports)."""

from __future__ import annotations

import ast
import datetime as dt
import importlib
import json
import subprocess
import sys

import pytest

from benchmarks import harness

MODULES = sorted(
    ".".join(p.relative_to(harness.REPO_ROOT).with_suffix("").parts)
    for p in harness.BENCHMARKS.rglob("*.py")
    if p.name != "__init__.py" and "results" not in p.parts
)


def test_every_benchmark_lives_in_a_topic_folder():
    loose = [
        p.name
        for p in harness.BENCHMARKS.glob("*.py")
        if p.name not in {"__init__.py", "harness.py"}
    ]
    assert loose == []
    for topic in harness.TOPICS:
        assert (harness.BENCHMARKS / topic / "__init__.py").is_file(), topic
    assert {m.split(".")[1] for m in MODULES} - {"harness"} == set(harness.TOPICS)


def test_every_benchmark_imports_as_a_module():
    # In a fresh interpreter, from the repository root, as `python -m` would: a script that
    # needed a sys.path edit, or an edgeped API that moved on, fails here.
    probe = (
        "import importlib, json, sys\n"
        "failed = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed[name] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps(failed))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *MODULES],
        cwd=harness.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {}
    assert len(MODULES) >= 25


def test_no_benchmark_edits_sys_path():
    edits = []
    for path in harness.BENCHMARKS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
            ):
                edits.append(f"{path.relative_to(harness.REPO_ROOT)}:{node.lineno}")
    assert edits == []


def test_every_result_file_sits_in_a_topic_and_follows_the_name_scheme():
    results = [p for p in harness.RESULTS.rglob("*") if p.is_file()]
    assert len(results) > 100  # the moved history is all there
    bad = []
    for path in results:
        rel = path.relative_to(harness.RESULTS)
        if rel.parts[0] not in harness.TOPICS:
            bad.append(str(rel))
            continue
        # a folder of plots is named by the scheme; the files inside keep their own names
        named = rel.parts[1] if len(rel.parts) > 2 else path.name
        if len(rel.parts) > 2:
            named += ".dir"
        if not harness.RESULT_NAME.match(named):
            bad.append(str(rel))
    assert bad == []


def test_result_path_follows_the_scheme_and_refuses_what_it_cannot_name():
    day = dt.date(2026, 12, 7)
    path = harness.result_path("device", "frames", "vgg w0.25", "", ext="md", day=day)
    assert path == harness.RESULTS / "device" / "frames-20261207-vgg-w0.25.md"
    assert harness.RESULT_NAME.match(path.name)
    with pytest.raises(ValueError, match="topic"):
        harness.result_path("misc", "frames", day=day)
    with pytest.raises(ValueError, match="does not follow"):
        harness.result_path("device", "", day=day)


def test_provenance_has_one_key_set_and_finish_records_the_load(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench.py", "--x", "1"])
    record = harness.provenance("device", packages=("numpy", "no-such-distribution"))
    assert tuple(record) == harness.PROVENANCE_KEYS
    assert record["kind"] == "edgeped.benchmark.device"
    assert record["command"].endswith("--x 1")
    assert record["tool_versions"]["no-such-distribution"] == "not installed"
    assert record["tool_versions"]["numpy"] != "not installed"
    assert record["loadavg_before_after"][1] is None
    harness.finish(record)
    assert record["loadavg_before_after"][1] is not None


def test_command_names_the_module_a_benchmark_ran_as(monkeypatch):
    main = type(sys)("__main__")
    main.__spec__ = importlib.util.find_spec("benchmarks.device.bench_frames")
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert harness.command_line(["--n", "16"]) == "python -m benchmarks.device.bench_frames --n 16"


def test_write_result_refuses_a_record_without_provenance_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "device" / "frames-20261207.json"
    out.parent.mkdir()
    out.write_text('{"old": true}')
    with pytest.raises(ValueError, match="provenance"):
        harness.write_result(out, {"figures": 1})
    assert json.loads(out.read_text()) == {"old": True}
    record = harness.finish(harness.provenance("frames", []))
    written = harness.write_result(out, {**record, "figures": 2}, markdown="# frames")
    assert written == [out, out.with_suffix(".md")]
    assert json.loads(out.read_text())["figures"] == 2
    assert out.with_suffix(".md").read_text() == "# frames\n"
