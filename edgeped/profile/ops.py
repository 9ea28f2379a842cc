"""Per-op rows from prefix measurements: cost, share, MAC per instruction against the limit.

Pure functions on numbers: `profile_rows` turns the ops of a graph and, per core (or
target), the cost of the whole model and of every prefix model into one row per op, and
flags the ops that run far below the core's int8 limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeped.profile.graph import INT8_SDOT_MAC_PER_INSN, GraphOp, per_op_deltas

# The most int8 multiply-accumulates one NEON instruction does, per core model.
# cortex-a76 (Armv8.2 dot product): one 128-bit SDOT = 4 lanes x 4 int8 products = 16.
# cortex-a53/a72 (Armv8.0, no SDOT): the widest int8 MAC is SMLAL/SMLAL2 8B -> 8H, 8 int8
# products into 8 int16 lanes = 8 (XNNPACK's "mlal" kernels pair it with SADALP to widen
# into int32, so 16 MACs take SMULL + SMLAL2 + SADALP: 5.3 per instruction in practice).
INT8_MAC_PER_INSN_LIMIT = {
    "cortex-a53": 8,
    "cortex-a72": 8,
    "cortex-a76": INT8_SDOT_MAC_PER_INSN,
}
FAR_BELOW = 0.25  # an op under this fraction of its core's limit is flagged...
MIN_SHARE = 0.01  # ...if it takes at least this share of the invoke (tiny ops do not matter)
HEAVY_SHARE = 0.05  # an op without MACs that takes this share of the invoke is flagged
SUM_TOLERANCE = 0.02  # per-op costs must add up to the whole invoke within 2%


@dataclass(frozen=True)
class Measure:
    """What one core (or one timed target) measured: the whole model and each prefix."""

    where: str  # cortex-a76, or the target name for timed runs
    metric: str  # "instructions" | "time_us"
    whole: float
    prefixes: tuple[float, ...]
    limit: float | None = None  # int8 MAC per instruction; None for time
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def per_op(self) -> list[float]:
        return per_op_deltas(list(self.prefixes))

    @property
    def sum_over_whole(self) -> float:
        """Sum of the per-op costs divided by the whole-model cost (1.0 = exact)."""
        return sum(self.per_op) / self.whole if self.whole else float("nan")

    @property
    def sums_to_whole(self) -> bool:
        """Exact counts must add up within 2%; timings are noisy and are not held to it."""
        if self.metric != "instructions":
            return True
        return abs(self.sum_over_whole - 1.0) <= SUM_TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "metric": self.metric,
            "whole": self.whole,
            "prefixes": list(self.prefixes),
            "per_op": self.per_op,
            "sum_over_whole": self.sum_over_whole,
            "sums_to_whole": self.sums_to_whole,
            "limit_mac_per_insn": self.limit,
        }


def limit_for(core: str) -> float | None:
    """The int8 MAC-per-instruction limit of a core model, None if unknown."""
    return INT8_MAC_PER_INSN_LIMIT.get(core)


def op_flags(op: GraphOp, cost: float, whole: float, limit: float | None) -> list[str]:
    """Why an op deserves a look: far below the core's limit, or costly without MACs."""
    flags = []
    share = cost / whole if whole else 0.0
    if op.macs and limit and share >= MIN_SHARE and op.macs / cost < FAR_BELOW * limit:
        flags.append(f"below {FAR_BELOW:.0%} of the {limit:g} MAC/instr limit")
    if not op.macs and share >= HEAVY_SHARE:
        flags.append(f"no MACs, {share:.0%} of the invoke")
    return flags


def profile_rows(ops: list[GraphOp], measures: list[Measure]) -> list[dict[str, Any]]:
    """One row per op: type, shapes, MACs and, per measure, cost, share, MAC/instr, flags.

    Raises:
        ValueError: a measure has a different number of prefixes than the graph has ops.
    """
    for m in measures:
        if len(m.prefixes) != len(ops):
            raise ValueError(
                f"{m.where}: {len(m.prefixes)} prefix measurements for a graph of {len(ops)} ops"
            )
    per_op = {m.where: m.per_op for m in measures}
    rows = []
    for i, op in enumerate(ops):
        row = op.to_dict()
        row["cost"] = {}
        for m in measures:
            cost = per_op[m.where][i]
            entry = {"share": cost / m.whole if m.whole else None}
            if m.metric == "instructions":
                entry["instructions"] = cost
                entry["mac_per_insn"] = op.macs / cost if op.macs and cost > 0 else None
                entry["limit_fraction"] = (
                    entry["mac_per_insn"] / m.limit if entry["mac_per_insn"] and m.limit else None
                )
                entry["flags"] = op_flags(op, cost, m.whole, m.limit)
            else:
                entry["time_us"] = cost
                entry["flags"] = []
            row["cost"][m.where] = entry
        rows.append(row)
    return rows
