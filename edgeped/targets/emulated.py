"""The emulated arm64 board: qemu-user on an aarch64 Python built by tools/setup_arm64_emu.sh.

Emulated time is 50-120x real time and RSS includes the emulator, so results are
labelled ``emulated``; the trustworthy cost figure here is instructions per invoke,
counted exactly by a QEMU plugin.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgeped.errors import EdgepedError
from edgeped.targets.base import REPO_ROOT, Progress, RunnerJob, TargetTimeout
from edgeped.targets.local import HostProcessTarget, exec_process, run_process

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


def fixed_layout_prefix() -> list[str]:
    """`setarch <arch> -R` where the host can turn address-space randomisation off for one
    process (Linux on x86_64 or aarch64), else nothing."""
    machine = platform.machine()
    if sys.platform.startswith("linux") and machine in ("x86_64", "aarch64"):
        return ["setarch", machine, "-R"]
    return []


@dataclass
class EmulatedArm64Target(HostProcessTarget):
    """An arm64 board emulated by qemu-user with a selectable core model.

    With ``fixed_layout`` the board's Python starts under ``setarch <arch> -R`` (Linux
    x86_64/aarch64 hosts; elsewhere it is ignored): address-space randomisation off, so
    counts that depend on where memory lands repeat between processes (ONNX Runtime's
    move by up to 0.2% otherwise; LiteRT's do not move). It applies to ``exec`` and ``run``.
    """

    name: str = "arm64-emu"
    core: str = "a76"
    board_dir: Path = field(default_factory=default_board_dir)
    count_instructions: bool = True
    fixed_layout: bool = False
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

    def _launch(self) -> list[str]:
        """The board's Python, under `setarch -R` when ``fixed_layout`` is set."""
        return [*(fixed_layout_prefix() if self.fixed_layout else []), self._python()]

    def _env(self, progress: Progress | None) -> dict[str, str]:
        ensure_board(self.board_dir, progress)
        env = {**super()._env(progress), "EDGEPED_EMU_CORE": self.core}
        env.pop("EDGEPED_INSN_OUT", None)
        return env

    def _guest_env(self, env: dict[str, str] | None) -> dict[str, str]:
        """``env`` as the guest must see it.

        python-aarch64 sets PYTHONPATH to the board's site-packages, so a PYTHONPATH given
        here reaches the guest through qemu-user's QEMU_SET_ENV, ahead of that site.

        Raises:
            EdgepedError: a PYTHONPATH entry holds a comma (QEMU_SET_ENV's separator).
        """
        out = dict(env or {})
        path = out.pop("PYTHONPATH", None)
        if path:
            value = os.pathsep.join([path, str(self.board_dir / "site")])
            if "," in value:
                raise EdgepedError(
                    f"PYTHONPATH {value!r} for emulated {self.core} holds a comma",
                    "move the folders to paths without commas",
                )
            out["QEMU_SET_ENV"] = f"PYTHONPATH={value}"
        return out

    def exec(
        self,
        argv: list[str],
        timeout_s: float,
        stdin: bytes = b"",
        env: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> subprocess.CompletedProcess:
        full_env = {**self._env(progress), **self._guest_env(env)}
        try:
            return exec_process([*self._launch(), *argv], self._label(), timeout_s, full_env, stdin)
        except TargetTimeout as exc:  # named after the script, not the setarch prefix
            script = argv[0] if argv and not argv[0].startswith("-") else "python"
            raise TargetTimeout(
                f"{Path(script).name} on {self._label()} did not finish within "
                f"{timeout_s:g} s and was stopped",
                exc.fix,
            ) from exc

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
                [*self._launch(), *job.runner_argv(paths)],
                f"{self.name} ({self.core})",
                job.timeout_s,
                env,
            )
        result["emulated"] = True
        return result
