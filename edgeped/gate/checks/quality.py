"""Quality budgets from metrics.json: test recall/FPR/AUC-PR, slices, the int8-vs-float change."""

from __future__ import annotations

from dataclasses import replace

from edgeped.gate.budgets import Budgets
from edgeped.gate.checks.base import Budget, check, metrics_entry
from edgeped.gate.evidence import Evidence
from edgeped.gate.verdict import BudgetResult


def _test_figure(budget: Budget, key: str, ev: Evidence) -> BudgetResult:
    entry, problem = metrics_entry(ev, budget)
    if problem:
        return problem
    test = entry.get("test") or {}
    row = budget.judge(test.get(key), ev.metrics, note="test split, threshold chosen on val")
    boot = ((entry.get("test_ci95") or {}).get("by_drive_bootstrap") or {}).get(key)
    if isinstance(boot, (list, tuple)) and len(boot) == 2 and None not in boot:
        row = replace(row, interval=(boot[0], boot[1]))  # the figure's by-drive 95% interval
    return row


@check("quality")
def quality(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    q = b.quality
    return [
        _test_figure(Budget("quality.recall", "min", q.min_recall), "recall", ev),
        _test_figure(Budget("quality.fpr", "max", q.max_fpr), "fpr", ev),
        _test_figure(Budget("quality.auc_pr", "min", q.min_auc_pr), "auc_pr", ev),
    ]


@check("quality.slice_recall")
def slice_recall(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    q = b.quality
    budget = Budget("quality.slice_recall", "min", q.min_slice_recall)
    entry, problem = metrics_entry(ev, budget)
    if problem:
        return [problem]
    slices = entry.get("test_slices")
    if not isinstance(slices, dict) or not slices:
        return [budget.missing("metrics.json has no test_slices for this model", ev.metrics)]
    rows = []
    for dim in sorted(slices):
        for value in sorted(slices[dim]):
            s = slices[dim][value]
            one = budget.at(f"{dim}={value}")
            positives = s.get("positives")
            if positives == 0:
                continue  # a negatives-only slice (e.g. hard_negative=pole) has no recall
            if not isinstance(positives, int):
                rows.append(one.unreadable("slice has no positives count", ev.metrics))
            elif positives < q.min_slice_positives:
                rows.append(
                    one.skipped(
                        f"{positives} positives < min_slice_positives {q.min_slice_positives}",
                        measured=s.get("recall"),
                        source=ev.metrics,
                    )
                )
            else:
                row = one.judge(s.get("recall"), ev.metrics, note=f"{positives} positives")
                recall = s.get("recall")
                if isinstance(recall, (int, float)) and 0 <= recall <= 1:
                    from edgeped.evaluate.uncertainty import clopper_pearson

                    # Exact interval: a slice's pedestrians are few, the miss may be noise.
                    row = replace(
                        row, interval=clopper_pearson(round(recall * positives), positives)
                    )
                rows.append(row)
    return rows


def _is_quantized(ev: Evidence, entry: dict) -> bool:
    mode = (entry.get("model") or {}).get("mode") or (
        (ev.card.data.get("model") or {}).get("mode") if ev.card.ok else ""
    )
    return str(mode).endswith("int8")


@check("change.vs_float")
def change_vs_float(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    """Recall drop and decision flips of a quantized model against its float parent."""
    c = b.change
    drop_budget = Budget("change.recall_drop_vs_float", "max", c.max_recall_drop)
    flip_budget = Budget("change.flip_rate_vs_float", "max", c.max_flip_rate)
    both = (drop_budget, flip_budget)
    entry, problem = metrics_entry(ev, drop_budget)
    if problem:
        return [problem, flip_budget.row(problem.status, source=ev.metrics, note=problem.note)]
    if not _is_quantized(ev, entry):
        return [x.skipped("a float model has no float parent", source=ev.metrics) for x in both]
    found = [
        comp
        for comp in ev.metrics.data.get("comparisons") or []
        if isinstance(comp, dict) and comp.get("quantized") == ev.model
    ]
    if not found:
        return [
            x.missing(
                "metrics.json compares no float parent with this model; evaluate "
                "the float model in the same run",
                ev.metrics,
            )
            for x in both
        ]
    comp = found[0]
    delta = (comp.get("delta") or {}).get("recall")
    drop = -delta if isinstance(delta, (int, float)) else None
    parent = f"vs {comp.get('float')}"
    return [
        drop_budget.judge(drop, ev.metrics, note=parent),
        flip_budget.judge(comp.get("flip_rate"), ev.metrics, note=parent),
    ]
