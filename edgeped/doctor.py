"""`edgeped doctor`: checks the environment a user needs and says how to fix what is missing.

Each check is a small function registered under a name; it returns one or more
`Finding`s (ok / warn / fail / skip, with a detail and a fix). `run_checks` runs them
in order and never raises for a broken environment: a failure is a finding.

- python: 3.11 or newer.
- keras: Keras 2 through tf-keras (tfmot rejects Keras 3 objects), TensorFlow and tfmot.
- litert: the ai-edge-litert version (2.3 or newer is the tested one).
- xnnpack: the default delegate takes a tiny float model's ops on this host.
- emulated board: qemu-aarch64, the board ($EDGEPED_ARM64_EMU), its instruction-counting
  plugin, and LiteRT importable by the emulated Python.
- targets: every `[targets.NAME]` of targets.toml: SSH boards reachable with their host
  key known (checking stays on), the remote Python present with numpy and a LiteRT
  runtime; emulated entries need the board above.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from edgeped.errors import EdgepedError, ExitCode

TESTED_LITERT = (2, 3)


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but not as tested or documented
    FAIL = "fail"  # a command will not work until it is fixed
    SKIP = "skip"  # nothing to check here (e.g. no targets.toml)


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return {**asdict(self), "level": self.level.value}


@dataclass(frozen=True)
class DoctorOptions:
    """What to check: targets file, board dir, and how long a remote probe may take."""

    targets_file: str | None = None
    board_dir: str | None = None
    timeout_s: float = 60.0
    emulated_probe: bool = True  # run the emulated Python once (about 10-30 s)

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")


@dataclass(frozen=True)
class DoctorReport:
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not any(f.level is Level.FAIL for f in self.findings)

    def counts(self) -> dict[str, int]:
        out = {level.value: 0 for level in Level}
        for f in self.findings:
            out[f.level.value] += 1
        return out

    def to_dict(self) -> dict:
        from edgeped.provenance import stamp

        return {
            **stamp("edgeped.doctor"),
            "ok": self.ok,
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
        }


Check = Callable[[DoctorOptions], list[Finding]]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        if name in CHECKS:
            raise ValueError(f"doctor check {name!r} is already registered")
        CHECKS[name] = fn
        return fn

    return register


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


@check("python")
def _python(_: DoctorOptions) -> list[Finding]:
    v = sys.version_info
    text = f"Python {v.major}.{v.minor}.{v.micro} ({sys.executable})"
    if (v.major, v.minor) < (3, 11):
        return [Finding("python", Level.FAIL, text, "use Python 3.11 or newer")]
    return [Finding("python", Level.OK, text)]


@check("keras")
def _keras(_: DoctorOptions) -> list[Finding]:
    fix = "pip install 'tf-keras~=2.21' 'tensorflow~=2.21' 'tensorflow-model-optimization~=0.8'"
    missing = [
        p for p in ("tensorflow", "tf-keras", "tensorflow-model-optimization") if not _version(p)
    ]
    if missing:
        return [Finding("keras", Level.FAIL, f"not installed: {', '.join(missing)}", fix)]
    try:
        from edgeped._keras import keras, tf, tfmot

        mot = tfmot()
    except Exception as exc:  # noqa: BLE001 - any import failure is the finding
        return [Finding("keras", Level.FAIL, f"importing TensorFlow/tf-keras failed: {exc}", fix)]
    version = getattr(keras, "__version__", "?")
    if not str(version).startswith("2."):
        return [
            Finding(
                "keras",
                Level.FAIL,
                f"tf_keras reports Keras {version}, not Keras 2 (tfmot needs Keras 2)",
                fix,
            )
        ]
    model = keras.Sequential([keras.layers.Input((2,)), keras.layers.Dense(1)])
    if not isinstance(model, keras.Model) or type(model).__module__.startswith("keras."):
        return [
            Finding(
                "keras",
                Level.FAIL,
                f"models are built by {type(model).__module__} (Keras 3), not tf_keras",
                "set TF_USE_LEGACY_KERAS=1 before TensorFlow loads (edgeped._keras does)",
            )
        ]
    return [
        Finding(
            "keras",
            Level.OK,
            f"Keras {version} via tf-keras; TensorFlow {tf.__version__}; "
            f"tfmot {getattr(mot, '__version__', _version('tensorflow-model-optimization'))}",
        )
    ]


@check("litert")
def _litert(_: DoctorOptions) -> list[Finding]:
    version = _version("ai-edge-litert")
    fix = "pip install 'ai-edge-litert>=2.3'"
    if version is None:
        return [Finding("litert", Level.FAIL, "ai-edge-litert is not installed", fix)]
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return [
            Finding("litert", Level.FAIL, f"ai-edge-litert {version} does not import: {exc}", fix)
        ]
    if _version_tuple(version) < TESTED_LITERT:
        return [
            Finding(
                "litert",
                Level.WARN,
                f"ai-edge-litert {version}; the tested version is "
                f"{'.'.join(map(str, TESTED_LITERT))} or newer",
                fix,
            )
        ]
    return [Finding("litert", Level.OK, f"ai-edge-litert {version}")]


def tiny_float_tflite() -> bytes:
    """A two-layer float model as .tflite bytes (for the XNNPACK probe)."""
    from edgeped._keras import keras, tf

    model = keras.Sequential(
        [
            keras.layers.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


@check("xnnpack")
def _xnnpack(_: DoctorOptions) -> list[Finding]:
    try:
        from edgeped.convert.inspect import load_interpreter
        from edgeped.gate.delegation import split_ops

        interpreter = load_interpreter(tiny_float_tflite(), delegates=True)
        split = split_ops(interpreter._get_ops_details())  # noqa: SLF001
    except Exception as exc:  # noqa: BLE001
        return [
            Finding(
                "xnnpack",
                Level.FAIL,
                f"could not apply the default delegate: {exc}",
                "check the keras and litert findings first",
            )
        ]
    if split.delegated_ops == 0:
        return [
            Finding(
                "xnnpack",
                Level.FAIL,
                f"XNNPACK took none of the probe model's {split.total_ops} ops",
                "reinstall ai-edge-litert (a build without XNNPACK runs every op on slow kernels)",
            )
        ]
    return [
        Finding(
            "xnnpack",
            Level.OK,
            f"XNNPACK delegate applied on the host ({split.delegated_ops}/{split.total_ops} "
            "ops of a probe model)",
        )
    ]


def _board_dir(options: DoctorOptions) -> Path:
    from edgeped.targets.emulated import default_board_dir

    return Path(options.board_dir) if options.board_dir else default_board_dir()


@check("emulated board")
def _emulated(options: DoctorOptions) -> list[Finding]:
    board = _board_dir(options)
    setup = "bash tools/setup_arm64_emu.sh " + str(board)
    out = []
    qemu = shutil.which("qemu-aarch64")
    if qemu is None:
        return [
            Finding(
                "emulated board",
                Level.FAIL,
                "qemu-aarch64 not found",
                "apt-get install --no-install-recommends qemu-user (not qemu-user-static: "
                "it cannot load plugins)",
            )
        ]
    if not (board / "READY").is_file():
        return [
            Finding(
                "emulated board",
                Level.FAIL,
                f"no finished board in {board} (READY missing)",
                f"{setup} (or set EDGEPED_ARM64_EMU to a built board)",
            )
        ]
    out.append(Finding("emulated board", Level.OK, f"board {board} with {qemu}"))
    plugin = board / "plugin" / "libinsncount.so"
    if plugin.is_file():
        out.append(Finding("emulated board: plugin", Level.OK, f"instruction counter {plugin}"))
    else:
        out.append(
            Finding(
                "emulated board: plugin",
                Level.FAIL,
                f"{plugin} missing: instruction-count budgets cannot be measured",
                setup,
            )
        )
    if options.emulated_probe:
        python = board / "bin" / "python-aarch64"
        probe = "import numpy, ai_edge_litert, importlib.metadata as m; print(m.version('ai-edge-litert'))"
        try:
            proc = subprocess.run(
                [str(python), "-c", probe],
                capture_output=True,
                text=True,
                timeout=options.timeout_s,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "EDGEPED_EMU_CORE": "cortex-a76"},
                check=False,
            )
            ok, text = proc.returncode == 0, (proc.stdout.strip() or proc.stderr.strip()[-300:])
        except (OSError, subprocess.TimeoutExpired) as exc:
            ok, text = False, str(exc)
        out.append(
            Finding(
                "emulated board: runtime",
                Level.OK if ok else Level.FAIL,
                f"emulated Python imports ai-edge-litert {text}"
                if ok
                else f"emulated Python: {text}",
                "" if ok else setup,
            )
        )
    return out


_RUNTIME_PROBE = (
    "import sys, numpy, importlib.metadata as m\n"
    "try:\n"
    "    import ai_edge_litert\n"
    "    r = 'ai-edge-litert ' + m.version('ai-edge-litert')\n"
    "except ImportError:\n"
    "    import tflite_runtime\n"
    "    r = 'tflite-runtime ' + m.version('tflite-runtime')\n"
    "print(sys.version.split()[0], r)\n"
)


def _target_findings(name: str, target, timeout_s: float) -> list[Finding]:
    """Whether the target answers (its own probe) and whether its Python can run the runner."""
    label = f"target {name}"
    try:
        found = target.probe(timeout_s)
    except EdgepedError as exc:
        return [Finding(label, Level.FAIL, exc.problem, exc.fix or "")]
    out = [Finding(label, Level.OK, found)]
    try:
        proc = target.exec(["-c", _RUNTIME_PROBE], timeout_s)
    except EdgepedError as exc:
        return [*out, Finding(f"{label}: runtime", Level.FAIL, exc.problem, exc.fix or "")]
    python = target.describe().get("python", "python")
    text = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode == 0 and text:
        out.append(Finding(f"{label}: runtime", Level.OK, f"{python}: Python {text}"))
    else:
        last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
        out.append(
            Finding(
                f"{label}: runtime",
                Level.FAIL,
                f"{python} on {name} lacks Python, numpy or a LiteRT runtime: {last}",
                f"install python3 with numpy and ai-edge-litert on the board, or fix `python` "
                f"in [targets.{name}]",
            )
        )
    return out


@check("targets")
def _targets(options: DoctorOptions) -> list[Finding]:
    from edgeped.targets.registry import find_targets_file, load_targets_file, resolve_target

    path = find_targets_file(options.targets_file)
    if path is None or not Path(path).is_file():
        return [
            Finding(
                "targets",
                Level.SKIP if options.targets_file is None else Level.FAIL,
                "no targets.toml (only the built-in local and arm64-emu targets)"
                if path is None
                else f"{path} does not exist",
                "copy targets.example.toml to targets.toml to add a board",
            )
        ]
    try:
        table = load_targets_file(path)
    except EdgepedError as exc:
        return [Finding("targets", Level.FAIL, exc.problem, exc.fix or "")]
    out = [Finding("targets", Level.OK, f"{path}: {len(table)} target(s)")]
    for name in table:
        try:
            target = resolve_target(name, path)
        except EdgepedError as exc:
            out.append(Finding(f"target {name}", Level.FAIL, exc.problem, exc.fix or ""))
            continue
        out += _target_findings(name, target, options.timeout_s)
    return out


def run_checks(
    options: DoctorOptions = DoctorOptions(), only: tuple[str, ...] = ()
) -> DoctorReport:
    """Runs every registered check (or ``only`` these) and collects the findings.

    Raises:
        EdgepedError: ``only`` names a check that does not exist.
    """
    unknown = sorted(set(only) - set(CHECKS))
    if unknown:
        raise EdgepedError(
            f"unknown doctor check(s) {unknown}",
            f"use some of: {', '.join(CHECKS)}",
            exit_code=ExitCode.USAGE,
        )
    findings: list[Finding] = []
    for name, fn in CHECKS.items():
        if only and name not in only:
            continue
        findings += fn(options)
    return DoctorReport(tuple(findings))
