"""What every check family shares: the Budget it judges, the registry, and evidence lookups.

A check never guesses: a figure that is absent, made for another model's sha256, or
unreadable becomes a MISSING/STALE/UNREADABLE row, and the gate fails closed on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from edgeped.gate.budgets import Budgets
from edgeped.gate.evidence import Evidence, Source
from edgeped.gate.verdict import BudgetResult, Status
from edgeped.registry import Registry

Check = Callable[[Budgets, Evidence], list[BudgetResult]]
CHECKS: Registry[Check] = Registry("gate check")
check = CHECKS.register

MIB = 1024 * 1024


def stale_note(subject: str, made_for: Any, model_sha256: Any, fix: str) -> str:
    """The one wording for "this evidence was made for another model"."""
    return f"{subject} sha256 {str(made_for)[:12]}, the model is {str(model_sha256)[:12]}; {fix}"


@dataclass(frozen=True)
class Budget:
    """One budget row: its name, which way it is judged, the limit and the unit.

    Every outcome of a check is one of these methods, so the name, direction, limit
    and unit are stated once per budget.
    """

    name: str
    direction: str  # "min", "max" or "equal"
    limit: Any
    unit: str = ""

    def at(self, key: str) -> Budget:
        """The same budget for one member, e.g. ``quality.slice_recall[lighting=night]``."""
        return replace(self, name=f"{self.name}[{key}]")

    def row(
        self,
        status: Status,
        *,
        measured: Any = None,
        source: Source | None = None,
        note: str = "",
    ) -> BudgetResult:
        return BudgetResult(
            budget=self.name,
            status=status,
            direction=self.direction,
            limit=self.limit,
            measured=measured,
            unit=self.unit,
            source=source.path if source else None,
            source_sha256=source.sha256 if source else None,
            note=note,
        )

    def missing(self, note: str, source: Source | None = None) -> BudgetResult:
        return self.row(Status.MISSING, source=source, note=note)

    def unreadable(self, note: str, source: Source | None = None) -> BudgetResult:
        return self.row(Status.UNREADABLE, source=source, note=note)

    def skipped(
        self, note: str, measured: Any = None, source: Source | None = None
    ) -> BudgetResult:
        return self.row(Status.SKIPPED, measured=measured, source=source, note=note)

    def stale(
        self, subject: str, made_for: Any, model_sha256: Any, fix: str, source: Source
    ) -> BudgetResult:
        return self.row(
            Status.STALE, source=source, note=stale_note(subject, made_for, model_sha256, fix)
        )

    def not_this_model(
        self, ev: Evidence, subject: str, made_for: Any, fix: str, source: Source
    ) -> BudgetResult:
        """Evidence made for another model: a sibling's (MISSING for this one) or STALE.

        A file for another model of the same run directory is not out of date: it is
        that model's evidence, and this model simply has none yet.
        """
        sibling = ev.sibling(made_for)
        if sibling is None:
            return self.stale(subject, made_for, ev.model_sha256, fix, source)
        return self.missing(
            f"no {subject.split(' ')[0]} for {ev.model}: {source.path} is a sibling's evidence "
            f"(made for {sibling} of this run, sha256 {str(made_for)[:12]}); {fix}",
            source,
        )

    def unusable(self, src: Source, fix_missing: str, fix_bad: str) -> BudgetResult:
        """The row for an evidence file that is absent or cannot be read."""
        if src.missing:
            return self.missing(f"{src.problem}; {fix_missing}", src)
        return self.unreadable(f"{src.problem}; {fix_bad}", src)

    def judge(self, measured: Any, source: Source, note: str = "") -> BudgetResult:
        """PASS/FAIL against the limit; a non-numeric figure is UNREADABLE, never a pass."""
        if measured is None or isinstance(measured, bool) or not isinstance(measured, (int, float)):
            return self.unreadable(
                note or f"{source.path} has no numeric value for this budget", source
            )
        ok = measured >= self.limit if self.direction == "min" else measured <= self.limit
        return self.row(
            Status.PASS if ok else Status.FAIL, measured=measured, source=source, note=note
        )

    def verdict(self, ok: bool, source: Source | None, note: str) -> BudgetResult:
        """PASS/FAIL of a yes/no budget (direction "equal", limit True)."""
        return self.row(Status.PASS if ok else Status.FAIL, measured=ok, source=source, note=note)


def metrics_entry(ev: Evidence, budget: Budget) -> tuple[dict | None, BudgetResult | None]:
    """The model's metrics.json entry, or the row that says why it cannot be used."""
    src = ev.metrics
    if not src.ok:
        return None, budget.unusable(
            src, f"run `edgeped eval {ev.run_arg}`", f"re-run `edgeped eval {ev.run_arg}`"
        )
    entry = ev.metrics_entry()
    if not isinstance(entry, dict):
        return None, budget.missing(
            f"metrics.json has no model {ev.model!r}; run `edgeped eval {ev.run_arg}`", src
        )
    made_for = ev.metrics_sha256()
    if made_for != ev.model_sha256:
        return None, budget.stale(
            "metrics are for",
            made_for,
            ev.model_sha256,
            f"re-run `edgeped eval {ev.run_arg}`",
            src,
        )
    return entry, None


def run_checks(
    budgets: Budgets, evidence: Evidence, names: tuple[str, ...] | None = None
) -> list[BudgetResult]:
    """Runs the registered checks (all, or ``names``) in registration order."""
    chosen = names or tuple(CHECKS)
    unknown = sorted(set(chosen) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; registered: {sorted(CHECKS)}")
    rows: list[BudgetResult] = []
    for name in chosen:
        rows.extend(CHECKS[name](budgets, evidence))
    return rows
