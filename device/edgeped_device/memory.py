"""Resident memory of this process, read from /proc (peak reset where the kernel allows)."""

from __future__ import annotations

import resource


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def process_peak_mb(startup_kb, phase_kb):
    known = [kb for kb in (startup_kb, phase_kb) if kb]
    if known:
        return max(known) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_status_kb(field: str):
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
