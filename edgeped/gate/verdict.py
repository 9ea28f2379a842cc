"""The gate's verdict: one row per budget, and the exit code it implies."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from edgeped.errors import ExitCode
from edgeped.provenance import stamp

if TYPE_CHECKING:
    from edgeped.convert.model_card import CardFacts

VERDICT_KIND = "edgeped.gate"
# The card facts a release must carry exactly as the gate saw them (the card's sha256
# binds every byte; these name what changed when it differs).
CARD_FACTS = ("threshold", "calibration", "preprocessing")


def card_binding(
    card: CardFacts | dict | None, card_sha256: str | None, file: str | None = None
) -> dict:
    """What the verdict records about the model card: its sha256 and the facts that matter.

    ``threshold`` and ``calibration`` are kept as they are (small); ``preprocessing`` by
    the sha256 of its canonical JSON.

    Raises:
        EdgepedError: ``card`` is a parsed card with a malformed fact.
    """
    from edgeped.convert.model_card import CardFacts

    facts = CardFacts.from_card(card, file or "model card") if isinstance(card, dict) else card
    return {
        "file": file,
        "sha256": card_sha256,
        "threshold": facts.threshold if facts else None,
        "calibration": facts.calibration if facts else None,
        "preprocessing_sha256": facts.preprocessing_sha256 if facts else None,
    }


def card_differences(judged: dict, now: dict) -> list[str]:
    """The card facts (threshold, calibration, preprocessing) that differ between bindings."""
    keys = ("threshold", "calibration", "preprocessing_sha256")
    return [k.replace("_sha256", "") for k in keys if judged.get(k) != now.get(k)]


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    MISSING = "missing"  # no measurement that may judge this budget
    STALE = "stale"  # measurements exist, but for another model (sha256)
    UNREADABLE = "unreadable"  # a file is corrupt, truncated or lacks the field
    SKIPPED = "skipped"  # the budget does not apply (e.g. a slice below the minimum size)

    @property
    def blocks_release(self) -> bool:
        return self not in (Status.PASS, Status.SKIPPED)

    @property
    def is_evidence_problem(self) -> bool:
        return self in (Status.MISSING, Status.STALE, Status.UNREADABLE)


# Which way a limit points: measured must be >= limit ("min") or <= limit ("max").
_MARGIN = {
    "min": lambda measured, limit: measured - limit,
    "max": lambda measured, limit: limit - measured,
    "equal": None,
}  # a yes/no requirement has no margin


@dataclass(frozen=True)
class BudgetResult:
    """One budget judged: the figure, its limit, and the file (with sha256) it came from."""

    budget: str
    status: Status
    direction: str  # "min" | "max" | "equal"
    limit: float | bool | None
    measured: float | bool | None = None
    unit: str = ""
    source: str | None = None
    source_sha256: str | None = None
    note: str = ""
    # The measurement's own 95% interval (same unit), where the evidence gives one.
    interval: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.direction not in _MARGIN:
            raise ValueError(f"direction must be one of {sorted(_MARGIN)}, got {self.direction!r}")
        object.__setattr__(self, "status", Status(self.status))
        if self.interval is not None:
            object.__setattr__(self, "interval", (float(self.interval[0]), float(self.interval[1])))

    @property
    def within_interval(self) -> bool:
        """A FAIL whose limit lies inside the measurement's own 95% interval.

        The gate still fails (closed), but the miss cannot be told from noise on this
        test set: measure on more data before tuning the model.
        """
        if self.status is not Status.FAIL or self.interval is None or self.limit is None:
            return False
        if isinstance(self.limit, bool):
            return False
        low, high = self.interval
        return low <= float(self.limit) <= high

    @property
    def margin(self) -> float | None:
        """Headroom in the budget's unit: positive passes, negative fails, None if unmeasured."""
        if self.measured is None or self.limit is None or self.direction == "equal":
            return None
        return float(_MARGIN[self.direction](self.measured, self.limit))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        out["margin"] = self.margin
        out["interval"] = list(self.interval) if self.interval is not None else None
        out["within_interval"] = self.within_interval
        return out


@dataclass(frozen=True)
class Verdict:
    """Every budget's result for one model of one run directory."""

    run_dir: str
    model: str
    model_sha256: str | None
    results: tuple[BudgetResult, ...]
    budgets: dict[str, Any] = field(default_factory=dict)
    baseline: str | None = None
    # The model card judged with the model (card_binding): a release must ship this card.
    card: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        """0 every budget passed; 2 some evidence is missing, stale or unreadable; else 1.

        Missing evidence wins over a failure: the verdict is incomplete, and the fix
        (measure again) comes before tuning the model.
        """
        if any(r.status.is_evidence_problem for r in self.results):
            return int(ExitCode.EVIDENCE_MISSING)
        if any(r.status is Status.FAIL for r in self.results):
            return int(ExitCode.FAILED)
        return int(ExitCode.OK)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for r in self.results:
            out[r.status.value] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            **stamp(VERDICT_KIND),
            "run_dir": self.run_dir,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "card": self.card,
            "baseline": self.baseline,
            "exit_code": self.exit_code,
            "passed": self.passed,
            "counts": self.counts(),
            "budgets": self.budgets,
            "results": [r.to_dict() for r in self.results],
        }
