"""Guest instruction counting on the emulated board: the marker syscall and its regions.

tools/qemu_insncount.c counts the guest instructions between a start and a stop marker
and appends one count per region to the file named by EDGEPED_INSN_OUT.
"""

from __future__ import annotations

import os

from .common import RunnerError

MARKER_START = 0x45504544494E5331  # must match tools/qemu_insncount.c
MARKER_STOP = 0x45504544494E5330


def marker(fd: int, value: int) -> None:
    """A syscall the instruction-counting QEMU plugin watches for: lseek on /dev/null.

    It succeeds without side effects, so no Python exception (with its allocation noise)
    lands inside the counted region.
    """
    os.lseek(fd, value, os.SEEK_SET)


def insn_out_path() -> str:
    """Where the counting plugin writes its counts (EDGEPED_INSN_OUT, set by the wrapper).

    Raises:
        RunnerError: not running under the counting plugin.
    """
    path = os.environ.get("EDGEPED_INSN_OUT")
    if not path:
        raise RunnerError(
            "insn_unavailable",
            "--insn-count needs the QEMU counting plugin",
            "run on the emulated board (EDGEPED_INSN_OUT set by the wrapper)",
        )
    return path


def count_regions(step, runs: int, path: str):
    """Instructions of `runs` calls of step(), each its own counted region (median, all)."""
    with open(path) as handle:
        before = len(handle.read().split())
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        for _ in range(runs):
            marker(fd, MARKER_START)
            step()
            marker(fd, MARKER_STOP)
    finally:
        os.close(fd)
    with open(path) as handle:
        counts = [int(v) for v in handle.read().split()[before:]]
    if len(counts) != runs:
        raise RunnerError(
            "insn_unavailable",
            f"the plugin recorded {len(counts)} of {runs} regions",
            "check that qemu-aarch64 was started with the libinsncount plugin",
        )
    return int(sorted(counts)[len(counts) // 2]), counts
