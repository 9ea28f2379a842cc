"""TFLite graph arithmetic for the peer/limit benchmarks: MACs per op, prefix models, summaries.

The graph logic (ops, shapes, MACs, prefix models) lives in `edgeped.profile.graph`, which
`edgeped profile` uses; this module re-exports it for the benchmark scripts and adds the
summaries they need (percentiles, sums per op class).
"""

from __future__ import annotations

import math

from edgeped.profile.graph import (  # noqa: F401 (re-exported for the benchmark scripts)
    FP32_FMLA_MAC_PER_INSN,
    INT8_SDOT_MAC_PER_INSN,
    GraphOp,
    graph_ops,
    mac_per_insn,
    num_ops,
    op_macs,
    per_op_deltas,
    prefix_model,
    total_macs,
)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default rule), q in [0, 100]."""
    if not values:
        raise ValueError("percentile of no values")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def by_class(ops: list[GraphOp], costs: list[float]) -> dict[str, dict]:
    """Sums MACs and a per-op cost (instructions or time) over op classes."""
    out: dict[str, dict] = {}
    for op, cost in zip(ops, costs, strict=True):
        row = out.setdefault(op.op_class, {"ops": 0, "macs": 0, "cost": 0.0})
        row["ops"] += 1
        row["macs"] += op.macs
        row["cost"] += cost
    return out
