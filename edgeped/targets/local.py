"""The host itself as a target: the runner under this Python, files used in place."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from edgeped.errors import EdgepedError
from edgeped.fileio import atomic_output
from edgeped.targets.base import (
    Progress,
    RunnerJob,
    TargetTimeout,
    check_host_files,
    parse_runner_output,
)


def run_process(
    argv: list[str], target: str, timeout_s: float, env: dict[str, str] | None = None
) -> dict:
    """Runs the runner as a local process and parses its result.

    Raises:
        EdgepedError: the process timed out, could not start or reported a problem.
    """
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise EdgepedError(
            f"the runner on {target} did not finish within {timeout_s:g} s",
            "raise the timeout, or lower --runs / --min-seconds",
        ) from exc
    except FileNotFoundError as exc:
        raise EdgepedError(
            f"cannot start the runner on {target}: {exc.filename} not found",
            "check the python path of the target",
        ) from exc
    return parse_runner_output(proc.stdout, proc.stderr, proc.returncode, target)


def exec_process(
    argv: list[str], target: str, timeout_s: float, env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess:
    """Runs a host process (the host's or the emulated board's Python) for a target's exec.

    Raises:
        TargetTimeout: it did not finish within ``timeout_s`` (it is killed).
        EdgepedError: the program does not exist.
    """
    try:
        return subprocess.run(
            argv, input=stdin, capture_output=True, timeout=timeout_s, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        script = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else "python"
        raise TargetTimeout(
            f"{Path(script).name} on {target} did not finish within {timeout_s:g} s "
            "and was stopped",
            "raise the timeout, or look at what the command waits for",
        ) from exc
    except FileNotFoundError as exc:
        raise EdgepedError(
            f"cannot start {exc.filename} on {target}: not found",
            "check the python path of the target",
        ) from exc


class HostProcessTarget:
    """What the host and the emulated board share: host paths are opened in place (nothing
    is copied), and the target's Python is a host process (qemu-user for the board)."""

    name: str
    workdir: str | None

    def _label(self) -> str:
        return self.name

    def _python(self) -> str:
        raise NotImplementedError

    def _env(self, progress: Progress | None) -> dict[str, str]:
        """The environment of the target's Python; may first make the target ready."""
        return {**os.environ, "OPENBLAS_NUM_THREADS": "1"}

    def remote_path(self, path: str) -> str:
        return str(Path(path).resolve())

    def push(self, files: dict[str, Path], progress: Progress | None = None) -> dict[str, str]:
        check_host_files(files, self.name)
        return {role: str(Path(path).resolve()) for role, path in files.items()}

    def pull(self, remote: str, dest: Path) -> Path:
        if not Path(remote).is_file():
            raise EdgepedError(
                f"{remote} not found on {self.name}", "check the path the target reported"
            )
        with atomic_output(dest) as handle, open(remote, "rb") as src:
            shutil.copyfileobj(src, handle)
        return Path(dest)

    def exec(
        self,
        argv: list[str],
        timeout_s: float,
        stdin: bytes = b"",
        env: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> subprocess.CompletedProcess:
        full_env = {**self._env(progress), **(env or {})}
        return exec_process([self._python(), *argv], self._label(), timeout_s, full_env, stdin)


@dataclass
class LocalTarget(HostProcessTarget):
    """Runs the device runner on the host with the given Python (default: this one)."""

    name: str = "local"
    python: str = field(default_factory=lambda: sys.executable)
    kind: str = "local"
    emulated: bool = False
    workdir: str | None = None  # files are used in place

    def describe(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "emulated": self.emulated,
            "core": None,
            "python": self.python,
        }

    def probe(self, timeout_s: float) -> str:
        if shutil.which(self.python) is None:
            raise EdgepedError(
                f"the Python of target {self.name!r} is not there: {self.python}",
                f"set python in [targets.{self.name}] to an existing interpreter",
            )
        return f"local target ({self.python})"

    def _python(self) -> str:
        return self.python

    def run(self, job: RunnerJob, progress: Progress | None = None) -> dict:
        if job.count_instructions:
            raise EdgepedError(
                "instruction counts need the emulated board",
                "use --target arm64-emu for instructions per invoke",
            )
        paths = {role: str(path) for role, path in job.staged().items()}
        if progress:
            progress(f"running the benchmark on {self.name}")
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        return run_process([self.python, *job.runner_argv(paths)], self.name, job.timeout_s, env)
