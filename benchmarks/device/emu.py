"""Runs benchmarks/device/device_count.py on the emulated arm64 board and returns its JSON.

Host side of the instruction counts: writes the jobs file, starts python-aarch64 with the
counting plugin under `setarch -R` (address-space randomisation off: ONNX Runtime's counts
move by up to 0.2% between processes otherwise) and `nice -n 10`, and parses the result.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORES = ("cortex-a53", "cortex-a72", "cortex-a76")


def board(path: str | None) -> Path:
    root = Path(path or os.environ.get("EDGEPED_ARM64_EMU", ".cache/arm64-emu"))
    if not (root / "READY").is_file():
        raise SystemExit(
            f"error: no emulated arm64 board at {root}\nfix: run `bash tools/setup_arm64_emu.sh` "
            "or set EDGEPED_ARM64_EMU"
        )
    return root


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
    """One emulated process that counts every job; returns the parsed result."""
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
        cmd = ["nice", "-n", "10"]
        if platform.machine() == "x86_64":
            cmd += ["setarch", "x86_64", "-R"]
        cmd += [str(emu / "bin" / "python-aarch64"), str(HERE / "device_count.py"), str(spec)]
        if site:
            cmd += ["--site", str(site)]
        env = {**os.environ, "EDGEPED_EMU_CORE": core, "EDGEPED_INSN_OUT": str(out)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(
                f"device_count on {core} ({runtime}) failed, exit {proc.returncode}: "
                f"{proc.stdout[-2000:]} {proc.stderr[-2000:]}"
            )
        result = json.loads(lines[-1])
        if not result.get("ok"):
            raise RuntimeError(f"device_count on {core} ({runtime}): {result.get('error')}")
        result["core"] = core
        return result
