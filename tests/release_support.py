"""Shared harness for the release, agent and crash tests: runs, bundles, a forked agent, checks.

The agent runs in a forked child of the test process (LiteRT already imported), so a
health check costs milliseconds and hundreds of SIGKILLs fit in seconds. The child
runs ``agent.main`` unchanged; the only addition is ``agent_common.STEP_HOOK``, set in the
child alone, which reports each step and waits for the parent's go-ahead, so the parent
can kill it exactly between two steps.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "device"))
# The agent behind device/agent.py, which tests drive directly.
from edgeped_device import common as device_common  # noqa: E402
from edgeped_device.agent import cli as agent  # noqa: E402
from edgeped_device.agent import common as agent_common  # noqa: E402
from edgeped_device.agent import device as agent_device  # noqa: E402

MODEL_NAME = "student_qat_int8"


def tiny_models(device_models: dict[str, Path]) -> dict[str, Path]:
    """Three distinct valid models with the production I/O, from conftest's device_models."""
    return {
        "good1": device_models["int8"],
        "good2": device_models["int8_image_only"],
        "good3": device_models["float"],
    }


_DATA: list[Path] = []
_SCORES: dict[str, tuple] = {}


def tiny_data() -> Path:
    """A small synthetic dataset (made once per test process) whose test split gives golden crops."""
    if not _DATA:
        import atexit
        import shutil

        from edgeped.data.synthetic import SynthConfig, write_synthetic

        root = Path(tempfile.mkdtemp(prefix="edgeped-release-data-"))
        atexit.register(shutil.rmtree, root, True)
        write_synthetic(
            str(root / "data"),
            SynthConfig(drives=20, crops_per_drive=20, positive_rate=0.3, seed=5, workers=1),
            split_fractions=(0.5, 0.2, 0.3),
        )
        _DATA.append(root / "data")
    return _DATA[0]


def _eval_scores(run: Path, model_file: Path, data: Path) -> tuple:
    """What `edgeped eval` records for the test split: crop ids, labels, int8 outputs, scores."""
    from edgeped.rollout.replay import write_replay
    from edgeped.targets.bench import BenchOptions, compute_golden, preprocess_from_card

    key = f"{sha256(model_file)}:{data}"
    if key not in _SCORES:
        work = Path(tempfile.mkdtemp(prefix="scores-", dir=run))
        write_replay(work / "test.npz", data, "test")
        (work / "pre.json").write_text(json.dumps(preprocess_from_card(model_file)))
        compute_golden(
            model_file, work / "test.npz", work / "out.npz", BenchOptions(), work / "pre.json"
        )
        with np.load(work / "test.npz") as t, np.load(work / "out.npz") as o:
            _SCORES[key] = (t["crop_id"], t["label"], o["raw"], o["probabilities"])
        import shutil

        shutil.rmtree(work)
    return _SCORES[key]


def make_run(
    run: Path,
    model: Path,
    statuses: dict[str, str] | None = None,
    data: Path | None = None,
    **budgets,
) -> Path:
    """A run directory as convert + eval + gate leave it: model, card (with the threshold
    eval chose), config, metrics.json with per-crop test scores, gate.json."""
    from edgeped.convert.model_card import build_card, write_card
    from edgeped.data.preprocess import Preprocessing
    from edgeped.evaluate.scores import write_test_scores
    from edgeped.fileio import sha256_file, write_json_atomic
    from edgeped.gate.verdict import BudgetResult, Status, Verdict, card_binding

    run.mkdir(parents=True, exist_ok=True)
    data_bytes = model.read_bytes()
    model_file = run / f"{MODEL_NAME}.tflite"
    model_file.write_bytes(data_bytes)
    card = build_card(
        data_bytes,
        file_name=f"{MODEL_NAME}.tflite",
        mode="qat_int8",
        architecture="tiny",
        parameters=0,
        prep=Preprocessing(mean=(1.0,) * 6, std=(2.0,) * 6),
        source={},
    )
    write_card(run / f"{MODEL_NAME}.card.json", card)
    data = data or tiny_data()
    ids, labels, raw, probs = _eval_scores(run, model_file, data)
    # The threshold eval would choose: here the median output, so both decisions occur.
    flat = raw.reshape(len(raw), -1)[:, 0]
    values = np.unique(flat)
    q = values[len(values) // 2]
    score = float(probs.reshape(-1)[flat >= q].min())
    card["threshold"] = {
        "score": score,
        "int8": int(q) if np.issubdtype(raw.dtype, np.integer) else 0,
        "int8_rule": "pedestrian when output q >= int8",
    }
    write_card(run / f"{MODEL_NAME}.card.json", card)
    scores_sha = write_test_scores(
        run / "test_scores.npz", ids, labels, {MODEL_NAME: probs.reshape(-1)}
    )
    write_json_atomic(
        run / "metrics.json",
        {
            "kind": "edgeped.metrics",
            "dataset": {"root": str(data)},
            "test_scores": {"file": "test_scores.npz", "sha256": scores_sha},
        },
    )
    write_json_atomic(
        run / "config.json",
        {"kind": "edgeped.train_config", "dataset_manifest_sha256": "d" * 64, "config": {}},
    )
    statuses = statuses or {"quality.recall": "pass", "cost.size_mb": "pass"}
    rows = tuple(
        BudgetResult(budget=b, status=Status(s), direction="min", limit=1.0)
        for b, s in statuses.items()
    )
    runtime = {"max_e2e_ms_per_crop_p95": 12.0, "target_kinds": ["ssh"], **budgets}
    verdict = Verdict(
        run_dir=str(run),
        model=MODEL_NAME,
        model_sha256=sha256_file(run / f"{MODEL_NAME}.tflite"),
        results=rows,
        budgets={"runtime": runtime},
        card=card_binding(card, sha256_file(run / f"{MODEL_NAME}.card.json")),
    )
    write_json_atomic(run / "gate.json", verdict.to_dict())
    return run


def make_bundle(run: Path, out: Path, **options) -> Path:
    from edgeped.rollout.bundle import ReleaseOptions, plan_release, write_bundle

    return write_bundle(plan_release(run, ReleaseOptions(**options)), out)


def rewrite_manifest(bundle: Path, name: str) -> None:
    """Re-hashes one file into release.json (a consistent bundle with changed content)."""
    manifest = json.loads((bundle / "release.json").read_text())
    path = bundle / name
    manifest["files"][name] = {"sha256": sha256(path), "size_bytes": path.stat().st_size}
    if name == "card.json" and "card" in manifest:
        manifest["card"]["sha256"] = sha256(path)
    (bundle / "release.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def tamper_golden(bundle: Path) -> Path:
    """Makes a bundle whose golden outputs disagree with its model by one int8 step on one crop.

    It passes every check on arrival (the manifest is re-hashed): only the health check,
    which runs the model on the golden crops, can catch it.
    """
    with np.load(bundle / "golden.npz", allow_pickle=False) as npz:
        golden = {k: npz[k] for k in npz.files}
    golden["raw"] = golden["raw"].copy()
    golden["raw"][0, 0] = np.int8(golden["raw"][0, 0] + (1 if golden["raw"][0, 0] < 127 else -1))
    os.chmod(bundle / "golden.npz", 0o644)
    np.savez(bundle / "golden.npz", **golden)
    rewrite_manifest(bundle, "golden.npz")
    return bundle


def release_sha(bundle: Path) -> str:
    """A release's identity on the board: the sha256 of its release.json."""
    return sha256(Path(bundle) / "release.json")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- board trust


def provision(root: Path, keys: tuple[Path, ...] = (), allow_unsigned: bool = True) -> Path:
    """Writes the board's agent.json: trusted public keys (.pub files) and allow_unsigned.

    The slot tests run on a development board that allows unsigned bundles (every reply
    says so); tests/test_signing.py provisions boards that require signatures.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "kind": "edgeped.agent_config",
        "allow_unsigned": allow_unsigned,
        "trusted_keys": [Path(k).read_text().strip() for k in keys],
    }
    (root / "agent.json").write_text(json.dumps(config, indent=2))
    return root / "agent.json"


def _provision_default(argv: list[str]) -> None:
    if "--root" in argv:
        root = Path(argv[argv.index("--root") + 1])
        if not (root / "agent.json").exists():
            provision(root)


# --------------------------------------------------------------------------- the forked agent


@dataclass
class Run:
    """One agent command: whether it was killed, the steps it reported, its exit and JSON."""

    killed: bool
    steps: list[str] = field(default_factory=list)
    code: int | None = None
    result: dict | None = None


def preload_runtime() -> None:
    """Imports the runner and LiteRT in this process, so forked agents start warm."""
    device_common.import_runtime()


def run_agent(
    argv: list[str],
    kill_at: int | None = None,
    jitter_s: float | None = None,
    on_step: dict | None = None,
    provisioned: bool = True,
) -> Run:
    """Runs ``agent.main(argv)`` in a forked child; SIGKILLs it after step ``kill_at``.

    Args:
        kill_at: kill when the child reports its ``kill_at``-th step (1-based), before it
            may continue: exactly between that step and the next. None runs to the end.
        jitter_s: instead of killing at the marker, let the child go on for this many
            seconds first (the kill then lands inside a step, e.g. mid-write).
        provisioned: give a root without agent.json the development trust (unsigned
            allowed); False leaves it as it is.
    """
    if provisioned:
        _provision_default(argv)
    mark_r, mark_w = os.pipe()
    go_r, go_w = os.pipe()
    out = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:  # the child: the agent, unchanged, plus the step hook
        code = 97
        try:
            os.close(mark_r)
            os.close(go_w)
            os.dup2(out.fileno(), 1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            sys.stdout = os.fdopen(1, "w", closefd=False)
            sys.stderr = os.fdopen(2, "w", closefd=False)

            def hook(name: str) -> None:
                os.write(mark_w, name.encode() + b"\n")
                if os.read(go_r, 1) != b"g":
                    os._exit(96)

            agent_common.STEP_HOOK = hook
            code = agent.main(argv)
            sys.stdout.flush()
        except BaseException:  # noqa: BLE001 - the child must never return into pytest
            code = 98
        finally:
            os._exit(code)
    os.close(mark_w)
    os.close(go_r)
    run = Run(killed=False)
    with os.fdopen(mark_r, "rb") as marks:
        for raw in marks:
            run.steps.append(raw.decode().strip())
            if kill_at is not None and len(run.steps) == kill_at:
                if jitter_s is not None:
                    os.write(go_w, b"g" * 64)  # let it run on through the next steps
                    time.sleep(jitter_s)
                os.kill(pid, signal.SIGKILL)
                run.killed = True
                break
            if on_step and run.steps[-1] in on_step:
                on_step[run.steps[-1]]()
            try:
                os.write(go_w, b"g")
            except BrokenPipeError:
                break
    os.close(go_w)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        run.killed = True
    else:
        run.code = os.WEXITSTATUS(status)
        out.seek(0)
        lines = [ln for ln in out.read().decode().splitlines() if ln.startswith("{")]
        run.result = json.loads(lines[-1]) if lines else None
    out.close()
    return run


# --------------------------------------------------------------------------- consistency


def current_sha(root: Path) -> str | None:
    """The store sha256 ``current`` resolves to (through its slot), or None."""
    link = root / "current"
    if not os.path.lexists(link):
        return None
    target = Path(os.path.realpath(link))
    assert target.parent == (root / "store").resolve(), f"current escapes the store: {target}"
    return target.name


def check_after_kill(root: Path, allowed: set) -> str | None:
    """After a SIGKILL: state parses, current is one of ``allowed`` and its model verifies."""
    state = json.loads((root / "state.json").read_text()) if (root / "state.json").exists() else {}
    assert state == {} or state["kind"] == "edgeped.device_state"
    sha = current_sha(root)
    assert sha in allowed, f"current -> {sha}, expected one of {allowed}"
    if sha is not None:
        assert sha256(root / "current" / "release.json") == sha, "current's release does not verify"
        manifest = json.loads((root / "current" / "release.json").read_text())
        assert sha256(root / "current" / "model.tflite") == manifest["model"]["sha256"]
    return sha


def check_consistent(root: Path, allowed: set) -> str | None:
    """After a command that completed: no transaction, links agree with state, all verifies."""
    state = agent_device.Device(str(root)).load_state()
    assert state["transaction"] is None, f"transaction left behind: {state['transaction']}"
    sha = check_after_kill(root, allowed)
    active = state["active"]
    assert (state["slots"][active]["sha256"] if active else None) == sha
    if active:
        assert os.readlink(root / "current") == f"slots/{active}"
        assert state["slots"][active]["status"] == "good"
    for slot, record in state["slots"].items():
        link = root / "slots" / slot
        linked = Path(os.path.realpath(link)).name if os.path.lexists(link) else None
        assert linked == record["sha256"], f"slot {slot} link {linked} != state {record}"
    for name in os.listdir(root / "store"):
        assert sha256(root / "store" / name / "release.json") == name
    assert os.listdir(root / "incoming") == [], "staging left behind"
    history = root / "history.jsonl"
    for line in history.read_text().splitlines() if history.exists() else []:
        json.loads(line)
    return sha
