"""Runs benchmarks/device/device_count.py on the emulated arm64 board and returns its JSON.

Host side of the instruction counts: writes the jobs file, starts device_count.py through
the product's emulated target (`EmulatedArm64Target.exec`, the one launcher of the board's
Python) with the counting plugin and `fixed_layout` (`setarch -R`: address-space
randomisation off; ONNX Runtime's counts move by up to 0.2% between processes otherwise),
and parses the result. The process runs at normal priority: the counts are exact whatever
else the machine does, only the wall time grows.

device_count.py finds the on-board package (device/edgeped_device) and, for ONNX Runtime,
the aarch64 site-packages through the PYTHONPATH given here.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgeped.errors import EdgepedError
from edgeped.targets.base import DEVICE_DIR
from edgeped.targets.emulated import EmulatedArm64Target, default_board_dir, ensure_board

HERE = Path(__file__).resolve().parent
DEVICE_COUNT = HERE / "device_count.py"
CORES = ("cortex-a53", "cortex-a72", "cortex-a76")


@contextlib.contextmanager
def clear_errors() -> Iterator[None]:
    """Turns the targets' EdgepedError (no board, no qemu, a timeout) into the scripts'
    `error: ... / fix: ...` exit instead of a traceback."""
    try:
        yield
    except EdgepedError as exc:
        raise SystemExit(f"error: {exc.problem}\nfix: {exc.fix}") from exc


def board(path: str | Path | None) -> Path:
    """The emulated board's folder (default $EDGEPED_ARM64_EMU or .cache/arm64-emu), built on
    first use as the target does; exits with the target's problem and fix when it cannot be.
    """
    root = Path(path) if path else default_board_dir()
    with clear_errors():
        return ensure_board(root, lambda msg: print(msg, file=sys.stderr))


def guest_env(out: Path, site: Path | None = None) -> dict[str, str]:
    """What device_count.py needs besides the target's own environment: where the plugin
    writes its counts, and PYTHONPATH (the ONNX site first, then the on-board package)."""
    paths = [str(p) for p in (site, DEVICE_DIR) if p]
    return {"PYTHONPATH": ":".join(paths), "EDGEPED_INSN_OUT": str(out)}


def count(
    emu: Path,
    core: str,
    runtime: str,
    jobs: list[dict],
    *,
    site: Path | None = None,
    crops: Path | None = None,
    preprocess: dict | None = None,
    timeout_s: float = 3600,
) -> dict:
    """One emulated process that counts every job; returns the parsed result.

    Args:
        emu: the board's folder (see `board`).
        core: cortex-a53 / cortex-a72 / cortex-a76 (or a53 / a72 / a76).
        runtime: "litert" or "ort".
        jobs: device_count.py's jobs (see its --help).
        site: aarch64 site-packages with onnxruntime, for runtime "ort".

    Raises:
        RuntimeError: device_count.py failed or reported a problem.
        EdgepedError: the target could not start it, or it outlived `timeout_s`.
    """
    target = EmulatedArm64Target(core=core, board_dir=Path(emu), fixed_layout=True)
    with tempfile.TemporaryDirectory(prefix="edgeped-count-") as tmp:
        spec = Path(tmp) / "jobs.json"
        out = Path(tmp) / "counts.txt"
        out.write_text("")
        spec.write_text(
            json.dumps(
                {
                    "runtime": runtime,
                    "threads": 1,
                    "crops": str(crops) if crops else None,
                    "preprocess": preprocess or {},
                    "jobs": jobs,
                }
            )
        )
        proc = target.exec([str(DEVICE_COUNT), str(spec)], timeout_s, env=guest_env(out, site))
        stdout = proc.stdout.decode(errors="replace")
        stderr = proc.stderr.decode(errors="replace")
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(
                f"device_count on {core} ({runtime}) failed, exit {proc.returncode}: "
                f"{stdout[-2000:]} {stderr[-2000:]}"
            )
        result = json.loads(lines[-1])
        if not result.get("ok"):
            raise RuntimeError(f"device_count on {core} ({runtime}): {result.get('error')}")
        result["core"] = core
        return result
