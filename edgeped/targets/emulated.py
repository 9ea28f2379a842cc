"""The emulated arm64 board: qemu-user on an aarch64 Python built by tools/setup_arm64_emu.sh.

Emulated time is 50-120x real time and RSS includes the emulator, so results are
labelled ``emulated``; the trustworthy cost figure here is instructions per invoke,
counted exactly by a QEMU plugin.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgeped.errors import EdgepedError
from edgeped.targets.base import REPO_ROOT, Progress, RunnerJob
from edgeped.targets.local import HostProcessTarget, run_process

CORES = {"a53": "cortex-a53", "a72": "cortex-a72", "a76": "cortex-a76"}
SETUP_SCRIPT = REPO_ROOT / "tools" / "setup_arm64_emu.sh"


def default_board_dir() -> Path:
    """Where the board lives: $EDGEPED_ARM64_EMU, else <repo>/.cache/arm64-emu."""
    return Path(os.environ.get("EDGEPED_ARM64_EMU", REPO_ROOT / ".cache" / "arm64-emu"))


def core_name(core: str) -> str:
    """Accepts a53/a72/a76 or the full cortex-aNN name.

    Raises:
        ValueError: not one of the supported core models.
    """
    short = core.lower().removeprefix("cortex-")
    if short not in CORES:
        raise ValueError(f"core {core!r} is not supported; choose one of {sorted(CORES)}")
    return CORES[short]


def ensure_board(board_dir: Path, progress: Progress | None = None) -> Path:
    """Builds the emulated board with the setup script unless it is already complete.

    Raises:
        EdgepedError: qemu-user is missing or the setup script failed.
    """
    if (board_dir / "READY").is_file():
        return board_dir
    if shutil.which("qemu-aarch64") is None:
        raise EdgepedError(
            "qemu-aarch64 not found: the emulated arm64 board needs qemu-user",
            "apt-get install --no-install-recommends qemu-user",
        )
    if progress:
        progress(f"building the emulated arm64 board in {board_dir} (once, ~1 min)")
    proc = subprocess.run(
        ["bash", str(SETUP_SCRIPT), str(board_dir)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-10:])
        raise EdgepedError(
            f"building the emulated arm64 board failed:\n{tail}",
            f"run bash {SETUP_SCRIPT} {board_dir} by hand and fix what it reports",
        )
    return board_dir


@dataclass
class EmulatedArm64Target(HostProcessTarget):
    """An arm64 board emulated by qemu-user with a selectable core model."""

    name: str = "arm64-emu"
    core: str = "a76"
    board_dir: Path = field(default_factory=default_board_dir)
    count_instructions: bool = True
    kind: str = "arm64-emu"
    emulated: bool = True
    workdir: str | None = None  # qemu-user opens host paths: files are used in place

    def __post_init__(self) -> None:
        self.core = core_name(self.core)

    @property
    def python(self) -> Path:
        return self.board_dir / "bin" / "python-aarch64"

    def describe(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "emulated": True,
            "core": self.core,
            "python": str(self.python),
            "board_dir": str(self.board_dir),
        }

    def probe(self, timeout_s: float) -> str:
        if not (self.board_dir / "READY").is_file():
            raise EdgepedError(
                f"emulated {self.core}: the board is not built in {self.board_dir}",
                "see the emulated board finding",
            )
        return f"emulated {self.core}"

    def _label(self) -> str:
        return f"{self.name} ({self.core})"

    def _python(self) -> str:
        return str(self.python)

    def _env(self, progress: Progress | None) -> dict[str, str]:
        ensure_board(self.board_dir, progress)
        env = {**super()._env(progress), "EDGEPED_EMU_CORE": self.core}
        env.pop("EDGEPED_INSN_OUT", None)
        return env

    def run(self, job: RunnerJob, progress: Progress | None = None) -> dict:
        ensure_board(self.board_dir, progress)
        paths = {role: str(path.resolve()) for role, path in job.staged().items()}
        with tempfile.TemporaryDirectory(prefix="edgeped-insn-") as tmp:
            env = dict(os.environ, EDGEPED_EMU_CORE=self.core)
            env.pop("EDGEPED_INSN_OUT", None)
            if job.count_instructions or self.count_instructions:
                env["EDGEPED_INSN_OUT"] = str(Path(tmp) / "insn.txt")
                job = replace(job, count_instructions=True)
            if progress:
                progress(f"running the benchmark on emulated {self.core} (slow: emulated time)")
            result = run_process(
                [str(self.python), *job.runner_argv(paths)],
                f"{self.name} ({self.core})",
                job.timeout_s,
                env,
            )
        result["emulated"] = True
        return result
