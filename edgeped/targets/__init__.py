"""Where a model runs: the host, the emulated arm64 board, or an ECU over SSH."""

from edgeped.targets.base import RunnerJob, Target
from edgeped.targets.bench import BenchOptions, BenchResult, bench_model, deploy_model
from edgeped.targets.registry import register_kind, resolve_target

__all__ = [
    "BenchOptions",
    "BenchResult",
    "RunnerJob",
    "Target",
    "bench_model",
    "deploy_model",
    "register_kind",
    "resolve_target",
]
