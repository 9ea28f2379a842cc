"""What every synthetic generator shares: its base config, draws and the drive loop.

A generator is a frozen config class (a `GeneratorConfig`: the fields every
generator has, validated once here) and a `write` function that renders the
dataset into a folder through the staged writers of `edgeped.data.shards`, so
an interrupted or failed write never touches the dataset already there. The
generators are found by name in `edgeped.data.generator_registry`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

# The rate fields every generator has; each must be a share in [0, 1].
_SHARED_RATES = (
    "positive_rate",
    "hard_negative_rate",
    "night_rate",
    "dusk_rate",
    "rain_rate",
    "metadata_missing_rate",
)


@dataclass(frozen=True)
class GeneratorConfig:
    """The fields every generator has. Rates are per drive (conditions) or per crop."""

    drives: int = 600
    crops_per_drive: int = 50
    positive_rate: float = 0.025
    hard_negative_rate: float = 0.25
    night_rate: float = 0.25
    dusk_rate: float = 0.15
    rain_rate: float = 0.2
    metadata_missing_rate: float = 0.08
    seed: int = 0
    workers: int = 0  # 0 = one per core

    RATES: ClassVar[tuple[str, ...]] = _SHARED_RATES

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            wanted = int if f.type in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{f.name} must be a number, got {value!r}")
            if wanted is int and value != int(value):
                raise ValueError(f"{f.name} must be a whole number, got {value!r}")
        for name in self.RATES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.night_rate + self.dusk_rate > 1.0:
            raise ValueError(
                f"night_rate + dusk_rate must be <= 1, got {self.night_rate + self.dusk_rate}"
            )
        for name in ("drives", "crops_per_drive"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.crops_per_drive > 9999:
            raise ValueError(f"crops_per_drive must be <= 9999, got {self.crops_per_drive}")
        if self.drives > 999999:
            raise ValueError(f"drives must be <= 999999, got {self.drives}")
        if not 0 <= self.workers <= MAX_WORKERS:
            raise ValueError(
                f"workers must be in 0..{MAX_WORKERS} (0 = one per core), got {self.workers}"
            )
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | None = None):
        from edgeped.config import from_mapping

        return from_mapping(cls, data, where=where or f"{cls.__name__} config")


def pick(u: float, rates: dict[str, float], default: str) -> str:
    """The first name whose cumulative rate exceeds the uniform draw `u`, else `default`."""
    acc = 0.0
    for name, rate in rates.items():
        acc += rate
        if u < acc:
            return name
    return default


def _chunk(args: tuple[Callable[[dict, list[int]], Any], dict, list[int]]) -> Any:
    render, config, drives = args
    return render(config, drives)


def iter_drives(
    render: Callable[[dict, list[int]], Any], config: GeneratorConfig, chunk_drives: int
) -> Iterator[Any]:
    """Yields `render(config_dict, drive_indices)` per chunk of drives, in order.

    `render` is a module-level function, so it pickles to worker processes (one per
    core when `config.workers` is 0); the output does not depend on the count.
    """
    workers = config.workers or (os.cpu_count() or 1)
    args = [
        (render, config.to_dict(), list(range(s, min(s + chunk_drives, config.drives))))
        for s in range(0, config.drives, chunk_drives)
    ]
    if workers == 1:
        yield from map(_chunk, args)
        return
    yield from worker_map(_chunk, args, min(workers, len(args)))


def _ignore_interrupts() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Forked while the parent held SIGTERM/SIGHUP (signals_held), the worker inherited a
    # handler that only notes them: give it back the default, so it can be ended.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


# More worker processes than this is a typo (each holds a renderer in memory).
MAX_WORKERS = 256


class Terminated(SystemExit):
    """SIGTERM reached the parent while workers ran: the workers were ended first.

    A SystemExit (status 143, as the default SIGTERM action gives), so cleanup on the
    way out runs (the staging folder is removed) and no traceback is printed.
    """

    def __init__(self) -> None:
        super().__init__(143)


def _end_workers(pool) -> None:
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()


@contextlib.contextmanager
def _sigterm_ends(pool) -> Iterator[None]:
    """While workers run, SIGTERM to the parent terminates them and raises Terminated."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        _end_workers(pool)
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def worker_map(fn: Callable[[Any], Any], args: list, workers: int) -> Iterator[Any]:
    """`map(fn, args)` over worker processes, in order; Ctrl-C stops it cleanly.

    Workers ignore SIGINT (the terminal sends it to the whole process group), so
    only the parent handles it: pending work is cancelled and the parent waits
    for the item each worker holds, so no worker writes after the caller has
    cleaned up, and no worker prints a traceback.
    """
    from edgeped.fileio import signals_held

    pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_interrupts)
    try:
        with _sigterm_ends(pool):
            # The workers fork inside map(). A Ctrl-C in that window would land in the
            # at-fork handlers, which swallow it in the parent ("Exception ignored") and
            # print a traceback in a child that has not run its initializer yet; held,
            # it is raised here once the workers are up.
            with signals_held():
                results = pool.map(fn, args)
            yield from results
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
