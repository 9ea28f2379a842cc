"""The Target interface and what every target shares: the runner, its job and its answer."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from edgeped.errors import EdgepedError
from edgeped.fileio import sha256_file

Progress = Callable[[str], None]

DEVICE_DIR = Path(__file__).resolve().parents[2] / "device"
RUNNER_PATH = DEVICE_DIR / "runner.py"
REPO_ROOT = DEVICE_DIR.parent
# The package runner.py and agent.py import: it travels with them, as a folder beside them.
DEVICE_PACKAGE = "edgeped_device"


def runner_path() -> Path:
    """The device runner shipped with this checkout.

    Raises:
        EdgepedError: the package is installed without its source tree.
    """
    if not RUNNER_PATH.is_file():
        raise EdgepedError(
            f"device runner not found at {RUNNER_PATH}",
            "install edgeped from a source checkout (pip install -e .)",
        )
    return RUNNER_PATH


def device_package_files() -> dict[str, Path]:
    """The modules of the on-board package, keyed by their path beside the runner.

    Every push of runner.py or agent.py carries these with it: the keys are both the
    staging roles and the names the files get in the target's work directory.

    Raises:
        EdgepedError: the package is installed without its source tree.
    """
    device = runner_path().parent
    modules = sorted((device / DEVICE_PACKAGE).rglob("*.py"))
    return {p.relative_to(device).as_posix(): p for p in modules}


def runner_code_sha256() -> str:
    """One sha256 for the runner as a job stages it: runner.py and the package beside it.

    The digest of ``sha256sum``-style lines (``<sha256>  <name>``, sorted by name), so a
    change to any module changes it.
    """
    files = {"runner.py": runner_path(), **device_package_files()}
    lines = "".join(f"{sha256_file(files[name])}  {name}\n" for name in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


@dataclass(frozen=True)
class RunnerJob:
    """One runner invocation: the files it needs (host paths) and its options.

    Targets turn host paths into paths the runner can open (pushing them if needed) and
    append them to ``args``.
    """

    model: Path
    args: tuple[str, ...] = ()
    crops: Path | None = None
    golden: Path | None = None
    preprocess: Path | None = None
    timeout_s: float = 600.0
    count_instructions: bool = False

    def staged(self) -> dict[str, Path]:
        """The files to place next to each other on the target, keyed by their role."""
        out = {"model": self.model, "runner": runner_path(), **device_package_files()}
        for role in ("crops", "golden", "preprocess"):
            path = getattr(self, role)
            if path is not None:
                out[role] = path
        return out

    def runner_argv(self, paths: dict[str, str]) -> list[str]:
        """Runner arguments given where each staged file is, as the target sees it."""
        argv = [paths["runner"], paths["model"], *self.args]
        for role in ("crops", "golden", "preprocess"):
            if role in paths:
                argv += [f"--{role}", paths[role]]
        if self.count_instructions:
            argv.append("--insn-count")
        return argv


class TargetTimeout(EdgepedError):
    """A command on a target outlived its timeout and was stopped there."""


@runtime_checkable
class Target(Protocol):
    """Somewhere a model runs: the host, the emulated arm64 board, an SSH-reachable ECU.

    Every caller goes through these methods; nothing outside ``edgeped/targets/`` asks a
    target for its kind to decide how to move files or start a process.
    """

    name: str
    kind: str
    emulated: bool
    # Where pushed files and logs live on the target, or None where files are used in place.
    workdir: str | None

    def describe(self) -> dict:
        """Name, kind, emulated flag, core model and connection facts for bench.json."""
        ...

    def probe(self, timeout_s: float) -> str:
        """Checks, changing nothing, that the target can be used; says what was found.

        Raises:
            EdgepedError: the target is unreachable or not set up, with the fix.
        """
        ...

    def remote_path(self, path: str) -> str:
        """``path`` as the target's filesystem spells it: absolute paths stay as they are,
        relative ones are taken under ``workdir`` (or the host's working directory)."""
        ...

    def push(self, files: dict[str, Path], progress: Progress | None = None) -> dict[str, str]:
        """Makes host files available on the target.

        Args:
            files: role -> host path.

        Returns:
            role -> absolute path as the target sees it.

        Raises:
            EdgepedError: a host file is missing, or the transfer failed (nothing is left
                half-written in place).
        """
        ...

    def pull(self, remote: str, dest: Path) -> Path:
        """Copies a file from the target to ``dest`` on the host (written beside, renamed).

        Raises:
            EdgepedError: the file does not exist on the target, or the transfer failed.
        """
        ...

    def exec(
        self,
        argv: list[str],
        timeout_s: float,
        stdin: bytes = b"",
        env: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> subprocess.CompletedProcess:
        """Runs the target's Python with ``argv`` (the device code is Python on every target).

        Returns:
            The finished process: its exit code, stdout and stderr as bytes.

        Raises:
            TargetTimeout: it did not finish within ``timeout_s`` (it is stopped).
            EdgepedError: the target cannot be reached or its Python cannot start.
        """
        ...

    def run(self, job: RunnerJob, progress: Progress | None = None) -> dict:
        """Stages the job's files, runs the device runner (bench, parity, shadow) and
        returns its JSON result.

        Raises:
            EdgepedError: the target cannot be reached or the runner reported a problem.
        """
        ...


def check_host_files(files: dict[str, Path], target: str) -> None:
    """Refuses a push before anything travels when a host file is missing.

    Raises:
        EdgepedError: the first missing file, by role.
    """
    for role, path in files.items():
        if not Path(path).is_file():
            raise EdgepedError(
                f"cannot push the {role} to {target}: {path} not found on the host",
                "check the path; nothing was copied",
            )


_RUNNER_CODES = {
    "runtime_missing": "the LiteRT runtime is missing on {target}",
    "model_missing": "the model is missing on {target}",
    "model_corrupt": "the model is corrupt on {target}",
}


def parse_runner_output(stdout: str, stderr: str, returncode: int, target: str) -> dict:
    """Parses the runner's one JSON line; turns a reported problem into an EdgepedError.

    Raises:
        EdgepedError: no JSON came back, or the runner reported ``ok: false``.
    """
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith("{")), None)
    if line is None:
        tail = "\n".join(stderr.strip().splitlines()[-8:])
        raise EdgepedError(
            f"the runner on {target} exited with code {returncode} and no result"
            + (f":\n{tail}" if tail else ""),
            "run the same command by hand on the target to see the failure",
        )
    try:
        result = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EdgepedError(
            f"the runner on {target} printed malformed JSON ({exc})",
            "check that device/runner.py on the target is the current one",
        ) from exc
    if not result.get("ok", False):
        err = result.get("error", {})
        headline = _RUNNER_CODES.get(err.get("code", ""), "the runner failed on {target}")
        raise EdgepedError(
            f"{headline.format(target=target)}: {err.get('problem', '?')}", err.get("fix")
        )
    return result
