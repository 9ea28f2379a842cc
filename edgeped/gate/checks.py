"""One check per budget family, registered by name; each turns evidence into result rows.

A check never guesses: a figure that is absent, made for another model's sha256, or
unreadable becomes a MISSING/STALE/UNREADABLE row, and the gate fails closed on it.
Latency and memory are judged only on real targets: emulated time and RSS (which
includes QEMU) say nothing about a board.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from edgeped.gate.budgets import Budgets, normalise_core
from edgeped.gate.evidence import Evidence, Source
from edgeped.gate.verdict import BudgetResult, Status

Check = Callable[[Budgets, Evidence], list[BudgetResult]]
CHECKS: dict[str, Check] = {}

MIB = 1024 * 1024


def check(name: str) -> Callable[[Check], Check]:
    """Registers a check under ``name`` (its rows' budget names start with it)."""

    def register(fn: Check) -> Check:
        if name in CHECKS:
            raise ValueError(f"check {name!r} is already registered")
        CHECKS[name] = fn
        return fn

    return register


def _row(
    budget: str,
    direction: str,
    limit,
    unit: str,
    *,
    status: Status,
    measured=None,
    source: Source | None = None,
    note: str = "",
) -> BudgetResult:
    return BudgetResult(
        budget=budget,
        status=status,
        direction=direction,
        limit=limit,
        measured=measured,
        unit=unit,
        source=source.path if source else None,
        source_sha256=source.sha256 if source else None,
        note=note,
    )


def _judge(
    budget: str, direction: str, limit, unit: str, measured, source: Source, note: str = ""
) -> BudgetResult:
    if measured is None or isinstance(measured, bool) or not isinstance(measured, (int, float)):
        return _row(
            budget,
            direction,
            limit,
            unit,
            status=Status.UNREADABLE,
            source=source,
            note=note or f"{source.path} has no numeric value for this budget",
        )
    ok = measured >= limit if direction == "min" else measured <= limit
    return _row(
        budget,
        direction,
        limit,
        unit,
        status=Status.PASS if ok else Status.FAIL,
        measured=measured,
        source=source,
        note=note,
    )


# --- metrics.json --------------------------------------------------------------------


def _metrics(
    ev: Evidence, budget: str, direction: str, limit, unit: str
) -> tuple[dict | None, BudgetResult | None]:
    """The model's metrics entry, or the row that says why it cannot be used."""
    src = ev.metrics
    if not src.ok:
        status = Status.MISSING if src.missing else Status.UNREADABLE
        fix = "run `edgeped eval RUN_DIR`" if src.missing else "re-run `edgeped eval RUN_DIR`"
        return None, _row(
            budget, direction, limit, unit, status=status, source=src, note=f"{src.problem}; {fix}"
        )
    entry = ev.metrics_entry()
    if not isinstance(entry, dict):
        return None, _row(
            budget,
            direction,
            limit,
            unit,
            status=Status.MISSING,
            source=src,
            note=f"metrics.json has no model {ev.model!r}; run `edgeped eval`",
        )
    made_for = ev.metrics_sha256()
    if made_for != ev.model_sha256:
        return None, _row(
            budget,
            direction,
            limit,
            unit,
            status=Status.STALE,
            source=src,
            note=f"metrics are for sha256 {str(made_for)[:12]}, the model is "
            f"{str(ev.model_sha256)[:12]}; re-run `edgeped eval`",
        )
    return entry, None


def _test_figure(budget: str, key: str, direction: str, limit: float):
    def run(b: Budgets, ev: Evidence) -> list[BudgetResult]:
        entry, problem = _metrics(ev, budget, direction, limit, "")
        if problem:
            return [problem]
        test = entry.get("test") or {}
        return [
            _judge(
                budget,
                direction,
                limit,
                "",
                test.get(key),
                ev.metrics,
                note="test split, threshold chosen on val",
            )
        ]

    return run


@check("quality")
def quality(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    q = b.quality
    return [
        *_test_figure("quality.recall", "recall", "min", q.min_recall)(b, ev),
        *_test_figure("quality.fpr", "fpr", "max", q.max_fpr)(b, ev),
        *_test_figure("quality.auc_pr", "auc_pr", "min", q.min_auc_pr)(b, ev),
    ]


@check("quality.slice_recall")
def slice_recall(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    q = b.quality
    entry, problem = _metrics(ev, "quality.slice_recall", "min", q.min_slice_recall, "")
    if problem:
        return [problem]
    slices = entry.get("test_slices")
    if not isinstance(slices, dict) or not slices:
        return [
            _row(
                "quality.slice_recall",
                "min",
                q.min_slice_recall,
                "",
                status=Status.MISSING,
                source=ev.metrics,
                note="metrics.json has no test_slices for this model",
            )
        ]
    rows = []
    for dim in sorted(slices):
        for value in sorted(slices[dim]):
            s = slices[dim][value]
            name = f"quality.slice_recall[{dim}={value}]"
            positives = s.get("positives")
            if positives == 0:
                continue  # a negatives-only slice (e.g. hard_negative=pole) has no recall
            if not isinstance(positives, int):
                rows.append(
                    _row(
                        name,
                        "min",
                        q.min_slice_recall,
                        "",
                        status=Status.UNREADABLE,
                        source=ev.metrics,
                        note="slice has no positives count",
                    )
                )
            elif positives < q.min_slice_positives:
                rows.append(
                    _row(
                        name,
                        "min",
                        q.min_slice_recall,
                        "",
                        status=Status.SKIPPED,
                        measured=s.get("recall"),
                        source=ev.metrics,
                        note=f"{positives} positives < min_slice_positives {q.min_slice_positives}",
                    )
                )
            else:
                rows.append(
                    _judge(
                        name,
                        "min",
                        q.min_slice_recall,
                        "",
                        s.get("recall"),
                        ev.metrics,
                        note=f"{positives} positives",
                    )
                )
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
    specs = (
        ("change.recall_drop_vs_float", c.max_recall_drop),
        ("change.flip_rate_vs_float", c.max_flip_rate),
    )
    entry, problem = _metrics(ev, specs[0][0], "max", c.max_recall_drop, "")
    if problem:
        return [
            problem,
            _row(
                specs[1][0],
                "max",
                c.max_flip_rate,
                "",
                status=problem.status,
                source=ev.metrics,
                note=problem.note,
            ),
        ]
    if not _is_quantized(ev, entry):
        return [
            _row(
                n,
                "max",
                lim,
                "",
                status=Status.SKIPPED,
                source=ev.metrics,
                note="a float model has no float parent",
            )
            for n, lim in specs
        ]
    found = [
        c
        for c in ev.metrics.data.get("comparisons") or []
        if isinstance(c, dict) and c.get("quantized") == ev.model
    ]
    if not found:
        return [
            _row(
                n,
                "max",
                lim,
                "",
                status=Status.MISSING,
                source=ev.metrics,
                note="metrics.json compares no float parent with this model; evaluate "
                "the float model in the same run",
            )
            for n, lim in specs
        ]
    comp = found[0]
    delta = (comp.get("delta") or {}).get("recall")
    drop = -delta if isinstance(delta, (int, float)) else None
    parent = f"vs {comp.get('float')}"
    return [
        _judge(specs[0][0], "max", c.max_recall_drop, "", drop, ev.metrics, note=parent),
        _judge(
            specs[1][0], "max", c.max_flip_rate, "", comp.get("flip_rate"), ev.metrics, note=parent
        ),
    ]


# --- bench.json ----------------------------------------------------------------------


def _bench_problem(
    ev: Evidence, budget: str, direction: str, limit, unit: str, wanted: str
) -> BudgetResult:
    """The row for a bench-based budget with no usable measurement: why, and the fix."""
    mine, stale, bad = ev.bench_split()
    if bad:
        return _row(
            budget,
            direction,
            limit,
            unit,
            status=Status.UNREADABLE,
            source=bad[0],
            note=f"{bad[0].problem}; re-run the benchmark",
        )
    if stale and not mine:
        return _row(
            budget,
            direction,
            limit,
            unit,
            status=Status.STALE,
            source=stale[0],
            note=f"bench results are for sha256 {stale[0].data['model_sha256'][:12]}, "
            f"the model is {str(ev.model_sha256)[:12]}; benchmark this model",
        )
    return _row(budget, direction, limit, unit, status=Status.MISSING, note=wanted)


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


def _real_benches(ev: Evidence, kinds: tuple[str, ...]) -> tuple[list[Source], list[Source]]:
    """This model's results on real targets of the allowed kinds, and all the others."""
    mine, _, bad = ev.bench_split()
    if bad:
        return [], []
    real = [s for s in mine if not is_emulated(s.data) and s.data.get("target_kind") in kinds]
    return real, [s for s in mine if s not in real]


def _real_target(budget: str, key: str, limit: float, unit: str):
    """A maximum judged on the worst real-target bench result; emulated ones never count."""

    def run(b: Budgets, ev: Evidence) -> list[BudgetResult]:
        kinds = b.runtime.target_kinds
        real, others = _real_benches(ev, kinds)
        emulated = [s for s in others if is_emulated(s.data)]
        elsewhere = [s for s in others if not is_emulated(s.data)]
        _, stale, bad = ev.bench_split()
        stale_real = [
            s for s in stale if not is_emulated(s.data) and s.data.get("target_kind") in kinds
        ]
        if not real and stale_real and not bad:
            return [
                _row(
                    budget,
                    "max",
                    limit,
                    unit,
                    status=Status.STALE,
                    source=stale_real[0],
                    note=f"the real-target result is for sha256 "
                    f"{stale_real[0].data['model_sha256'][:12]}, the model is "
                    f"{str(ev.model_sha256)[:12]}; run `edgeped deploy` again",
                )
            ]
        if not real:
            if elsewhere:
                wanted = (
                    f"results only from target kinds "
                    f"{sorted({str(s.data.get('target_kind')) for s in elsewhere})}, and "
                    f"runtime.target_kinds = {list(kinds)}: measure on the board with "
                    "`edgeped deploy MODEL --host <board>`"
                )
            elif emulated:
                wanted = (
                    "only emulated measurements exist "
                    f"({', '.join(s.path for s in emulated)}): emulated time and RSS say "
                    "nothing about a board, so this budget needs a real target; run "
                    "`edgeped deploy MODEL --host <board>`"
                )
            else:
                wanted = (
                    "no real-target bench.json for this model; run "
                    "`edgeped deploy MODEL --host <board>`"
                )
            return [_bench_problem(ev, budget, "max", limit, unit, wanted)]
        values = [(s.data.get(key), s) for s in real]
        bad = [s for v, s in values if not isinstance(v, (int, float)) or isinstance(v, bool)]
        if bad:
            return [_judge(budget, "max", limit, unit, None, bad[0])]
        worst, source = max(values, key=lambda vs: vs[0])
        return [
            _judge(
                budget,
                "max",
                limit,
                unit,
                worst,
                source,
                note=f"{source.data.get('target_name')} (worst of {len(real)} real target"
                f"{'s' if len(real) > 1 else ''})",
            )
        ]

    return run


@check("runtime")
def runtime(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    r = b.runtime
    return [
        *_real_target(
            "runtime.e2e_ms_per_crop_p95", "e2e_ms_per_crop_p95", r.max_e2e_ms_per_crop_p95, "ms"
        )(b, ev),
        *_real_target("runtime.invoke_ms_p95", "invoke_ms_p95", r.max_invoke_ms_p95, "ms")(b, ev),
        *_real_target("runtime.peak_rss_mb", "peak_rss_mb", r.max_peak_rss_mb, "MiB")(b, ev),
    ]


@check("cost.instructions")
def instructions(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    rows = []
    mine, _, bad = ev.bench_split()
    for core, limit in b.cost.max_instructions_per_invoke.items():
        name = f"cost.instructions_per_invoke[{core}]"
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
                _bench_problem(
                    ev,
                    name,
                    "max",
                    limit,
                    "instr",
                    f"no bench.json with instruction counts on "
                    f"{core}; run `edgeped bench MODEL --target arm64-emu --core "
                    f"{core.removeprefix('cortex-')} --parity --out RUN_DIR/bench_{core}.json`",
                )
            )
            continue
        worst = max(found, key=lambda s: s.data["instructions_per_invoke"])
        rows.append(
            _judge(
                name,
                "max",
                limit,
                "instr",
                worst.data["instructions_per_invoke"],
                worst,
                note="emulated board (exact count)",
            )
        )
    return rows


@check("device.parity")
def parity(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    name = "device.parity"
    if not b.device.parity_required:
        return [
            _row(
                name,
                "equal",
                True,
                "",
                status=Status.SKIPPED,
                note="device.parity_required = false",
            )
        ]
    mine, _, bad = ev.bench_split()
    checked = [s for s in mine if isinstance(s.data.get("parity_ok"), bool)] if not bad else []
    if not checked:
        return [
            _bench_problem(
                ev,
                name,
                "equal",
                True,
                "",
                "no bench.json with a parity "
                "check for this model; run `edgeped bench MODEL --parity` on a "
                "target or `edgeped deploy`",
            )
        ]
    failed = [s for s in checked if not s.data["parity_ok"]]
    source = failed[0] if failed else checked[0]
    targets = ", ".join(str(s.data.get("target_name")) for s in checked)
    return [
        _row(
            name,
            "equal",
            True,
            "",
            status=Status.FAIL if failed else Status.PASS,
            measured=not failed,
            source=source,
            note=f"outputs match the host on: {targets}"
            if not failed
            else f"{(source.data.get('parity') or {}).get('mismatches')} outputs differ "
            f"on {source.data.get('target_name')}",
        )
    ]


# --- model card and the model itself -------------------------------------------------


@check("cost.size")
def size(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    name, limit = "cost.size_mb", b.cost.max_size_mb
    card = ev.card
    if not card.ok:
        return [
            _row(
                name,
                "max",
                limit,
                "MiB",
                status=Status.MISSING if card.missing else Status.UNREADABLE,
                source=card,
                note=f"{card.problem}; run `edgeped convert`",
            )
        ]
    model = card.data.get("model") or {}
    if ev.model_file.sha256 is None:
        return [
            _row(
                name,
                "max",
                limit,
                "MiB",
                status=Status.MISSING,
                source=card,
                note=f"{ev.model_file.path} does not exist",
            )
        ]
    if model.get("sha256") != ev.model_file.sha256:
        return [
            _row(
                name,
                "max",
                limit,
                "MiB",
                status=Status.STALE,
                source=card,
                note=f"card describes sha256 {str(model.get('sha256'))[:12]}, the model "
                f"is {ev.model_file.sha256[:12]}; re-run `edgeped convert`",
            )
        ]
    size_bytes = model.get("size_bytes")
    if size_bytes != ev.model_file.size_bytes:
        return [
            _row(
                name,
                "max",
                limit,
                "MiB",
                status=Status.UNREADABLE,
                source=card,
                note=f"card size_bytes {size_bytes} differs from the file's "
                f"{ev.model_file.size_bytes}",
            )
        ]
    return [_judge(name, "max", limit, "MiB", size_bytes / MIB, card, note=f"{size_bytes} bytes")]


@check("device.delegation")
def delegation(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    """XNNPACK share of the ops, no op outside the allowed fallbacks, benches run with XNNPACK."""
    from edgeped.errors import EdgepedError
    from edgeped.gate.delegation import measure_delegation

    d = b.device
    share_name, fallback_name = "device.xnnpack_share", "device.no_silent_fallback"
    model_src = Source(ev.model_file.path, ev.model_file.sha256)
    if ev.model_file.sha256 is None:
        return [
            _row(
                n,
                dirn,
                lim,
                "",
                status=Status.MISSING,
                source=model_src,
                note=f"{ev.model_file.path} does not exist",
            )
            for n, dirn, lim in (
                (share_name, "min", d.min_xnnpack_share),
                (fallback_name, "equal", True),
            )
        ]
    try:
        split, digest = measure_delegation(ev.model_file.path)
    except EdgepedError as exc:
        return [
            _row(
                share_name,
                "min",
                d.min_xnnpack_share,
                "",
                status=Status.UNREADABLE,
                source=model_src,
                note=exc.problem,
            )
        ]
    source = Source(ev.model_file.path, digest)
    rows = [
        _judge(
            share_name,
            "min",
            d.min_xnnpack_share,
            "",
            split.share,
            source,
            note=f"{split.delegated_ops}/{split.total_ops} ops in XNNPACK (host LiteRT)",
        )
    ]
    unexpected = sorted({op for op in split.fallback_ops} - set(d.allowed_fallback_ops))
    mine, _, _ = ev.bench_split()
    no_xnn = [s for s in mine if (s.data.get("options") or {}).get("xnnpack") is False]
    problems = []
    if unexpected:
        problems.append(f"ops outside XNNPACK and not in allowed_fallback_ops: {unexpected}")
    if no_xnn:
        problems.append(f"benchmarked without XNNPACK: {', '.join(s.path for s in no_xnn)}")
    rows.append(
        _row(
            fallback_name,
            "equal",
            True,
            "",
            measured=not problems,
            status=Status.FAIL if problems else Status.PASS,
            source=no_xnn[0] if no_xnn and not unexpected else source,
            note="; ".join(problems) or "every op delegated or allowed; benches used XNNPACK",
        )
    )
    return rows


# --- against a baseline release --------------------------------------------------------


@check("change.vs_baseline")
def change_vs_baseline(b: Budgets, ev: Evidence) -> list[BudgetResult]:
    """Recall drop and real-target latency regression against a previous release's run."""
    base = ev.baseline
    if base is None:
        return []
    c = b.change
    rows = []
    name = "change.recall_drop_vs_baseline"
    entry, problem = _metrics(ev, name, "max", c.max_recall_drop, "")
    base_entry, base_problem = _metrics(base, name, "max", c.max_recall_drop, "")
    if problem:
        rows.append(problem)
    elif base_problem:
        rows.append(replace(base_problem, note=f"baseline: {base_problem.note}"))
    else:
        now, then = (
            (entry.get("test") or {}).get("recall"),
            (base_entry.get("test") or {}).get("recall"),
        )
        drop = then - now if all(isinstance(v, (int, float)) for v in (now, then)) else None
        rows.append(
            _judge(
                name,
                "max",
                c.max_recall_drop,
                "",
                drop,
                ev.metrics,
                note=f"baseline recall {then} from {base.metrics.path} "
                f"({str(base.metrics.sha256)[:12]})",
            )
        )
    rows.append(_flip_rate_vs_baseline(c.max_flip_rate, ev, base))
    name = "change.latency_regression_pct_vs_baseline"
    real, _ = _real_benches(ev, b.runtime.target_kinds)
    base_real, _ = _real_benches(base, b.runtime.target_kinds)
    pairs = [
        (s, t)
        for s in real
        for t in base_real
        if s.data.get("target_name") == t.data.get("target_name")
    ]
    if not pairs:
        rows.append(
            _row(
                name,
                "max",
                c.max_latency_regression_pct,
                "%",
                status=Status.MISSING,
                note="needs real-target bench results of this model and of the "
                "baseline's on the same target name",
            )
        )
        return rows
    worst = None
    for s, t in pairs:
        now, then = s.data.get("e2e_ms_per_crop_p95"), t.data.get("e2e_ms_per_crop_p95")
        if not all(isinstance(v, (int, float)) and v > 0 for v in (now, then)):
            rows.append(_judge(name, "max", c.max_latency_regression_pct, "%", None, s))
            return rows
        pct = 100.0 * (now - then) / then
        if worst is None or pct > worst[0]:
            worst = (pct, s, t)
    pct, s, t = worst
    rows.append(
        _judge(
            name,
            "max",
            c.max_latency_regression_pct,
            "%",
            pct,
            s,
            note=f"e2e p95 on {s.data.get('target_name')}; baseline "
            f"{t.data.get('e2e_ms_per_crop_p95'):.3f} ms from {t.path} "
            f"({str(t.sha256)[:12]})",
        )
    )
    return rows


def _decisions(ev: Evidence, name: str, limit: float, who: str):
    """(crop_id -> decision) arrays of ``ev``'s model on its test split, or the row saying why not."""
    import numpy as np

    entry, problem = _metrics(ev, name, "max", limit, "")
    if problem:
        return None, replace(problem, note=f"{who}: {problem.note}")
    scores = ev.scores
    if scores is None or not scores.ok:
        status = Status.MISSING if scores is None or scores.missing else Status.UNREADABLE
        return None, _row(
            name,
            "max",
            limit,
            "",
            status=status,
            source=scores,
            note=f"{who}: {scores.problem if scores else 'no per-crop scores'}; "
            "re-run `edgeped eval` on that run",
        )
    key = f"score/{ev.model}"
    threshold = (entry.get("threshold") or {}).get("threshold")
    if key not in scores.data or not isinstance(threshold, (int, float)):
        return None, _row(
            name,
            "max",
            limit,
            "",
            status=Status.MISSING,
            source=scores,
            note=f"{who}: no per-crop scores or threshold for {ev.model}; "
            "re-run `edgeped eval` on that run",
        )
    ids = scores.data["crop_id"]
    return (ids, np.asarray(scores.data[key]) >= threshold), None


def _flip_rate_vs_baseline(limit: float, ev: Evidence, base: Evidence) -> BudgetResult:
    """Share of test crops whose decision differs from the baseline release's at its threshold."""
    import numpy as np

    name = "change.flip_rate_vs_baseline"
    now, problem = _decisions(ev, name, limit, "this run")
    if problem:
        return problem
    then, problem = _decisions(base, name, limit, "baseline")
    if problem:
        return problem
    (ids_now, dec_now), (ids_then, dec_then) = now, then
    common, i_now, i_then = np.intersect1d(ids_now, ids_then, return_indices=True)
    if len(common) != len(ids_now) or len(common) != len(ids_then):
        return _row(
            name,
            "max",
            limit,
            "",
            status=Status.MISSING,
            source=ev.scores,
            note=f"the two runs were tested on different crops ({len(common)} in common "
            f"of {len(ids_now)} and {len(ids_then)}); evaluate both on one dataset "
            "(`edgeped eval BASELINE_RUN --data DATA`)",
        )
    flips = dec_now[i_now] != dec_then[i_then]
    return _judge(
        name,
        "max",
        limit,
        "",
        float(flips.mean()),
        ev.scores,
        note=f"{int(flips.sum())} of {len(common)} test crops; baseline scores "
        f"{base.scores.path} ({str(base.scores.sha256)[:12]})",
    )


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
