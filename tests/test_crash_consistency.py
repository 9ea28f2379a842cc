"""Crash consistency: a writing command killed at any point leaves the previous output intact.

Each long writing command (synth, import, convert, eval, bench, gate) runs through
the CLI (its renames of temp files slowed, so a kill point cannot fall between two
writes too short to see) over an existing good output and is interrupted with
SIGINT (what Ctrl-C sends to the foreground process group) or SIGKILL at several
points: shortly after start, when its first temp file or staging folder appears
(mid-write), and when a later one appears. Afterwards the previous output must
still verify (datasets: `data verify`; runs: every model matches its card, every
JSON/XML/NPZ/PNG under a final name parses), and after SIGINT no temp file is
left. A point the command finished before is counted as missed; every command
must be hit mid-write at least once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeped.convert.model_card import read_card
from edgeped.data.verify import verify_dataset
from edgeped.fileio import sha256_file, write_group_atomic

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class KillPoint:
    signal: int
    # "temp1": the first temp file or staging folder appears (writing starts);
    # "temp3": the third distinct one (mid-write); "child": the command's own child
    # process runs (bench: the runner is measuring).
    when: str


POINTS = (
    KillPoint(signal.SIGINT, "temp1"),
    KillPoint(signal.SIGKILL, "temp1"),
    KillPoint(signal.SIGINT, "temp3"),
    KillPoint(signal.SIGKILL, "temp3"),
)
FEW_POINTS = (KillPoint(signal.SIGINT, "temp1"), KillPoint(signal.SIGKILL, "temp3"))
HITS: dict[str, list[bool]] = {}


def _edgeped() -> list[str]:
    exe = Path(sys.executable).with_name("edgeped")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "edgeped"]


# On a quiet machine a small file's temp copy lives for well under the 2 ms the kill points
# poll at, so a command that writes a few small files (convert) could finish unhit. The
# interrupted command therefore runs the same CLI in a process whose renames of temp files
# over their targets come 20 ms late: every write then has a window the poll sees.
LATE_RENAMES = """
import os, sys, time
_replace = os.replace
def _late(src, dst, *args, **kwargs):
    if str(src).endswith(".tmp"):
        time.sleep(0.02)
    return _replace(src, dst, *args, **kwargs)
os.replace = _late
sys.argv[0] = "edgeped"
from edgeped.cli import main
main()
"""


def _edgeped_late_renames() -> list[str]:
    return [sys.executable, "-c", LATE_RENAMES]


def _temps(watch: list[Path]) -> set[str]:
    """Temp files and staging folders (with their content) under or beside the watched paths."""
    found = set()
    for root in watch:
        for place in (root, root.parent):
            if not place.is_dir():
                continue
            for entry in place.iterdir():
                if entry.name.endswith(".tmp") or ".incoming-" in entry.name:
                    found.add(str(entry))
                if ".incoming-" in entry.name and entry.is_dir():
                    found.update(str(p) for p in entry.iterdir())
    return found


def _interrupt(argv: list[str], point: KillPoint, watch: list[Path], cwd: Path) -> bool:
    """Runs argv and signals its process group at the point; True if it was still running."""
    proc = subprocess.Popen(
        [*_edgeped_late_renames(), *argv],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    start, seen, hit = time.monotonic(), set(), False
    while proc.poll() is None and time.monotonic() - start < 90:
        if point.when == "child":
            ready = len(_group(proc.pid)) > 1
        else:
            seen |= _temps(watch)
            ready = len(seen) >= (1 if point.when == "temp1" else 3)
        if ready:
            os.killpg(proc.pid, point.signal)
            hit = True
            break
        time.sleep(0.002)
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if point.signal == signal.SIGINT:
        # Ctrl-C: "Aborted!", never a traceback (worker processes included).
        assert b"Traceback" not in stderr, stderr.decode()
    _reap(proc.pid)
    return hit


def _group(pgid: int) -> list[int]:
    """The pids of a process group (from /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def _reap(pgid: int) -> None:
    """Waits until no process of the group is left (worker processes included)."""
    for _ in range(200):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    os.killpg(pgid, signal.SIGKILL)


def _check_dataset(path: Path, signum: int) -> None:
    result = verify_dataset(path)
    assert result.ok, [r for r in result.shards if not r.ok]
    listed = {
        s["file"]
        for sp in json.loads((path / "manifest.json").read_text())["splits"].values()
        for s in sp["shards"]
    }
    assert {p.name for p in path.glob("*.tfrecord")} == listed
    if signum == signal.SIGINT:
        assert not _temps([path]), _temps([path])


def _check_run(run: Path, signum: int, before: dict[str, str]) -> None:
    """Every file under a final name is the old one or a complete new one."""
    for f in sorted(p for p in run.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if before.get(str(f)) == sha256_file(f):
            continue
        if f.suffix == ".json":
            json.loads(f.read_text())
        elif f.suffix == ".xml":
            ET.parse(f)
        elif f.suffix == ".npz":
            with np.load(f, allow_pickle=False) as data:
                list(data.values())
        elif f.suffix == ".png":
            with Image.open(f) as img:
                img.verify()
        else:
            assert f.stat().st_size > 0, f
    for model in run.glob("*.tflite"):
        card = read_card(run / f"{model.stem}.card.json")
        assert card["model"]["sha256"] == sha256_file(model), f"{model.name} and its card differ"
    if signum == signal.SIGINT:
        assert not _temps([run]), _temps([run])


def _snapshot(run: Path) -> dict[str, str]:
    return {str(p): sha256_file(p) for p in run.rglob("*") if p.is_file()}


def _record(command: str, hit: bool) -> None:
    HITS.setdefault(command, []).append(hit)


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from edgeped.data.synthetic import SynthConfig, write_synthetic

    root = tmp_path_factory.mktemp("crash")
    write_synthetic(
        str(root / "data"), SynthConfig(drives=30, crops_per_drive=8, positive_rate=0.3, workers=1)
    )
    crops = root / "crops"
    crops.mkdir()
    rng = np.random.default_rng(0)
    lines = ["path,label,drive_id"]
    for i in range(400):
        Image.fromarray(rng.integers(0, 255, (128, 64, 3), dtype=np.uint8)).save(
            crops / f"c{i:04d}.png"
        )
        lines.append(f"c{i:04d}.png,{i % 3 == 0:d},drive{i // 4}")
    (crops / "crops.csv").write_text("\n".join(lines) + "\n")
    return root


# --- datasets ----------------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS, ids=lambda p: f"{signal.Signals(p.signal).name}-{p.when}")
@pytest.mark.parametrize("command", ["synth", "synth-fleet", "import-crops"])
def test_interrupted_dataset_write_keeps_the_old_dataset(command, point, base, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(base / "data", data)
    manifest = sha256_file(data / "manifest.json")
    argv = {
        "synth": [
            "data",
            "synth",
            str(data),
            "--drives",
            "60",
            "--crops-per-drive",
            "10",
            "--shard-records",
            "100",
            "--overwrite",
            "--workers",
            "2",
        ],
        "synth-fleet": [
            "data",
            "synth",
            str(data),
            "--generator",
            "fleet",
            "--drives",
            "60",
            "--crops-per-drive",
            "10",
            "--shard-records",
            "40",
            "--overwrite",
            "--workers",
            "2",
        ],
        "import-crops": [
            "data",
            "import",
            "crops",
            str(base / "crops" / "crops.csv"),
            str(data),
            "--overwrite",
        ],
    }[command]
    hit = _interrupt(argv, point, [data], tmp_path)
    _record(command, hit)
    _check_dataset(data, point.signal)
    if hit and point.when == "temp1":  # writing had just begun: the old dataset is in place
        assert sha256_file(data / "manifest.json") == manifest, "the old dataset was replaced"
    if point.signal != signal.SIGKILL:
        return
    # The next write clears what a killed one left beside the folder.
    subprocess.run(
        [
            *_edgeped(),
            "data",
            "synth",
            str(data),
            "--drives",
            "20",
            "--crops-per-drive",
            "4",
            "--overwrite",
            "--workers",
            "1",
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    _check_dataset(data, signal.SIGINT)


# --- run directory commands ------------------------------------------------------------------


RUN_COMMANDS = {
    "convert": lambda run: [
        "convert",
        str(run),
        "--only",
        "teacher_float32",
        "--only",
        "student_distilled_float32",
    ],
    "eval": lambda run: ["eval", str(run)],
    "bench": lambda run: [
        "bench",
        str(run / "student_qat_int8.tflite"),
        "--runs",
        "2000",
        "--min-seconds",
        "0",
        "--warmup",
        "1",
        "--out",
        str(run / "bench"),
    ],
    "gate": lambda run: [
        "gate",
        str(run),
        "--budgets",
        str(Path(__file__).parents[1] / "budgets.toml"),
        "--json",
        str(run / "gate.json"),
        "--junit",
        str(run / "gate.xml"),
        "--summary",
        str(run / "gate.md"),
    ],
}


@pytest.fixture(scope="module")
def ready_run(tiny_run, tmp_path_factory):
    """The tiny run with a bench.json and gate outputs, so every command overwrites something."""
    run = tmp_path_factory.mktemp("crash_run") / "run"
    shutil.copytree(tiny_run, run)
    for name in ("bench", "gate"):
        proc = subprocess.run(
            [*_edgeped(), *RUN_COMMANDS[name](run)],
            capture_output=True,
            cwd=run.parent,
            check=False,
        )
        assert proc.returncode in (0, 1, 2) and b"Traceback" not in proc.stderr, proc.stderr
    return run


@pytest.mark.parametrize(
    "point", FEW_POINTS, ids=lambda p: f"{signal.Signals(p.signal).name}-{p.when}"
)
@pytest.mark.parametrize("command", list(RUN_COMMANDS))
def test_interrupted_run_command_keeps_a_consistent_run(command, point, ready_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ready_run, run)
    before = _snapshot(run)
    when = point.when if command != "bench" else "child"  # bench writes once, at the end
    hit = _interrupt(
        RUN_COMMANDS[command](run),
        KillPoint(point.signal, when),
        [run, run / "plots", run / "bench"],
        tmp_path,
    )
    _record(command, hit)
    _check_run(run, point.signal, before)
    if command == "bench" and hit:
        result = run / "bench" / "student_qat_int8.local.json"
        assert sha256_file(result) == before[str(result)]


def test_every_command_was_hit_mid_write():
    """Runs last (file order): a kill point that always came too late would prove nothing."""
    missing = [
        c
        for c in (*("synth", "synth-fleet", "import-crops"), *RUN_COMMANDS)
        if c in HITS and not any(HITS[c])
    ]
    assert not missing, f"never interrupted mid-write: {missing} ({HITS})"


def test_a_group_of_files_changes_together(tmp_path, monkeypatch):
    """A SIGINT during the renames of a model and its card is held until both are in place."""
    import edgeped.fileio as fileio

    a, b = tmp_path / "m.tflite", tmp_path / "m.card.json"
    write_group_atomic({a: b"old model", b: b"old card"})
    real = os.replace

    def replace_then_interrupt(src, dst):
        os.kill(os.getpid(), signal.SIGINT)
        real(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_group_atomic({a: b"new model", b: b"new card"})
    assert (a.read_bytes(), b.read_bytes()) == (b"new model", b"new card")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.card.json", "m.tflite"]
