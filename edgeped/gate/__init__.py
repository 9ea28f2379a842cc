"""Budgets and verdicts: judge a run directory's model against budgets.toml."""

from edgeped.gate.budgets import Budgets, load_budgets
from edgeped.gate.run import gate_run
from edgeped.gate.verdict import BudgetResult, Status, Verdict

__all__ = ["BudgetResult", "Budgets", "Status", "Verdict", "gate_run", "load_budgets"]
