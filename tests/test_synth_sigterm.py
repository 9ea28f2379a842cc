"""SIGTERM to `data synth` ends its worker processes and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == pid:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("generator", ["v1", "fleet"])
def test_sigterm_to_synth_ends_its_workers(tmp_path, generator):
    out = tmp_path / "data"
    argv = [sys.executable, "-m", "edgeped", "data", "synth", str(out), "--workers", "2"]
    argv += ["--generator", generator, "--drives", "400", "--crops-per-drive", "30"]
    if generator == "fleet":
        argv += ["--shard-records", "64"]
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(workers) < 2 and proc.poll() is None:
            time.sleep(0.2)
            workers = _children(proc.pid)
        assert len(workers) >= 2, "the workers never started"
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # to the parent only, as `kill PID` does
        _, stderr = proc.communicate(timeout=60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "worker processes outlived the parent"
        assert proc.returncode == 143, stderr
        assert b"Traceback" not in stderr, stderr
        assert not out.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left"
    finally:
        for pid in [proc.pid, *workers]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
