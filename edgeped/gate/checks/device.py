"""Budgets measured on a target (bench.json): latency and RSS on real boards only,
exact instruction counts on the emulated board, and output parity with the host.

Emulated time and RSS (which includes QEMU) say nothing about a board, so latency and
memory budgets never take them.
"""

from __future__ import annotations

from edgeped.gate.budgets import Budgets, normalise_core
from edgeped.gate.checks.base import Budget, check
from edgeped.gate.evidence import Evidence, Source
from edgeped.gate.verdict import BudgetResult


def bench_problem(ev: Evidence, budget: Budget, wanted: str) -> BudgetResult:
    """The row for a bench-based budget with no usable measurement: why, and the fix."""
    mine, stale, bad = ev.bench_split()
    if bad:
        return budget.unreadable(f"{bad[0].problem}; re-run the benchmark", bad[0])
    if stale and not mine:
        return budget.not_this_model(
            ev, "bench results are for", stale[0].data["model_sha256"], wanted, stale[0]
        )
    return budget.missing(wanted)


def is_emulated(bench: dict) -> bool:
    """True unless every place bench.json records it says the target was real hardware."""
    target = bench.get("target") if isinstance(bench.get("target"), dict) else {}
    runner = bench.get("runner") if isinstance(bench.get("runner"), dict) else {}
    flags = (bench.get("emulated"), target.get("emulated"), runner.get("emulated"))
    if (
        any(flag is not False and flag is not None for flag in flags)
        or bench.get("emulated") is None
    ):
        return True
    return "emu" in str(bench.get("target_kind", "")) or "emu" in str(target.get("kind", ""))


def real_benches(ev: Evidence, kinds: tuple[str, ...]) -> tuple[list[Source], list[Source]]:
    """This model's results on real targets of the allowed kinds, and all the others."""
    mine, _, bad = ev.bench_split()
    if bad:
        return [], []
    real = [s for s in mine if not is_emulated(s.data) and s.data.get("target_kind") in kinds]
    return real, [s for s in mine if s not in real]


def _no_real_result(ev: Evidence, budget: Budget, kinds: tuple[str, ...]) -> BudgetResult:
    _, others = real_benches(ev, kinds)
    emulated = [s for s in others if is_emulated(s.data)]
    elsewhere = [s for s in others if not is_emulated(s.data)]
    _, stale, bad = ev.bench_split()
    stale_real = [
        s for s in stale if not is_emulated(s.data) and s.data.get("target_kind") in kinds
    ]
    if stale_real and not bad:
        return budget.not_this_model(
            ev,
            "real-target results are for",
            stale_real[0].data["model_sha256"],
            f"run `edgeped deploy {ev.model_arg} --host BOARD` (BOARD: a board in targets.toml)",
            stale_real[0],
        )
    if elsewhere:
        wanted = (
            f"results only from target kinds "
            f"{sorted({str(s.data.get('target_kind')) for s in elsewhere})}, and "
            f"runtime.target_kinds = {list(kinds)}: measure on the board with "
            f"`edgeped deploy {ev.model_arg} --host BOARD` (BOARD: a board in targets.toml)"
        )
    elif emulated:
        wanted = (
            "only emulated measurements exist "
            f"({', '.join(s.path for s in emulated)}): emulated time and RSS say "
            "nothing about a board, so this budget needs a real target; run "
            f"`edgeped deploy {ev.model_arg} --host BOARD` (BOARD: a board in targets.toml)"
        )
    else:
        wanted = (
            "no real-target bench.json for this model; run "
            f"`edgeped deploy {ev.model_arg} --host BOARD` (BOARD: a board in targets.toml)"
        )
    return bench_problem(ev, budget, wanted)


def _worst_real(ev: Evidence, budget: Budget, key: str, kinds: tuple[str, ...]) -> BudgetResult:
    """A maximum judged on the worst real-target bench result."""
    real, _ = real_benches(ev, kinds)
    if not real:
        return _no_real_result(ev, budget, kinds)
    values = [(s.data.get(key), s) for s in real]
    bad = [s for v, s in values if not isinstance(v, (int, float)) or isinstance(v, bool)]
    if bad:
        return budget.judge(None, bad[0])
    worst, source = max(values, key=lambda vs: vs[0])
    plural = "s" if len(real) > 1 else ""
    return budget.judge(
        worst,
        source,
        note=f"{source.data.get('target_name')} (worst of {len(real)} real target{plural})",
    )


@check("runtime")
def runtime(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    r = b.runtime
    kinds = r.target_kinds
    return [
        _worst_real(
            ev,
            Budget("runtime.e2e_ms_per_crop_p95", "max", r.max_e2e_ms_per_crop_p95, "ms"),
            "e2e_ms_per_crop_p95",
            kinds,
        ),
        _worst_real(
            ev,
            Budget("runtime.invoke_ms_p95", "max", r.max_invoke_ms_p95, "ms"),
            "invoke_ms_p95",
            kinds,
        ),
        _worst_real(
            ev, Budget("runtime.peak_rss_mb", "max", r.max_peak_rss_mb, "MiB"), "peak_rss_mb", kinds
        ),
    ]


@check("cost.instructions")
def instructions(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    rows = []
    mine, _, bad = ev.bench_split()
    for core, limit in b.cost.max_instructions_per_invoke.items():
        budget = Budget(f"cost.instructions_per_invoke[{core}]", "max", limit, "instr")
        found = (
            [
                s
                for s in mine
                if normalise_core(s.data.get("core") or "") == core
                and s.data.get("instructions_per_invoke") is not None
            ]
            if not bad
            else []
        )
        if not found:
            rows.append(
                bench_problem(
                    ev,
                    budget,
                    f"no bench.json with instruction counts on {core}; run "
                    f"`edgeped bench {ev.model_arg} --target arm64-emu --core "
                    f"{core.removeprefix('cortex-')} --parity` (writes RUN_DIR/bench/)",
                )
            )
            continue
        worst = max(found, key=lambda s: s.data["instructions_per_invoke"])
        rows.append(
            budget.judge(
                worst.data["instructions_per_invoke"], worst, note="emulated board (exact count)"
            )
        )
    return rows


@check("device.parity")
def parity(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    budget = Budget("device.parity", "equal", True)
    if not b.device.parity_required:
        return [budget.skipped("device.parity_required = false")]
    mine, _, bad = ev.bench_split()
    checked = [s for s in mine if isinstance(s.data.get("parity_ok"), bool)] if not bad else []
    if not checked:
        return [
            bench_problem(
                ev,
                budget,
                "no bench.json with a parity check for this model; run "
                f"`edgeped bench {ev.model_arg} --target arm64-emu --parity` (or `edgeped "
                "deploy` on a board)",
            )
        ]
    failed = [s for s in checked if not s.data["parity_ok"]]
    source = failed[0] if failed else checked[0]
    targets = ", ".join(str(s.data.get("target_name")) for s in checked)
    note = (
        f"outputs match the host on: {targets}"
        if not failed
        else f"{(source.data.get('parity') or {}).get('mismatches')} outputs differ "
        f"on {source.data.get('target_name')}"
    )
    return [budget.verdict(not failed, source, note)]
