#!/usr/bin/env python3
"""The slot agent: installs, health-checks and rolls back models on the board itself.

Ships with runner.py and the edgeped_device package beside it (the agent's code is
edgeped_device/agent/) and needs only Python 3.9+ (plus the runner's numpy and LiteRT for
health checks), so the switch and the rollback never depend on a live SSH session.

Device root layout (RAUC-style)::

    store/<release>/     immutable: model.tflite, card.json, release.json, golden.npz,
                         crops.npz, preprocess.json (+ drift_reference.json); checked on arrival.
                         <release> is the sha256 of release.json, which lists the sha256 of
                         every other file: a changed card (threshold, calibration,
                         preprocessing) or waiver is a new release, never the old copy
    slots/a, slots/b     symlinks to ../store/<release>
    current              symlink to slots/<a|b>: the model the vehicle runs
    state.json           active slot, previous and candidate, per-slot status, attempts left,
                         and the transaction in progress (write-ahead, so any step resumes)
    history.jsonl        append-only log, one JSON object per line
    lock                 fcntl.flock: one mutating command at a time
    incoming/            staging for bundles in flight (cleared by the next command)
    quarantine/          store entries that stopped verifying, moved aside
    agent.json           the board's trust: Ed25519 public keys whose signed releases it
                         installs, and whether unsigned ones are allowed (never written by
                         an install; provisioned with the board image or by ``trust``,
                         which writes it atomically under the lock, see docs/rollout.md)

Every write goes to a temporary file, is fsynced, renamed over the old one, and the
directory is fsynced. A link swap is a symlink to a temporary name, rename(2), fsync of
the directory. Every command first finishes or undoes an interrupted one (``recover``).

Prints one JSON line on stdout; progress and step markers on stderr. Exit codes: 0 done,
1 the install did not take (health check failed: rolled back, or refused), 3 a problem
reported as {"ok": false, "error": {"code", "problem", "fix"}}, 2 bad arguments.
"""

from __future__ import annotations

import os
import sys

# The package ships beside this file; put it on the path when the agent is loaded by path.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from edgeped_device.agent.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
