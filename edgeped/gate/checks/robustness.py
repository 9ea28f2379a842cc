"""Robustness budgets from robustness.json: recall under the corruption suite.

`quality.corrupted_recall[NAME]` judges one corruption's recall averaged over its
severities; `quality.mean_corrupted_recall` the average over every corruption and
severity. Both fail closed: no robustness.json, one made for another model, or one
that left out a corruption or severity the budget averages over is never a pass.

The `robustness.*` budgets judge recall as a share of clean recall (overall, every cell
up to severity 3, the held-out families) and the mean corrupted FPR, on the suite eval
measured (quick by default, full with --corruptions all; each row's note says which).
They need every registered family in robustness.json.
"""

from __future__ import annotations

from edgeped.gate.budgets import Budgets
from edgeped.gate.checks.base import Budget, check
from edgeped.gate.evidence import Evidence
from edgeped.gate.verdict import BudgetResult

SEVERITIES = ("1", "2", "3", "4", "5")
_RUN = "run `edgeped eval RUN_DIR --corruptions all`"


def _entry(ev: Evidence, budget: Budget) -> tuple[dict | None, BudgetResult | None]:
    """The model's robustness.json entry, or the row that says why it cannot be used."""
    src = ev.robustness
    if src is None or not src.ok:
        if src is None:
            return None, budget.missing(f"no robustness.json was read; {_RUN}")
        return None, budget.unusable(src, _RUN, f"re-{_RUN}")
    entry = (src.data.get("models") or {}).get(ev.model)
    if not isinstance(entry, dict):
        return None, budget.missing(f"robustness.json has no model {ev.model!r}; {_RUN}", src)
    made_for = (entry.get("model") or {}).get("sha256")
    if made_for != ev.model_sha256:
        return None, budget.stale(
            "robustness results are for", made_for, ev.model_sha256, _RUN, src
        )
    return entry, None


def _recall_over_severities(cells) -> float | None:
    """Mean recall over severities 1-5, or None when any severity is absent or not a number."""
    if not isinstance(cells, dict) or any(s not in cells for s in SEVERITIES):
        return None
    values = [(cells[s] or {}).get("recall") for s in SEVERITIES]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    return sum(values) / len(values)


@check("quality.corrupted_recall")
def corrupted_recall(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    q = b.quality
    rows = []
    for name, limit in sorted(q.min_corrupted_recall.items()):
        budget = Budget("quality.corrupted_recall", "min", limit).at(name)
        entry, problem = _entry(ev, budget)
        if problem:
            rows.append(problem)
            continue
        cells = (entry.get("corruptions") or {}).get(name)
        value = _recall_over_severities(cells)
        if value is None:
            rows.append(
                budget.missing(
                    f"robustness.json lacks {name} at some of severities 1-5; {_RUN}",
                    ev.robustness,
                )
            )
        else:
            rows.append(
                budget.judge(
                    value, ev.robustness, note="mean over severities 1-5, clean-val threshold"
                )
            )
    if q.min_mean_corrupted_recall > 0:
        budget = Budget("quality.mean_corrupted_recall", "min", q.min_mean_corrupted_recall)
        entry, problem = _entry(ev, budget)
        if problem:
            rows.append(problem)
        else:
            from edgeped.evaluate.corruptions import CORRUPTIONS  # numpy only

            cells = entry.get("corruptions") or {}
            per = {n: _recall_over_severities(cells.get(n)) for n in CORRUPTIONS}
            lacking = [n for n, v in per.items() if v is None]
            if lacking:
                rows.append(
                    budget.missing(
                        f"robustness.json lacks {', '.join(lacking)} (at some severity); {_RUN}",
                        ev.robustness,
                    )
                )
            else:
                rows.append(
                    budget.judge(
                        sum(per.values()) / len(per),
                        ev.robustness,
                        note=f"mean over {len(per)} corruptions x severities 1-5",
                    )
                )
    return rows


def _suite_cells(ev: Evidence, budget: Budget) -> tuple[dict | None, str, BudgetResult | None]:
    """(the model's summary, a note naming the suite, or the row that says why not)."""
    from edgeped.evaluate.corruptions import CORRUPTIONS  # numpy only

    entry, problem = _entry(ev, budget)
    if problem:
        return None, "", problem
    cells = entry.get("corruptions") or {}
    lacking = [n for n in CORRUPTIONS if not isinstance(cells.get(n), dict) or not cells[n]]
    summary = entry.get("summary")
    if lacking or not isinstance(summary, dict) or "recall_ratio" not in summary:
        what = f"lacks {', '.join(lacking)}" if lacking else "has no recall ratios (older eval)"
        return None, "", budget.missing(f"robustness.json {what}; {_RUN_QUICK}", ev.robustness)
    config = ev.robustness.data.get("config") or {}
    severities = ",".join(str(s) for s in config.get("severities") or [])
    note = f"{config.get('suite', 'custom')} suite: {len(cells)} families x severities {severities}"
    return summary, note, None


_RUN_QUICK = "run `edgeped eval RUN_DIR` (quick suite) or `--corruptions all` (full)"


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@check("robustness")
def robustness_ratios(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    r = b.robustness
    rows = []
    specs = [
        ("robustness.mean_recall_ratio", "min", r.min_mean_recall_ratio),
        ("robustness.cell_recall_ratio", "min", r.min_cell_recall_ratio),
        ("robustness.held_out_recall_ratio", "min", r.min_held_out_recall_ratio),
        ("robustness.mean_corrupted_fpr", "max", r.max_mean_corrupted_fpr),
    ]
    for name, direction, limit in specs:
        budget = Budget(name, direction, limit)
        absent = ev.robustness is None or ev.robustness.missing
        if absent and not r.required:
            rows.append(budget.skipped("no robustness.json and robustness.required = false"))
            continue
        summary, note, problem = _suite_cells(ev, budget)
        if problem:
            rows.append(problem)
            continue
        if name.endswith("mean_recall_ratio"):
            value = summary.get("recall_ratio")
        elif name.endswith("cell_recall_ratio"):
            mild = summary.get("worst_mild") or {}
            value = mild.get("recall_ratio")
            note += f"; worst: {mild.get('corruption')} severity {mild.get('severity')}"
        elif name.endswith("held_out_recall_ratio"):
            held = (summary.get("families") or {}).get("held_out") or {}
            value = held.get("recall_ratio")
            note += f"; held out: {', '.join(held.get('families') or []) or 'none'}"
        else:
            value = summary.get("mean_corrupted_fpr")
            alerts = summary.get("fpr_alerts") or []
            if alerts:
                note += "; FPR over 2% under " + ", ".join(
                    f"{a['corruption']} {a['severity']} ({100 * a['fpr']:.1f}%)" for a in alerts
                )
        if not _number(value) and direction == "min" and summary.get("clean_recall") == 0:
            # A share of zero clean recall is undefined; the model keeps nothing: a failure.
            rows.append(budget.judge(0.0, ev.robustness, note=f"clean recall is 0; {note}"))
        elif not _number(value):
            rows.append(
                budget.missing(f"robustness.json has no figure for it; {note}", ev.robustness)
            )
        else:
            rows.append(budget.judge(value, ev.robustness, note=note))
    return rows
