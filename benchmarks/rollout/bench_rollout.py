"""How long the board's slot agent takes per command: install, bad install, rollback, status.

Runs the real agent (`python device/agent.py`, a fresh process each time, as the host
runs it) against a device root on a real disk (so every fsync counts), on bundles made
from a run directory's model by `edgeped release`. Records wall seconds per command
(median, min, max over --repeats), the bundle size and the machine's load.

    python -m benchmarks.rollout.bench_rollout RUN_DIR [--model student_qat_int8] [--repeats 5]
        [--out benchmarks/results/rollout/rollout-<YYYYMMDD>.json]

RUN_DIR needs gate.json and eval's test scores (golden crops are real test crops);
non-passed budgets are waived for the benchmark (recorded). Bundles are signed with a
throw-away key that each device root trusts, so the timings include verification. The
Markdown table is written beside the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness

AGENT = harness.REPO_ROOT / "device" / "agent.py"
TOPIC, SUBJECT = "rollout", "rollout"
DEVICE_ROOT = "device root on the repository's disk (.cache/)"


def _agent(root: Path, *args: str) -> tuple[float, int, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(AGENT), "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, OPENBLAS_NUM_THREADS="1"),
        check=False,
    )
    seconds = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return seconds, proc.returncode, json.loads(lines[-1]) if lines else {}


def _bundles(run: Path, model: str, work: Path, key: Path) -> dict[str, Path]:
    import numpy as np

    from edgeped.fileio import read_json, sha256_file
    from edgeped.gate.verdict import card_binding
    from edgeped.rollout.bundle import ReleaseOptions, Waiver, plan_release, write_bundle
    from edgeped.rollout.signing import sign_bundle

    gate = read_json(run / "gate.json", "gate verdict")
    waivers = tuple(
        Waiver(r["budget"], "benchmark of the agent, not a release")
        for r in gate["results"]
        if r["status"] not in ("pass", "skipped")
    )
    plan = plan_release(run, ReleaseOptions(model=model, waivers=waivers, sign_key=key))
    good = write_bundle(plan, work / "good")
    # The second release is the run's PTQ model: a distinct model of the same size.
    second = "student_ptq_int8" if (run / "student_ptq_int8.tflite").is_file() else None
    out = {"good": good}
    if not second:
        raise SystemExit("the run needs student_ptq_int8 too (a second distinct model)")
    if second:
        gate2 = work / "gate-second.json"
        # The benchmark times the agent, not the gate: the QAT verdict, restamped.
        card2 = run / f"{second}.card.json"
        data = dict(
            gate,
            model=second,
            model_sha256=sha256_file(run / f"{second}.tflite"),
            card=card_binding(read_json(card2, "model card"), sha256_file(card2)),
        )
        gate2.write_text(json.dumps(data))
        plan2 = plan_release(
            run, ReleaseOptions(model=second, waivers=waivers, gate_file=gate2, sign_key=key)
        )
        out["second"] = write_bundle(plan2, work / "second")
    # The bad release: the second model with golden outputs one int8 step off on one crop.
    bad = shutil.copytree(out["second"], work / "bad")
    with np.load(bad / "golden.npz") as npz:
        golden = {k: npz[k] for k in npz.files}
    golden["raw"] = golden["raw"].copy()
    golden["raw"][0, 0] = golden["raw"][0, 0] + (1 if golden["raw"][0, 0] < 127 else -1)
    np.savez(bad / "golden.npz", **golden)
    manifest = json.loads((bad / "release.json").read_text())
    manifest["files"]["golden.npz"] = {
        "sha256": sha256_file(bad / "golden.npz"),
        "size_bytes": (bad / "golden.npz").stat().st_size,
    }
    (bad / "release.json").write_text(json.dumps(manifest))
    sign_bundle(bad, key)  # a genuine release whose health check fails on the board
    out["bad"] = bad
    return out


def summarise(times: dict[str, list[float]], bundle_bytes: int, repeats: int) -> dict[str, Any]:
    """The measured part of the result: seconds per command (median, min, max)."""
    return {
        "device_root": DEVICE_ROOT,
        "bundle_bytes": bundle_bytes,
        "repeats": repeats,
        "seconds": {
            name: {"median": statistics.median(v), "min": min(v), "max": max(v)}
            for name, v in times.items()
        },
    }


def render(result: dict[str, Any]) -> str:
    """The Markdown table of one result (written beside its JSON)."""
    rows = [
        f"| {n} | {s['median']:.2f} s | {s['min']:.2f}-{s['max']:.2f} s |"
        for n, s in result["seconds"].items()
    ]
    table = "\n".join(["| command | median | min-max |", "|---|---|---|", *rows])
    load = result["loadavg_before_after"][1] or [float("nan")]
    return (
        f"Agent wall time per command ({result['repeats']} repeats, fresh process each, "
        f"bundle {result['bundle_bytes'] / 1024:.0f} KiB, load average {load[0]:.1f} "
        f"on {result['machine']['cpu_count']} CPUs)\n\n{table}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--model", default="student_qat_int8")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON file [default: benchmarks/results/rollout/rollout-<day>.json]",
    )
    args = parser.parse_args(argv)
    cache = harness.REPO_ROOT / ".cache"
    cache.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-rollout-", dir=cache))
    try:
        from edgeped.rollout.signing import generate_keypair

        key, public, _ = generate_keypair(work / "bench")
        trust = {
            "kind": "edgeped.agent_config",
            "allow_unsigned": False,
            "trusted_keys": [public.read_text().strip()],
        }
        bundles = _bundles(args.run_dir, args.model, work, key)
        record = harness.provenance("rollout", argv)
        times: dict[str, list[float]] = {}
        for i in range(args.repeats):
            root = work / f"dev{i}"
            root.mkdir()
            (root / "agent.json").write_text(json.dumps(trust))
            steps = [
                ("install (first)", ["install", str(bundles["good"])], 0),
                ("install that fails and rolls back", ["install", str(bundles["bad"])], 1),
                ("install over a good model", ["install", str(bundles["second"])], 0),
                ("rollback to previous", ["rollback"], 0),
                ("status (store re-verified)", ["status"], 0),
            ]
            for name, step_argv, want in steps:
                seconds, code, result = _agent(root, *step_argv)
                if code != want:
                    raise SystemExit(f"{name}: exit {code}, expected {want}: {result}")
                times.setdefault(name, []).append(seconds)
        size = sum(p.stat().st_size for p in bundles["good"].iterdir())
        record.update(summarise(times, size, args.repeats))
        harness.finish(record)
        markdown = render(record)
        out = args.out or harness.result_path(TOPIC, SUBJECT)
        harness.write_result(out, record, markdown)
        print(markdown, end="")
        print(f"wrote {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
