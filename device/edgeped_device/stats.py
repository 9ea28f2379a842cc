"""Latency statistics: percentiles with distribution-free bounds, and timed loops."""

from __future__ import annotations

import math
import time


def percentile_ci(sorted_values, q: float, confidence: float = 0.95):
    """Distribution-free CI for the q-quantile from order statistics (binomial ranks).

    Returns (low, high) or (None, None) when there are too few samples for the bound.
    """
    n = len(sorted_values)
    if n == 0:
        return None, None
    alpha = 1.0 - confidence
    logp, log1p = math.log(q), math.log1p(-q)
    cdf, acc = [], 0.0
    for k in range(n + 1):
        acc += math.exp(
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * logp
            + (n - k) * log1p
        )
        cdf.append(acc)
    # lower rank l (1-based): largest with P(B <= l-1) <= alpha/2
    lower = None
    for rank in range(1, n + 1):
        if cdf[rank - 1] <= alpha / 2:
            lower = rank
        else:
            break
    upper = None
    for rank in range(1, n + 1):
        if cdf[rank - 1] >= 1 - alpha / 2:
            upper = rank
            break
    low = sorted_values[lower - 1] if lower is not None else None
    high = sorted_values[upper - 1] if upper is not None else None
    return low, high


def summarise(samples_ms, np) -> dict:
    values = sorted(float(v) for v in samples_ms)
    arr = np.asarray(values)
    out = {
        "n": len(values),
        "mean": float(arr.mean()),
        "min": values[0],
        "max": values[-1],
        "std": float(arr.std(ddof=1)) if len(values) > 1 else 0.0,
    }
    for name, q in (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99)):
        out[name] = float(np.percentile(arr, q * 100))
        low, high = percentile_ci(values, q)
        out[f"{name}_ci95"] = [low, high]
    return out


def timed(step, runs: int, max_seconds: float):
    """Wall-clock microseconds of up to `runs` calls of step() within max_seconds."""
    clock = time.perf_counter
    samples = []
    t_end = clock() + max_seconds
    while len(samples) < runs:
        t0 = clock()
        step()
        samples.append((clock() - t0) * 1e6)
        if t0 > t_end:
            break
    return samples
