"""An ECU reachable over SSH: push with far-side sha256 check, run under a remote timeout.

Only the system ``ssh`` binary is used, so ``~/.ssh/config`` aliases, agents and
known_hosts work as they do for the user. Host key checking is never relaxed: an
unknown host key is an error with instructions, not a prompt and not a bypass.
"""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from edgeped.errors import EdgepedError
from edgeped.fileio import atomic_output, sha256_file
from edgeped.targets.base import (
    DEVICE_PACKAGE,
    Progress,
    RunnerJob,
    TargetTimeout,
    check_host_files,
    parse_runner_output,
)

# Seconds the local side waits beyond the remote timeout before giving up on ssh itself.
LOCAL_GRACE_S = 30.0
_REMOTE_NAMES = {
    "runner": "runner.py",
    "agent": "agent.py",
    "crops": "crops.npz",
    "golden": "golden.npz",
    "preprocess": "preprocess.json",
}


# A host, alias or user: no leading "-" (it would be read as an ssh option), no spaces.
_SSH_NAME = re.compile(r"^[A-Za-z0-9_.%:\[\]][A-Za-z0-9_.%:\[\]-]*$")


@dataclass(frozen=True)
class SshTargetConfig:
    """One `[targets.NAME]` table of targets.toml with `kind = "ssh"` (see targets.README.md).

    Either ``ssh_alias`` (a Host in the ssh config) or ``host`` must be given.
    """

    name: str
    python: str
    workdir: str = "/tmp/edgeped"
    ssh_alias: str | None = None
    host: str | None = None
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    ssh_config: str | None = None
    known_hosts_file: str | None = None
    connect_timeout_s: int = 10
    timeout_s: float = 600.0
    emulated: bool = False
    core: str | None = None

    def __post_init__(self) -> None:
        for key in ("ssh_alias", "host", "user"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, str) and _SSH_NAME.match(value)):
                raise ValueError(
                    f"target {self.name!r}: {key} {value!r} is not a host/user name (letters, "
                    "digits and . _ - : % [ ], not starting with -): a leading - would reach "
                    "ssh as an option"
                )
        if bool(self.ssh_alias) == bool(self.host):
            raise ValueError(
                f"target {self.name!r}: set exactly one of ssh_alias or host "
                f"(got ssh_alias={self.ssh_alias!r}, host={self.host!r})"
            )
        if not PurePosixPath(self.python).is_absolute():
            raise ValueError(
                f"target {self.name!r}: python must be an absolute path on the "
                f"board, got {self.python!r}"
            )
        if not PurePosixPath(self.workdir).is_absolute() or self.workdir.rstrip("/") == "":
            raise ValueError(
                f"target {self.name!r}: workdir must be an absolute directory "
                f"other than /, got {self.workdir!r}"
            )
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError(f"target {self.name!r}: port must be 1..65535, got {self.port}")
        if self.connect_timeout_s <= 0 or self.timeout_s <= 0:
            raise ValueError(
                f"target {self.name!r}: connect_timeout_s and timeout_s must be "
                f"> 0, got {self.connect_timeout_s} and {self.timeout_s}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | None = None) -> SshTargetConfig:
        from edgeped.config import from_mapping

        where = where or f"targets.{data.get('name', '?')}"
        return from_mapping(cls, {k: v for k, v in data.items() if k != "kind"}, where=where)

    @property
    def destination(self) -> str:
        if self.ssh_alias:
            return self.ssh_alias
        return f"{self.user}@{self.host}" if self.user else str(self.host)


def classify_ssh_failure(stderr: str, returncode: int, cfg: SshTargetConfig) -> EdgepedError:
    """Turns ssh's stderr into one of the distinct, actionable failures."""
    dest = cfg.destination
    text = stderr.strip()
    last = text.splitlines()[-1] if text else f"exit code {returncode}"
    if "No space left on device" in text:
        return EdgepedError(
            f"the disk of {dest} is full (under {cfg.workdir}); nothing was left half-written",
            f"free space on {dest} or point workdir in targets.toml elsewhere",
        )
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return EdgepedError(
            f"the host key of {dest} has CHANGED since it was last trusted",
            "if the board was re-imaged, remove the old key with "
            "`ssh-keygen -R <host>` and verify the new fingerprint; "
            "otherwise treat this as an attack",
        )
    if "Host key verification failed" in text or re.search(r"No \S+ host key is known", text):
        return EdgepedError(
            f"the host key of {dest} is not known (host key check refused the connection)",
            "verify the board's fingerprint, then add it to known_hosts "
            "(`ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts` or log in once "
            "by hand); host key checking stays on",
        )
    if "Permission denied" in text:
        return EdgepedError(
            f"{dest} refused the key (authentication failed: {last})",
            "install your public key on the board (ssh-copy-id) or set "
            "identity_file in targets.toml to a key it accepts",
        )
    unreachable = (
        "Could not resolve hostname",
        "Connection refused",
        "timed out",
        "No route to host",
        "Network is unreachable",
        "Connection closed",
        "Connection reset",
        "Name or service not known",
    )
    if any(marker in text for marker in unreachable):
        return EdgepedError(
            f"cannot reach {dest}: {last}",
            "check the board is powered and on the network, and the host/port "
            "(or ssh alias) in targets.toml",
        )
    return EdgepedError(
        f"ssh to {dest} failed (exit {returncode}): {last}",
        f"run `{shlex.join(['ssh', '--', dest, 'true'])}` by hand to see the problem",
    )


class SshTarget:
    """A board reached by ssh; files go to ``workdir``, the runner runs under ``python``."""

    kind = "ssh"

    def __init__(self, config: SshTargetConfig) -> None:
        self.config = config
        self.name = config.name
        self.emulated = config.emulated
        self.workdir = config.workdir

    def describe(self) -> dict:
        c = self.config
        return {
            "name": c.name,
            "kind": self.kind,
            "emulated": c.emulated,
            "core": c.core,
            "destination": c.destination,
            "python": c.python,
            "workdir": c.workdir,
        }

    def probe(self, timeout_s: float) -> str:
        proc = self._ssh("true", timeout_s)
        if proc.returncode != 0:
            raise classify_ssh_failure(
                proc.stderr.decode("utf-8", "replace"), proc.returncode, self.config
            )
        return f"{self.config.destination} reachable, host key known"

    def remote_path(self, path: str) -> str:
        if PurePosixPath(path).is_absolute():
            return path
        return f"{self.config.workdir.rstrip('/')}/{path}"

    # -- transport --------------------------------------------------------------------

    def ssh_argv(self, remote_command: str) -> list[str]:
        c = self.config
        argv = [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={c.connect_timeout_s}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
        ]
        if c.ssh_config:
            argv += ["-F", str(Path(c.ssh_config).expanduser())]
        if c.known_hosts_file:
            argv += ["-o", f"UserKnownHostsFile={Path(c.known_hosts_file).expanduser()}"]
        if c.identity_file:
            argv += ["-i", str(Path(c.identity_file).expanduser()), "-o", "IdentitiesOnly=yes"]
        if c.port:
            argv += ["-p", str(c.port)]
        return [*argv, "--", c.destination, remote_command]

    def _ssh(
        self,
        remote_command: str,
        timeout_s: float,
        stdin: bytes = b"",
    ) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                self.ssh_argv(remote_command),
                input=stdin,
                capture_output=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EdgepedError(
                f"{self.config.destination} did not answer within {timeout_s:g} s (remote timeout)",
                "check the board is responsive; raise timeout_s in targets.toml for slow boards",
            ) from exc
        except FileNotFoundError as exc:
            raise EdgepedError(
                "the ssh client is not installed", "apt-get install openssh-client"
            ) from exc

    # -- push ---------------------------------------------------------------------------

    def push(
        self,
        files: dict[str, Path],
        progress: Progress | None = None,
        manifest: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """Copies files into workdir; the far side checks sha256 before renaming into place.

        Files travel as one tar stream into a staging directory inside workdir; only
        after every sha256 matches are they renamed (atomically) to their final names, so a
        failed or interrupted push never leaves a half-written model in place.

        Args:
            files: role -> host path (roles: model, runner, crops, golden, preprocess).
            manifest: remote name -> expected sha256; computed from the files if omitted.

        Returns:
            role -> absolute remote path.

        Raises:
            EdgepedError: transport failure, sha256 mismatch or a full remote disk.
        """
        check_host_files(files, self.name)
        names = {role: self._remote_name(role, path) for role, path in files.items()}
        if manifest is None:
            manifest = {names[role]: sha256_file(path) for role, path in files.items()}
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for role, path in files.items():
                tar.add(str(path), arcname=names[role], recursive=False)
            text = "".join(f"{sha}  {name}\n" for name, sha in manifest.items()).encode()
            info = tarfile.TarInfo(".manifest.sha256")
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
        w = shlex.quote(self.config.workdir)
        moves = " ".join(shlex.quote(n) for n in names.values())
        # Folders the files go into (the on-board package beside the runner), made only
        # once every sha256 matched: a failed push leaves no trace in workdir.
        folders = sorted({str(PurePosixPath(n).parent) for n in names.values() if "/" in n})
        mkdirs = "".join(f'mkdir -p "$W"/{shlex.quote(f)}; ' for f in folders)
        script = (
            f'set -eu; W={w}; mkdir -p "$W"; S="$W/.incoming.$$"; '
            'trap \'rm -rf "$S"\' EXIT INT TERM HUP; mkdir "$S"; '
            'tar -xf - -C "$S"; cd "$S"; '
            "if ! sha256sum -c .manifest.sha256 >/dev/null 2>&1; then "
            "echo 'edgeped-push: sha256 mismatch on the board:' >&2; "
            "sha256sum -c .manifest.sha256 >&2 || true; exit 65; fi; "
            f'{mkdirs}for f in {moves}; do mv -f "$S/$f" "$W/$f"; done'
        )
        if progress:
            size_kb = len(buffer.getvalue()) / 1024
            progress(
                f"pushing {len(files)} files ({size_kb:.0f} KiB) to "
                f"{self.config.destination}:{self.config.workdir}"
            )
        proc = self._ssh(script, self.config.connect_timeout_s + 120, buffer.getvalue())
        stderr = proc.stderr.decode(errors="replace")
        if proc.returncode == 65 and "edgeped-push: sha256 mismatch" in stderr:
            raise EdgepedError(
                f"sha256 mismatch after pushing to {self.config.destination}; "
                f"nothing was renamed into place:\n{stderr.strip()}",
                "retry the push; if it repeats, check the board's storage",
            )
        if proc.returncode != 0:
            raise classify_ssh_failure(stderr, proc.returncode, self.config)
        return {role: self.remote_path(name) for role, name in names.items()}

    def pull(self, remote: str, dest: Path) -> Path:
        """Streams a board file to ``dest`` (written beside, renamed into place).

        Raises:
            EdgepedError: the file is not on the board, or ssh failed.
        """
        path = self.remote_path(remote)
        q = shlex.quote(path)
        proc = self._ssh(
            f"test -f {q} || exit 66; exec cat -- {q}", self.config.connect_timeout_s + 300
        )
        if proc.returncode == 66:
            raise EdgepedError(
                f"{path} not found on {self.name} ({self.config.destination})",
                "check the path the board reported; nothing was copied",
            )
        if proc.returncode != 0:
            raise classify_ssh_failure(
                proc.stderr.decode(errors="replace"), proc.returncode, self.config
            )
        with atomic_output(dest) as handle:
            handle.write(proc.stdout)
        return Path(dest)

    @staticmethod
    def _remote_name(role: str, path: Path) -> str:
        if role == "model" or path.suffix == ".tflite":
            # Content-addressed: a new model never overwrites the bytes of another in place.
            return f"model-{sha256_file(path)[:16]}.tflite"
        if role.startswith(f"{DEVICE_PACKAGE}/"):
            return role  # a module of the on-board package, at its place beside the runner
        return _REMOTE_NAMES.get(role, f"{role}{path.suffix}")

    # -- run ----------------------------------------------------------------------------

    def exec_script(
        self, argv: list[str], timeout_s: float, stdin: bytes = b"", prefix: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess:
        """Runs a pushed device script (``python argv...``) in workdir under a remote timeout.

        Raises:
            EdgepedError: ssh itself failed (unreachable, refused key, unknown host key).
        """
        command = (
            f"mkdir -p {shlex.quote(self.config.workdir)} && "
            f"cd {shlex.quote(self.config.workdir)} && exec timeout -k 5 "
            f"{int(max(timeout_s, 1))} "
            + " ".join(shlex.quote(a) for a in [*prefix, self.config.python, *argv])
        )
        proc = self._ssh(command, timeout_s + LOCAL_GRACE_S, stdin)
        if proc.returncode == 255:
            raise classify_ssh_failure(
                proc.stderr.decode(errors="replace"), proc.returncode, self.config
            )
        return proc

    def exec(
        self,
        argv: list[str],
        timeout_s: float,
        stdin: bytes = b"",
        env: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> subprocess.CompletedProcess:
        """Runs ``python argv...`` in workdir under a remote timeout; ``env`` goes with it.

        Exit codes 124 and 137 are the remote ``timeout``'s: they raise TargetTimeout.
        """
        prefix = ("env", *(f"{k}={v}" for k, v in env.items())) if env else ()
        proc = self.exec_script(argv, timeout_s, stdin, prefix)
        if proc.returncode in (124, 137):
            raise TargetTimeout(
                f"the command on {self.config.destination} did not finish within "
                f"{timeout_s:g} s and was stopped on the board",
                "raise the timeout, or look at what the command waits for",
            )
        return proc

    def run(self, job: RunnerJob, progress: Progress | None = None) -> dict:
        if job.count_instructions:
            raise EdgepedError(
                "instruction counts need the local emulated board",
                "use --target arm64-emu for instructions per invoke",
            )
        remote = self.push(job.staged(), progress)
        timeout_s = min(job.timeout_s, self.config.timeout_s)
        if progress:
            progress(f"running the benchmark on {self.config.destination}")
        proc = self.exec_script(job.runner_argv(remote), timeout_s)
        stdout = proc.stdout.decode(errors="replace")
        stderr = proc.stderr.decode(errors="replace")
        if proc.returncode in (124, 137) and "{" not in stdout:
            raise EdgepedError(
                f"the runner on {self.config.destination} hit the remote timeout "
                f"of {int(timeout_s)} s and was stopped on the board",
                "raise timeout_s in targets.toml, or lower --runs/--min-seconds",
            )
        if proc.returncode in (126, 127) and "{" not in stdout:
            raise EdgepedError(
                f"the runtime is missing on {self.config.destination}: cannot run "
                f"{self.config.python} ({stderr.strip().splitlines()[-1:]})",
                "install Python 3.9+ with numpy and ai-edge-litert on the board "
                "and set python in targets.toml to its absolute path",
            )
        result = parse_runner_output(stdout, stderr, proc.returncode, self.config.destination)
        result["emulated"] = self.config.emulated or result.get("emulated", False)
        return result
