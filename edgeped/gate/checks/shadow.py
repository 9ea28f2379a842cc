"""Shadow budgets from shadow.json: the candidate's flips and new misses against the baseline.

The evidence is every ``shadow.json`` in the run directory (``RUN_DIR/shadow.json``,
``RUN_DIR/shadow/shadow.json``, ``RUN_DIR/shadow/*/shadow.json``) whose candidate is
this model (same sha256); the one with the most crops is judged. Shadow evidence is
judged whenever present; with ``shadow.required`` its absence fails closed too. A log
with damaged records, or fewer crops than ``min_crops``, never passes.

What the budgets judge depends on the report's basis. Labelled crops (offline test
scores, a labelled replay set): ``new_miss_rate`` is the pedestrians the baseline found
that the candidate loses, ``flip_rate`` the flips that add an error; a baseline false
alarm the candidate rejects is a gain and never counts against it. An unlabelled
vehicle log: both are disagreement with the baseline, and every row says so.
"""

from __future__ import annotations

from pathlib import Path

from edgeped.gate.budgets import Budgets
from edgeped.gate.checks.base import Budget, check
from edgeped.gate.evidence import Evidence, Source, read_source
from edgeped.gate.verdict import BudgetResult

SHADOW_KIND = "edgeped.shadow_report"
SHADOW_GLOBS = ("shadow.json", "shadow/shadow.json", "shadow/*/shadow.json")


def shadow_sources(run_dir: str) -> list[Source]:
    root = Path(run_dir)
    found = sorted({p.resolve() for g in SHADOW_GLOBS for p in root.glob(g) if p.is_file()})
    return [read_source(p, SHADOW_KIND) for p in found]


def _pick(ev: Evidence) -> tuple[Source | None, list[Source], list[Source]]:
    """The shadow report for this model (most crops), stale ones, and unreadable ones."""
    mine, stale, bad = [], [], []
    for src in shadow_sources(ev.run_dir):
        if not src.ok:
            bad.append(src)
        elif (src.data.get("candidate") or {}).get("sha256") == ev.model_sha256:
            mine.append(src)
        else:
            stale.append(src)
    mine.sort(key=lambda s: -int((s.data.get("overall") or {}).get("crops") or 0))
    return (mine[0] if mine else None), stale, bad


def _key(row: dict, key: str) -> str:
    """The figure a budget reads: on labels, flip_rate judges only harmful flips."""
    if key == "flip_rate" and row.get("basis") == "labels":
        return "harmful_flip_rate"
    return key


def _rate(row: dict, key: str):
    r = row.get(_key(row, key)) or {}
    if r.get("of") == 0 and r.get("count") == 0:
        return 0.0  # e.g. the baseline found no pedestrian: the candidate can lose none
    return r.get("rate")


def _basis_note(row: dict, key: str) -> str:
    r = row.get(_key(row, key)) or {}
    counts = f"{r.get('count')}/{r.get('of')}"
    if row.get("basis") != "labels":
        what = (
            "decisions that differ"
            if key == "flip_rate"
            else "baseline pedestrian calls the candidate drops"
        )
        return f"disagreement (no labels): {what}, {counts}"
    gains = row.get("gains") or {}
    if key == "flip_rate":
        good = sum((gains.get(g) or {}).get("count") or 0 for g in gains)
        return f"labels: flips that add an error, {counts}; {good} flip(s) that fix one are gains"
    removed = (gains.get("false_alarms_removed") or {}).get("count") or 0
    return (
        f"labels: pedestrians the baseline found that the candidate loses, {counts}; "
        f"{removed} baseline false alarm(s) rejected (gain)"
    )


def _shadow_fix(ev: Evidence, stale: list[Source]) -> str:
    """A command that shadows this model offline against the run's float baseline."""
    import shlex

    named = [(s.data.get("baseline") or {}).get("name") for s in stale]
    names = [n for n, _ in ev.run_models if n != ev.model]
    baseline = next((n for n in named if n in names), None) or next(
        (n for n in ("student_float32", "student_distilled_float32") if n in names),
        names[0] if names else "BASELINE",
    )
    out = shlex.quote(str(Path(ev.run_dir) / "shadow" / ev.model))
    return (
        f"run `edgeped shadow report {ev.run_arg} --baseline {baseline} --candidate "
        f"{ev.model} --out {out}` (offline, labelled test crops) or `edgeped shadow run` "
        "on a target"
    )


@check("shadow")
def shadow(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    s = b.shadow
    overall = [
        (Budget("shadow.flip_rate", "max", s.max_flip_rate), "flip_rate"),
        (Budget("shadow.new_miss_rate", "max", s.max_new_miss_rate), "new_miss_rate"),
    ]
    per_slice = [
        (Budget("shadow.slice_flip_rate", "max", s.max_slice_flip_rate), "flip_rate"),
        (Budget("shadow.slice_new_miss_rate", "max", s.max_slice_new_miss_rate), "new_miss_rate"),
    ]
    chosen, stale, bad = _pick(ev)
    budgets = [x for x, _ in overall]
    if chosen is None:
        fix = _shadow_fix(ev, stale)
        if stale:
            made_for = (stale[0].data.get("candidate") or {}).get("sha256")
            return [x.not_this_model(ev, "shadow.json is for", made_for, fix, stale[0])
                    for x in budgets]  # fmt: skip
        if bad:
            return [x.unreadable(f"{bad[0].problem}; {fix}", bad[0])
                    for x in budgets]  # fmt: skip
        note = "no shadow.json for this model in the run directory"
        if s.required:
            return [x.missing(f"{note}; {fix}") for x in budgets]
        return [x.skipped(f"{note} (shadow.required = false)") for x in budgets]
    data = chosen.data
    integrity = data.get("integrity") or {}
    o = data.get("overall") or {}
    baseline = (data.get("baseline") or {}).get("name")
    if not integrity.get("ok", False):
        note = f"the shadow log has damaged records (lines {integrity.get('corrupt_lines')})"
        return [x.unreadable(f"{note}; shadow again", chosen) for x in budgets]
    crops = o.get("crops")
    if not isinstance(crops, int) or crops < s.min_crops:
        return [
            x.missing(f"{crops} shadowed crops < min_crops {s.min_crops}; shadow more", chosen)
            for x in budgets
        ]
    rows = [
        budget.judge(
            _rate(o, key), chosen, note=f"vs {baseline}, {crops} crops; {_basis_note(o, key)}"
        )
        for budget, key in overall
    ]
    for dim, values in sorted((data.get("slices") or {}).items()):
        for value, row in sorted(values.items()):
            n = row.get("crops") or 0
            for budget, key in per_slice:
                one = budget.at(f"{dim}={value}")
                r = _rate(row, key)
                if n < s.min_slice_crops:
                    rows.append(one.skipped(f"{n} crops < min_slice_crops {s.min_slice_crops}",
                                            measured=r, source=chosen))  # fmt: skip
                elif (
                    key == "new_miss_rate"
                    and ((row.get(key) or {}).get("of") or 0) < s.min_slice_baseline_positives
                ):
                    calls = (row.get(key) or {}).get("of") or 0
                    what = "finds" if row.get("basis") == "labels" else "calls"
                    rows.append(one.skipped(
                        f"the baseline {what} {calls} pedestrian(s) in this slice < "
                        f"min_slice_baseline_positives {s.min_slice_baseline_positives}",
                        measured=r, source=chosen))  # fmt: skip
                else:
                    rows.append(one.judge(r, chosen, note=f"{n} crops; {_basis_note(row, key)}"))
    return rows
