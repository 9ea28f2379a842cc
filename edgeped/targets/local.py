"""The host itself as a target: the runner under this Python, files used in place."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field

from edgeped.errors import EdgepedError
from edgeped.targets.base import Progress, RunnerJob, parse_runner_output


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


@dataclass
class LocalTarget:
    """Runs the device runner on the host with the given Python (default: this one)."""

    name: str = "local"
    python: str = field(default_factory=lambda: sys.executable)
    kind: str = "local"
    emulated: bool = False

    def describe(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "emulated": self.emulated,
            "core": None,
            "python": self.python,
        }

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
