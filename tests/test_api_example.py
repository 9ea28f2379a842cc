"""The Python API example in docs/api.md (and the README) runs exactly as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).parent.parent / "docs" / "api.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/api.md must hold exactly one python example"
    return blocks[0]


def test_example_uses_public_names_that_exist():
    import importlib

    for module, names in re.findall(r"^from (edgeped[\w.]*) import (.+)$", _example(), re.M):
        imported = importlib.import_module(module)
        for name in (n.strip() for n in names.split(",")):
            assert hasattr(imported, name), f"{module}.{name} named in docs/api.md is gone"


@pytest.mark.slow
def test_example_runs_as_written(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(_example())
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    run = tmp_path / "runs" / "api"
    for name in ("metrics.json", "report.md", "student_qat_int8.tflite", "gallery/errors.png"):
        assert (run / name).is_file(), name
    assert (run / "train_log.student.csv").is_file()
    assert "ships: " in proc.stdout
    assert re.search(r"^\d+ (FAIL|MISSING|PASS)", proc.stdout, re.M), proc.stdout[-1000:]
