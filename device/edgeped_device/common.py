"""What every on-board mode shares: the result kind, errors, exit codes, the runtime, JSON."""

from __future__ import annotations

import hashlib
import os
import sys

# One BLAS thread keeps the background load and the instruction count predictable; it
# must be set before numpy is imported, and every module of this package imports this one.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


RESULT_KIND = "edgeped.device_result"
RESULT_SCHEMA_VERSION = 1
IMAGE_SHAPE = (128, 64, 3)
META_FEATURES = 6


# The host's exit codes (edgeped.errors.ExitCode, BSD sysexits): a bad command line, a bad
# input file, a bug. The JSON line says which problem; the host reads that, not the code.
EXIT_USAGE = 64
EXIT_PROBLEM = 65
EXIT_INTERNAL = 70


class RunnerError(Exception):
    """A problem the host side maps to a clear message: a stable code, what, how to fix."""

    def __init__(self, code: str, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.code = code
        self.problem = problem
        self.fix = fix


def import_runtime():
    """Returns (numpy, Interpreter, load_delegate, OpResolverType or None, runtime info)."""
    try:
        import numpy as np
    except ImportError as exc:
        raise RunnerError(
            "runtime_missing",
            f"numpy is not importable on this target ({exc})",
            "install numpy for this Python (pip install numpy)",
        ) from exc
    try:
        from ai_edge_litert import interpreter as litert

        name = "ai-edge-litert"
    except ImportError:
        try:
            from tflite_runtime import interpreter as litert

            name = "tflite-runtime"
        except ImportError as exc:
            raise RunnerError(
                "runtime_missing",
                f"neither ai_edge_litert nor tflite_runtime is importable on this target "
                f"(python {sys.executable})",
                "install ai-edge-litert (pip install ai-edge-litert) for this Python, or "
                "point the target's python at one that has it",
            ) from exc
    resolver = getattr(litert, "OpResolverType", None)
    info = {"name": name, "version": _dist_version(name), "numpy": np.__version__}
    return np, litert.Interpreter, litert.load_delegate, resolver, info


def _dist_version(name: str) -> str:
    try:
        from importlib import metadata

        return metadata.version(name)
    except Exception:  # noqa: BLE001 - version is informational only
        return "unknown"


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def failure(exc: RunnerError) -> dict:
    """The JSON line for a problem; the same `error:/fix:` pair goes to stderr for a person."""
    sys.stderr.write(f"error: {exc.problem}\n  fix: {exc.fix}\n")
    return {
        "ok": False,
        "kind": RESULT_KIND,
        "schema_version": RESULT_SCHEMA_VERSION,
        "error": {"code": exc.code, "problem": exc.problem, "fix": exc.fix},
    }


def jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
