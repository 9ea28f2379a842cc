"""Change budgets against a previous release's run: recall drop, decision flips crop by crop,
and real-target latency regression."""

from __future__ import annotations

from dataclasses import replace

from edgeped.gate.budgets import Budgets
from edgeped.gate.checks.base import Budget, check, metrics_entry
from edgeped.gate.checks.device import real_benches
from edgeped.gate.evidence import Evidence
from edgeped.gate.verdict import BudgetResult, Status


@check("change.vs_baseline")
def change_vs_baseline(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    """Recall drop and real-target latency regression against a previous release's run."""
    base = ev.baseline
    if base is None:
        return []
    c = b.change
    return [
        _recall_drop(Budget("change.recall_drop_vs_baseline", "max", c.max_recall_drop), ev, base),
        _flip_rate(Budget("change.flip_rate_vs_baseline", "max", c.max_flip_rate), ev, base),
        _latency_regression(
            Budget(
                "change.latency_regression_pct_vs_baseline",
                "max",
                c.max_latency_regression_pct,
                "%",
            ),
            ev,
            base,
            b.runtime.target_kinds,
        ),
    ]


def _recall_drop(budget: Budget, ev: Evidence, base: Evidence) -> BudgetResult:
    entry, problem = metrics_entry(ev, budget)
    base_entry, base_problem = metrics_entry(base, budget)
    if problem:
        return problem
    if base_problem:
        return replace(base_problem, note=f"baseline: {base_problem.note}")
    now = (entry.get("test") or {}).get("recall")
    then = (base_entry.get("test") or {}).get("recall")
    drop = then - now if all(isinstance(v, (int, float)) for v in (now, then)) else None
    return budget.judge(
        drop,
        ev.metrics,
        note=f"baseline recall {then} from {base.metrics.path} ({str(base.metrics.sha256)[:12]})",
    )


def _latency_regression(
    budget: Budget, ev: Evidence, base: Evidence, kinds: tuple[str, ...]
) -> BudgetResult:
    real, _ = real_benches(ev, kinds)
    base_real, _ = real_benches(base, kinds)
    pairs = [
        (s, t)
        for s in real
        for t in base_real
        if s.data.get("target_name") == t.data.get("target_name")
    ]
    if not pairs:
        return budget.missing(
            "needs real-target bench results of this model and of the "
            "baseline's on the same target name"
        )
    worst = None
    for s, t in pairs:
        now, then = s.data.get("e2e_ms_per_crop_p95"), t.data.get("e2e_ms_per_crop_p95")
        if not all(isinstance(v, (int, float)) and v > 0 for v in (now, then)):
            return budget.judge(None, s)
        pct = 100.0 * (now - then) / then
        if worst is None or pct > worst[0]:
            worst = (pct, s, t)
    pct, s, t = worst
    return budget.judge(
        pct,
        s,
        note=f"e2e p95 on {s.data.get('target_name')}; baseline "
        f"{t.data.get('e2e_ms_per_crop_p95'):.3f} ms from {t.path} ({str(t.sha256)[:12]})",
    )


def _decisions(ev: Evidence, budget: Budget, who: str):
    """(crop_id, decision) arrays of ``ev``'s model on its test split, or the row saying why not."""
    import numpy as np

    entry, problem = metrics_entry(ev, budget)
    if problem:
        return None, replace(problem, note=f"{who}: {problem.note}")
    scores = ev.scores
    if scores is None or not scores.ok:
        status = Status.MISSING if scores is None or scores.missing else Status.UNREADABLE
        return None, budget.row(
            status,
            source=scores,
            note=f"{who}: {scores.problem if scores else 'no per-crop scores'}; "
            "re-run `edgeped eval` on that run",
        )
    key = f"score/{ev.model}"
    # The card's threshold is the one the board decides with (metrics.json only echoes it).
    facts = ev.card_facts()
    made_for_it = facts is not None and facts.model_sha256 == ev.model_sha256
    threshold = facts.threshold_score if made_for_it else None
    if key not in scores.data or threshold is None:
        return None, budget.missing(
            f"{who}: no per-crop scores or card threshold for {ev.model}; "
            "re-run `edgeped eval` on that run",
            scores,
        )
    return (scores.data["crop_id"], np.asarray(scores.data[key]) >= threshold), None


def _flip_rate(budget: Budget, ev: Evidence, base: Evidence) -> BudgetResult:
    """Share of test crops whose decision differs from the baseline release's at its threshold."""
    import numpy as np

    now, problem = _decisions(ev, budget, "this run")
    if problem:
        return problem
    then, problem = _decisions(base, budget, "baseline")
    if problem:
        return problem
    (ids_now, dec_now), (ids_then, dec_then) = now, then
    common, i_now, i_then = np.intersect1d(ids_now, ids_then, return_indices=True)
    if len(common) != len(ids_now) or len(common) != len(ids_then):
        return budget.missing(
            f"the two runs were tested on different crops ({len(common)} in common "
            f"of {len(ids_now)} and {len(ids_then)}); evaluate both on one dataset "
            "(`edgeped eval BASELINE_RUN --data DATA`)",
            ev.scores,
        )
    flips = dec_now[i_now] != dec_then[i_then]
    return budget.judge(
        float(flips.mean()),
        ev.scores,
        note=f"{int(flips.sum())} of {len(common)} test crops; baseline scores "
        f"{base.scores.path} ({str(base.scores.sha256)[:12]})",
    )
