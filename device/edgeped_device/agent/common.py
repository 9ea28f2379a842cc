"""What every part of the slot agent shares: names of things, errors, progress and steps."""

from __future__ import annotations

import contextlib
import json
import sys
import time

RESULT_KIND = "edgeped.agent_result"
STATE_KIND = "edgeped.device_state"
RELEASE_KIND = "edgeped.release"
SCHEMA_VERSION = 1
SLOTS = ("a", "b")
REQUIRED_FILES = ("model.tflite", "card.json", "golden.npz", "crops.npz", "preprocess.json")
OPTIONAL_FILES = ("drift_reference.json",)
SIGNATURE_FILE = "release.sig"  # outside release.json's file list: it signs release.json
BUNDLE_FILES = ("release.json", SIGNATURE_FILE, *REQUIRED_FILES, *OPTIONAL_FILES)
CONFIG_KIND = "edgeped.agent_config"
SIGNATURE_MESSAGE_VERSION = "edgeped-release-signature-v1"  # edgeped/rollout/signing.py
EXIT_NOT_INSTALLED = 1
EXIT_PROBLEM = 3
MAX_WAIT_S = 3600.0  # the longest --wait for the device lock


# Called with each step name after the step is durable. Production never sets it; the
# crash-test harness does, in a forked child, to kill the agent exactly between steps.
STEP_HOOK = None


class AgentError(Exception):
    """A problem with a stable code, what went wrong and how to fix it."""

    def __init__(self, code: str, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.code, self.problem, self.fix = code, problem, fix


def progress(message: str) -> None:
    # The host may have gone (dropped SSH session): progress is best effort, the work is not.
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"edgeped-agent: {message}\n")
        sys.stderr.flush()


def step(name: str) -> None:
    progress(f"step {name}")
    if STEP_HOOK is not None:
        STEP_HOOK(name)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_json(path: str):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
