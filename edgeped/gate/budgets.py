"""Budgets a release must meet, read from budgets.toml (every key is explained in docs/budgets.md)."""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeped.config import ConfigError
from edgeped.errors import EdgepedError


def _check_fraction(owner: str, name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner}.{name} must be a number in [0, 1], got {value!r}")


def _check_positive(owner: str, name: str, value: float) -> None:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{owner}.{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class QualityBudgets:
    """Quality on the test split at the threshold chosen on val (from metrics.json)."""

    min_recall: float = 0.92
    max_fpr: float = 0.01
    min_auc_pr: float = 0.70
    min_slice_recall: float = 0.85
    min_slice_positives: int = 30
    # From robustness.json (`edgeped eval --corruptions all`): recall under corruption,
    # averaged over the 5 severities per corruption, and over every corruption. Unset
    # (empty, 0.0: the defaults) = not gated; once set, a missing or partial suite fails closed.
    min_corrupted_recall: dict[str, float] = field(default_factory=dict)
    min_mean_corrupted_recall: float = 0.0

    def __post_init__(self) -> None:
        for name in ("min_recall", "max_fpr", "min_auc_pr", "min_slice_recall"):
            _check_fraction("quality", name, getattr(self, name))
        _check_fraction("quality", "min_mean_corrupted_recall", self.min_mean_corrupted_recall)
        if not isinstance(self.min_corrupted_recall, dict):
            raise ValueError(
                "quality.min_corrupted_recall must be a table of corruption = minimum recall, "
                f"got {self.min_corrupted_recall!r}"
            )
        from edgeped.evaluate.corruptions import CORRUPTIONS  # numpy only

        for name, limit in self.min_corrupted_recall.items():
            if name not in CORRUPTIONS:
                raise ValueError(
                    f"quality.min_corrupted_recall.{name}: unknown corruption; "
                    f"allowed: {', '.join(CORRUPTIONS)}"
                )
            _check_fraction("quality.min_corrupted_recall", name, limit)
        if (
            not isinstance(self.min_slice_positives, int)
            or isinstance(self.min_slice_positives, bool)
            or self.min_slice_positives < 1
        ):
            raise ValueError(
                f"quality.min_slice_positives must be an integer >= 1, "
                f"got {self.min_slice_positives!r}"
            )


@dataclass(frozen=True)
class ChangeBudgets:
    """How far a model may move from its float parent (same run) or a baseline release."""

    max_recall_drop: float = 0.02
    max_flip_rate: float = 0.01
    max_latency_regression_pct: float = 10.0

    def __post_init__(self) -> None:
        _check_fraction("change", "max_recall_drop", self.max_recall_drop)
        _check_fraction("change", "max_flip_rate", self.max_flip_rate)
        _check_positive("change", "max_latency_regression_pct", self.max_latency_regression_pct)


@dataclass(frozen=True)
class RuntimeBudgets:
    """Latency and memory on a real (not emulated) target, from bench.json."""

    max_e2e_ms_per_crop_p95: float = 12.0
    max_invoke_ms_p95: float = 12.0
    max_peak_rss_mb: float = 200.0
    # Target kinds (bench.json `target_kind`) whose results count: the development
    # host ("local") is real hardware but not the ECU, so it is left out by default.
    target_kinds: tuple[str, ...] = ("ssh",)

    def __post_init__(self) -> None:
        for name in ("max_e2e_ms_per_crop_p95", "max_invoke_ms_p95", "max_peak_rss_mb"):
            _check_positive("runtime", name, getattr(self, name))
        kinds = tuple(self.target_kinds) if isinstance(self.target_kinds, (list, tuple)) else None
        if not kinds or not all(isinstance(k, str) and k for k in kinds):
            raise ValueError(
                f'runtime.target_kinds must list target kinds (e.g. ["ssh"]), '
                f"got {self.target_kinds!r}"
            )
        if any("emu" in k for k in kinds):
            raise ValueError(f"runtime.target_kinds must not name an emulated target, got {kinds}")
        object.__setattr__(self, "target_kinds", kinds)


def normalise_core(core: str) -> str:
    """`a53` and `cortex-a53` name the same core model."""
    core = str(core).strip().lower()
    return core if core.startswith("cortex-") else f"cortex-{core}"


def _emulated_cores() -> tuple[str, ...]:
    from edgeped.targets.emulated import CORES

    return tuple(sorted(CORES.values()))


@dataclass(frozen=True)
class CostBudgets:
    """Deterministic cost on the emulated board and the artifact's size."""

    max_size_mb: float = 25.0
    # core model -> maximum instructions per invoke; only the cores listed are gated.
    max_instructions_per_invoke: dict[str, int] = field(
        default_factory=lambda: {"cortex-a53": 10_000_000}
    )

    def __post_init__(self) -> None:
        _check_positive("cost", "max_size_mb", self.max_size_mb)
        if not isinstance(self.max_instructions_per_invoke, dict):
            raise ValueError(
                "cost.max_instructions_per_invoke must be a table of core = limit, "
                f"got {self.max_instructions_per_invoke!r}"
            )
        normalised = {}
        for core, limit in self.max_instructions_per_invoke.items():
            if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
                raise ValueError(
                    f"cost.max_instructions_per_invoke.{core} must be an integer > 0, got {limit!r}"
                )
            name = normalise_core(core)
            if name not in _emulated_cores():
                raise ValueError(
                    f"cost.max_instructions_per_invoke names core {core!r}, which the emulated "
                    f"board does not have; use one of {', '.join(_emulated_cores())}"
                )
            normalised[name] = limit
        object.__setattr__(self, "max_instructions_per_invoke", dict(sorted(normalised.items())))


@dataclass(frozen=True)
class DeviceBudgets:
    """Parity with the host and delegation of the graph to XNNPACK."""

    parity_required: bool = True
    min_xnnpack_share: float = 1.0
    allowed_fallback_ops: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.parity_required, bool):
            raise ValueError(
                f"device.parity_required must be true or false, got {self.parity_required!r}"
            )
        _check_fraction("device", "min_xnnpack_share", self.min_xnnpack_share)
        if isinstance(self.allowed_fallback_ops, str):  # tuple("TOPK_V2") would be letters
            raise ValueError(
                "device.allowed_fallback_ops must be a list of op names, e.g. "
                f'["{self.allowed_fallback_ops}"], got the string {self.allowed_fallback_ops!r}'
            )
        ops = tuple(self.allowed_fallback_ops)
        if not all(isinstance(op, str) and op for op in ops):
            raise ValueError(f"device.allowed_fallback_ops must list op names, got {ops!r}")
        object.__setattr__(self, "allowed_fallback_ops", tuple(sorted(o.upper() for o in ops)))


@dataclass(frozen=True)
class ShadowBudgets:
    """Disagreement of the candidate with the baseline it shadowed (shadow.json).

    Judged whenever a shadow.json for this model is in the run directory; with
    ``required`` its absence fails closed too.
    """

    required: bool = False
    max_flip_rate: float = 0.01
    max_new_miss_rate: float = 0.01
    max_slice_flip_rate: float = 0.05
    max_slice_new_miss_rate: float = 0.05
    min_crops: int = 1000
    min_slice_crops: int = 100
    min_slice_baseline_positives: int = 20

    def __post_init__(self) -> None:
        if not isinstance(self.required, bool):
            raise ValueError(f"shadow.required must be true or false, got {self.required!r}")
        for name in (
            "max_flip_rate",
            "max_new_miss_rate",
            "max_slice_flip_rate",
            "max_slice_new_miss_rate",
        ):
            _check_fraction("shadow", name, getattr(self, name))
        for name in ("min_crops", "min_slice_crops", "min_slice_baseline_positives"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"shadow.{name} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class RobustnessBudgets:
    """Recall and FPR under camera shifts, as a share of clean recall (robustness.json).

    Judged on whatever suite `edgeped eval` measured (the quick one by default, the full
    one with --corruptions all; the row says which); a robustness.json that is missing,
    made for another model, or lacks a registered family fails closed while `required`.
    """

    required: bool = True
    min_mean_recall_ratio: float = 0.90  # mean recall over every family and severity / clean
    min_cell_recall_ratio: float = 0.80  # every family at every severity <= 3 / clean
    min_held_out_recall_ratio: float = 0.85  # mean over the families held out of training
    max_mean_corrupted_fpr: float = 0.02  # mean FPR over every cell, clean-val threshold

    def __post_init__(self) -> None:
        if not isinstance(self.required, bool):
            raise ValueError(f"robustness.required must be true or false, got {self.required!r}")
        for name in (
            "min_mean_recall_ratio",
            "min_cell_recall_ratio",
            "min_held_out_recall_ratio",
            "max_mean_corrupted_fpr",
        ):
            _check_fraction("robustness", name, getattr(self, name))


_SECTIONS = {
    "quality": QualityBudgets,
    "robustness": RobustnessBudgets,
    "change": ChangeBudgets,
    "runtime": RuntimeBudgets,
    "cost": CostBudgets,
    "device": DeviceBudgets,
    "shadow": ShadowBudgets,
}


@dataclass(frozen=True)
class Budgets:
    """Every budget of a release; the defaults are the shipped budgets.toml."""

    model: str = "student_qat_int8"
    quality: QualityBudgets = field(default_factory=QualityBudgets)
    robustness: RobustnessBudgets = field(default_factory=RobustnessBudgets)
    change: ChangeBudgets = field(default_factory=ChangeBudgets)
    runtime: RuntimeBudgets = field(default_factory=RuntimeBudgets)
    cost: CostBudgets = field(default_factory=CostBudgets)
    device: DeviceBudgets = field(default_factory=DeviceBudgets)
    shadow: ShadowBudgets = field(default_factory=ShadowBudgets)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model or "/" in self.model:
            raise ValueError(
                f"model must be a model name in the run directory "
                f"(e.g. student_qat_int8), got {self.model!r}"
            )
        for name, cls in _SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"{name} must be a {cls.__name__}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["device"]["allowed_fallback_ops"] = list(self.device.allowed_fallback_ops)
        out["runtime"]["target_kinds"] = list(self.runtime.target_kinds)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "budgets") -> Budgets:
        """Builds the budgets from a mapping; a partial section keeps its defaults.

        Raises:
            ConfigError: an unknown section or key, a wrong type, or a bad value.
        """
        from edgeped.config import from_mapping

        return from_mapping(cls, data, where=where)


BUDGETS_ENV = "EDGEPED_BUDGETS"
BUDGETS_FILE = "budgets.toml"
BUILT_IN = "built-in defaults (the shipped budgets.toml, docs/budgets.md)"


def find_budgets_file(path: str | os.PathLike | None = None) -> Path | None:
    """The budgets file a command uses: ``path``, else $EDGEPED_BUDGETS, else ./budgets.toml.

    None means the built-in defaults. A file named explicitly (argument or environment)
    must exist; ./budgets.toml is used only when it is there, so a run directory can be
    gated from any folder, and a repository's own budgets.toml wins inside it (as
    ./targets.toml does for targets).
    """
    if path is not None:
        return Path(path)
    env = os.environ.get(BUDGETS_ENV)
    if env:
        return Path(env)
    local = Path(BUDGETS_FILE)
    return local if local.is_file() else None


def resolve_budgets(path: str | os.PathLike | None = None) -> tuple[Budgets, str]:
    """The budgets to judge with and a line saying where they came from.

    Raises:
        EdgepedError: an explicitly named file is missing or invalid (see load_budgets).
    """
    found = find_budgets_file(path)
    if found is None:
        return Budgets(), BUILT_IN
    how = (
        "--budgets"
        if path is not None
        else f"${BUDGETS_ENV}"
        if os.environ.get(BUDGETS_ENV)
        else "found in the working folder"
    )
    return load_budgets(found), f"{found} ({how})"


def load_budgets(path: str | os.PathLike) -> Budgets:
    """Reads budgets.toml.

    Raises:
        EdgepedError: the file is missing, not TOML, or holds an unknown key or bad value.
    """
    p = Path(path)
    if not p.is_file():
        raise EdgepedError(
            f"budgets file not found: {p}",
            "pass an existing budgets TOML to --budgets (or unset $EDGEPED_BUDGETS), "
            "or leave both out to use the built-in budgets",
        )
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise EdgepedError(
            f"{p} is not valid TOML ({exc})", "fix the syntax; see docs/budgets.md"
        ) from exc
    try:
        return Budgets.from_dict(data, where=str(p))
    except ConfigError as exc:
        raise ConfigError(exc.problem, "see docs/budgets.md for every key and its unit") from exc
    except (TypeError, ValueError) as exc:
        raise EdgepedError(f"{p}: {exc}", "see docs/budgets.md for every key and its unit") from exc
