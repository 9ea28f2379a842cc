"""Evaluation, gating and the CLI never pull in TensorFlow; the run layout needs not even numpy."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module,heavy",
    [
        ("edgeped.cli", "tensorflow"),
        ("edgeped.gate", "tensorflow"),
        ("edgeped.gate.checks", "tensorflow"),
        ("edgeped.evaluate.run", "tensorflow"),
        ("edgeped.evaluate.metrics", "tensorflow"),
        ("edgeped.layout", "numpy"),
        ("edgeped.training_stages", "numpy"),
        ("edgeped.config", "numpy"),
        ("edgeped.registry", "numpy"),
    ],
)
def test_module_does_not_import_heavy_dependency(module, heavy):
    code = f"import sys, {module}; sys.exit(int({heavy!r} in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"importing {module} loads {heavy}: {result.stderr[-500:]}"
