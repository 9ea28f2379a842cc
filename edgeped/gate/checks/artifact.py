"""Budgets read off the artifact itself: its size (via the model card) and XNNPACK delegation."""

from __future__ import annotations

from edgeped.gate.budgets import Budgets
from edgeped.gate.checks.base import MIB, Budget, check
from edgeped.gate.evidence import Evidence, Source
from edgeped.gate.verdict import BudgetResult


@check("cost.size")
def size(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    budget = Budget("cost.size_mb", "max", b.cost.max_size_mb, "MiB")
    card = ev.card
    if not card.ok:
        return [
            budget.unusable(
                card, f"run `edgeped convert {ev.run_arg}`", f"run `edgeped convert {ev.run_arg}`"
            )
        ]
    model = card.data.get("model") or {}
    if ev.model_file.sha256 is None:
        return [budget.missing(f"{ev.model_file.path} does not exist", card)]
    if model.get("sha256") != ev.model_file.sha256:
        return [
            budget.stale(
                "the card describes",
                model.get("sha256"),
                ev.model_file.sha256,
                f"re-run `edgeped convert {ev.run_arg}`",
                card,
            )
        ]
    size_bytes = model.get("size_bytes")
    if size_bytes != ev.model_file.size_bytes:
        return [
            budget.unreadable(
                f"card size_bytes {size_bytes} differs from the file's {ev.model_file.size_bytes}",
                card,
            )
        ]
    return [budget.judge(size_bytes / MIB, card, note=f"{size_bytes} bytes")]


@check("device.delegation")
def delegation(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    """XNNPACK share of the ops, no op outside the allowed fallbacks, benches run with XNNPACK."""
    from edgeped.errors import EdgepedError
    from edgeped.gate.delegation import measure_delegation

    d = b.device
    share = Budget("device.xnnpack_share", "min", d.min_xnnpack_share)
    fallback = Budget("device.no_silent_fallback", "equal", True)
    model_src = Source(ev.model_file.path, ev.model_file.sha256)
    if ev.model_file.sha256 is None:
        note = f"{ev.model_file.path} does not exist"
        return [share.missing(note, model_src), fallback.missing(note, model_src)]
    try:
        split, digest = measure_delegation(ev.model_file.path)
    except EdgepedError as exc:
        return [share.unreadable(exc.problem, model_src)]
    source = Source(ev.model_file.path, digest)
    rows = [
        share.judge(
            split.share,
            source,
            note=f"{split.delegated_ops}/{split.total_ops} ops in XNNPACK (host LiteRT)",
        )
    ]
    unexpected = sorted(set(split.fallback_ops) - set(d.allowed_fallback_ops))
    mine, _, _ = ev.bench_split()
    no_xnn = [s for s in mine if (s.data.get("options") or {}).get("xnnpack") is False]
    problems = []
    if unexpected:
        problems.append(f"ops outside XNNPACK and not in allowed_fallback_ops: {unexpected}")
    if no_xnn:
        problems.append(f"benchmarked without XNNPACK: {', '.join(s.path for s in no_xnn)}")
    rows.append(
        fallback.verdict(
            not problems,
            no_xnn[0] if no_xnn and not unexpected else source,
            "; ".join(problems) or "every op delegated or allowed; benches used XNNPACK",
        )
    )
    return rows
