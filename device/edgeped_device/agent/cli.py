"""The agent's command line: parse, run one command, print one JSON line, exit code."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys

from .commands import COMMANDS
from .common import EXIT_PROBLEM, MAX_WAIT_S, RESULT_KIND, SCHEMA_VERSION, AgentError, progress
from .device import Device
from .trust import load_trust, trust_summary

DESCRIPTION = "The slot agent: installs, health-checks and rolls back models on the board itself."


def parse_args(argv):
    p = argparse.ArgumentParser(description=DESCRIPTION)
    p.add_argument("--root", required=True, help="the device root (store, slots, state)")
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait for the device lock before refusing [0]",
    )
    p.add_argument("--runs", type=int, default=50, help="timed invokes in a health check")
    sub = p.add_subparsers(dest="command", required=True)
    inst = sub.add_parser(
        "install", help="store a bundle, switch to it, check it, keep or roll back"
    )
    inst.add_argument("source", help="bundle directory, or - for a tar stream on stdin")
    inst.add_argument("--attempts", type=int, default=3, help="health check attempts")
    inst.add_argument(
        "--allow-downgrade",
        action="store_true",
        help="install a signed release older than the newest this board has run",
    )
    inst.add_argument(
        "--latency-ms-p95",
        type=float,
        default=None,
        help="e2e per-crop p95 budget (real boards only; unset: recorded, not judged)",
    )
    inst.add_argument(
        "--keep-extra",
        type=int,
        default=2,
        help="stored models kept beyond the slots, previous and candidate",
    )
    rb = sub.add_parser("rollback", help="switch back to the previous (or a stored) model")
    rb.add_argument("--to", help="sha256 (or a unique prefix) of a stored model")
    rb.add_argument("--reason", help="why, for the history")
    sub.add_parser("status", help="slots, states, store and history")
    sub.add_parser("recover", help="finish or undo an interrupted command (run at boot)")
    tr = sub.add_parser(
        "trust",
        help="show the board's trust (agent.json), or add keys and set the signature policy",
    )
    tr.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="LINE",
        help="trust this public key: the line of a .pub `edgeped keygen` wrote (repeat)",
    )
    policy = tr.add_mutually_exclusive_group()
    policy.add_argument(
        "--allow-unsigned",
        dest="allow_unsigned",
        action="store_const",
        const=True,
        default=None,
        help="install unsigned bundles too (development boards; every reply says so)",
    )
    policy.add_argument(
        "--require-signed",
        dest="allow_unsigned",
        action="store_const",
        const=False,
        help="install only bundles signed by a trusted key",
    )
    tr.add_argument(
        "--replace",
        action="store_true",
        help="the --key lines become the only trusted keys (else they are added)",
    )
    p.add_argument("--history", type=int, default=20, help="history lines in status")
    args = p.parse_args(argv)
    for name in ("attempts", "runs"):
        if getattr(args, name, 1) < 1:
            p.error(f"--{name} must be >= 1")
    if not 0.0 <= args.wait <= MAX_WAIT_S:  # also false for nan: never an endless wait
        p.error(f"--wait must be a number of seconds from 0 to {MAX_WAIT_S:g}, got {args.wait}")
    args.latency_ms_p95 = getattr(args, "latency_ms_p95", None)
    return args


def _trust_or_problem(dev: Device) -> dict:
    try:
        return trust_summary(load_trust(dev))
    except AgentError as exc:
        return {"mode": "config_invalid", "problem": exc.problem, "trusted_keys": []}


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # A dropped SSH session must not stop a switch half-way: finish the work regardless.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    dev = Device(args.root)
    progress(f"pid {os.getpid()} {args.command}")
    try:
        dev.init()
        code, payload = COMMANDS[args.command](dev, args)
        try:
            state = dev.load_state()
        except AgentError as exc:  # the command is done: report it, not a reread problem
            state = None
            payload.setdefault("warnings", []).append(exc.problem)
        result = {
            "ok": True,
            "trust": _trust_or_problem(dev),
            "kind": RESULT_KIND,
            "schema_version": SCHEMA_VERSION,
            "command": args.command,
            "root": dev.root,
            "state": state,
            **payload,
        }
    except AgentError as exc:
        code = EXIT_PROBLEM
        result = {
            "ok": False,
            "kind": RESULT_KIND,
            "schema_version": SCHEMA_VERSION,
            "command": args.command,
            "root": dev.root,
            "error": {"code": exc.code, "problem": exc.problem, "fix": exc.fix},
            "trust": _trust_or_problem(dev),
        }
        with contextlib.suppress(AgentError, OSError):
            result["state"] = dev.load_state()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.write(json.dumps(result, sort_keys=True, default=str) + "\n")
        sys.stdout.flush()
    return code
