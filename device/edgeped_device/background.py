"""Background load: busy threads or processes that compete with the model for the CPU."""

from __future__ import annotations

import os
import sys
import threading

from .common import RunnerError

# The entry point a load process starts (runner.py --busy-worker), beside this package.
RUNNER_SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runner.py"
)


class BackgroundLoad:
    """Busy threads or processes that mimic other ECU tasks competing for CPU and cache."""

    def __init__(self, threads: int, processes: int, cpus, np) -> None:
        self.np = np
        self.stop = threading.Event()
        self.workers = []
        self.procs = []
        self.cpus = cpus
        self.buffers = [np.ones((256, 256), np.float32) for _ in range(threads)]
        self.stream = [np.zeros(1 << 21, np.float32) for _ in range(threads)]  # 8 MB each
        self.threads = threads
        self.processes = processes

    def start(self) -> None:
        for i in range(self.threads):
            worker = threading.Thread(target=self._spin, args=(i,), daemon=True)
            worker.start()
            self.workers.append(worker)
        if self.processes:
            import subprocess

            for _ in range(self.processes):
                try:
                    self.procs.append(
                        subprocess.Popen(
                            [sys.executable, RUNNER_SCRIPT, "--busy-worker"],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                        )
                    )
                except OSError as exc:
                    self.close()
                    raise RunnerError(
                        "load_processes_unavailable",
                        f"cannot start a background load process here ({exc})",
                        "use --load-threads instead (an emulated board without binfmt "
                        "cannot start child processes)",
                    ) from exc

    def _spin(self, i: int) -> None:
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)
        a, s = self.buffers[i], self.stream[i]
        while not self.stop.is_set():
            a @ a  # BLAS releases the GIL: real CPU contention
            s += 1.0  # streams 8 MB through the cache

    def close(self) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(timeout=5)
        for proc in self.procs:
            proc.kill()
            proc.wait()

    def describe(self) -> dict:
        return {
            "threads": self.threads,
            "processes": self.processes,
            "cpus": sorted(self.cpus) if self.cpus else None,
        }


def busy_worker() -> int:
    import numpy as np

    a = np.ones((256, 256), np.float32)
    s = np.zeros(1 << 21, np.float32)
    while True:
        a @ a
        s += 1.0
