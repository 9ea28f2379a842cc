"""The environment a measurement was taken in: machine, kernel, CPU, runtime versions."""

from __future__ import annotations

import os
import platform
import sys


def fingerprint(runtime: dict) -> dict:
    env = {
        "machine": platform.machine(),
        "kernel": platform.release(),
        "system": platform.system(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "numpy": runtime["numpy"],
        "runtime": runtime["name"],
        "runtime_version": runtime["version"],
        "cpu_count": os.cpu_count(),
        "hostname": platform.node(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        env["cpu_affinity"] = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        env["cpu_affinity"] = None
    cpu = {}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if (
                    key
                    in (
                        "model name",
                        "CPU part",
                        "CPU implementer",
                        "CPU variant",
                        "Hardware",
                        "Features",
                        "flags",
                    )
                    and key not in cpu
                ):
                    cpu[key] = value if key not in ("Features", "flags") else value[:200]
    except OSError:
        pass
    env["cpu"] = cpu
    env["cpu_model"] = cpu.get("model name") or _arm_core_name(cpu.get("CPU part"))
    base = "/sys/devices/system/cpu/cpu0/cpufreq/"
    for key, name in (
        ("governor", "scaling_governor"),
        ("freq_khz", "scaling_cur_freq"),
        ("max_freq_khz", "cpuinfo_max_freq"),
    ):
        try:
            with open(base + name) as handle:
                env[key] = handle.read().strip()
        except OSError:
            env[key] = None
    return env


def _arm_core_name(part):
    names = {
        "0xd03": "Cortex-A53",
        "0xd04": "Cortex-A35",
        "0xd05": "Cortex-A55",
        "0xd07": "Cortex-A57",
        "0xd08": "Cortex-A72",
        "0xd09": "Cortex-A73",
        "0xd0a": "Cortex-A75",
        "0xd0b": "Cortex-A76",
        "0xd0c": "Neoverse-N1",
        "0xd0d": "Cortex-A77",
        "0xd41": "Cortex-A78",
    }
    return names.get(part, part)
