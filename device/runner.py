#!/usr/bin/env python3
"""Benchmarks one .tflite model on the machine it runs on and prints one JSON result.

This file and the edgeped_device package beside it are copied to the target (an ECU, an
emulated arm64 board or the host) as one folder and run there. They need only Python
3.9+, numpy and ai-edge-litert (or tflite-runtime): never TensorFlow, never the edgeped
package.

What it measures: init time, first-inference time, per-invoke latency percentiles
(p50/p90/p95/p99 with distribution-free confidence bounds), end-to-end time per crop
including preprocessing, peak RSS of the load+invoke phase and of the whole process,
output parity against golden outputs computed on the host, an environment fingerprint
and, on the emulated board, guest instructions per invoke.

Shadow mode (``MODEL --shadow CANDIDATE --shadow-spec S.json --shadow-log LOG``) loads
the baseline and the candidate in this one process, feeds both the same crops and
appends one CRC-checked record per crop (id, time, both scores and decisions at their own
thresholds, both invoke times, metadata, image brightness/contrast) to an append-only
log; it also measures what shadowing costs: added time per crop, added peak RSS and, on
the emulated board, added instructions per crop.

Exit codes: 0 success (parity may still have failed: see "parity.ok"), 3 a problem
reported as {"ok": false, "error": {"code", "problem", "fix"}} on stdout, 2 bad arguments.
"""

from __future__ import annotations

import os
import sys

# The package ships beside this file; put it on the path when the runner is loaded by path.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from edgeped_device.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
