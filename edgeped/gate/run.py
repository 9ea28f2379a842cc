"""Gate one model of a run directory: collect the evidence, run every check, return a Verdict."""

from __future__ import annotations

import os
from pathlib import Path

from edgeped.errors import EdgepedError
from edgeped.gate.budgets import Budgets
from edgeped.gate.checks import run_checks
from edgeped.gate.evidence import collect
from edgeped.gate.verdict import Verdict, card_binding


def gate_run(
    run_dir: str | os.PathLike,
    budgets: Budgets,
    *,
    model: str | None = None,
    baseline: str | os.PathLike | None = None,
    bench_files: tuple[str, ...] = (),
) -> Verdict:
    """Judges ``model`` (default: ``budgets.model``) in ``run_dir`` against every budget.

    Args:
        run_dir: the run directory (model, card, metrics.json, bench*.json).
        budgets: the budgets to apply.
        model: the model's name in the run directory, e.g. ``student_qat_int8``.
        baseline: a previous release's run directory for the change budgets.
        bench_files: more bench.json files to consider (e.g. kept outside the run).

    Raises:
        EdgepedError: the run directory or the baseline does not exist, or an explicit
            ``model`` names no .tflite in the run directory. Missing or bad
            evidence inside them is not an error: it becomes a failing row.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise EdgepedError(f"run directory not found: {root}", "pass the run directory to gate")
    if baseline is not None and not Path(baseline).is_dir():
        raise EdgepedError(
            f"baseline run directory not found: {baseline}",
            "pass the previous release's run directory to --baseline",
        )
    name = model or budgets.model
    if model is not None and not (root / f"{model}.tflite").is_file():
        present = sorted(p.stem for p in root.glob("*.tflite"))
        raise EdgepedError(
            f"no model named {model!r} in {root} (no {model}.tflite)",
            f"pass --model with one of: {', '.join(present)}"
            if present
            else "run `edgeped convert` on the run first",
        )
    evidence = collect(root, name, tuple(str(p) for p in bench_files), baseline)
    results = run_checks(budgets, evidence)
    return Verdict(
        run_dir=str(root),
        model=name,
        model_sha256=evidence.model_sha256,
        results=tuple(results),
        budgets=budgets.to_dict(),
        baseline=str(baseline) if baseline is not None else None,
        card=card_binding(
            evidence.card_facts(),
            evidence.card.sha256,
            Path(evidence.card.path).name,
        ),
    )
