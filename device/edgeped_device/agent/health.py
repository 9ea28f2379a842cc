"""The health check of a release on the board: integrity, golden parity, decisions, latency.

It runs the model through the runner's own modules (model, preprocessing, golden outputs);
numpy and LiteRT are imported only when a check runs.
"""

from __future__ import annotations

import os
import time

from ..common import RunnerError, import_runtime
from ..inputs import load_crops
from ..model import ModelIO, make_interpreter, read_model
from ..parity import compute_outputs, load_golden
from ..preprocess import Preprocessor, load_image_rule, load_preprocess
from .common import read_json
from .store import file_problems


class _RunnerArgs:
    threads = 1
    xnnpack = True
    delegate = None
    delegate_option: list = []


def health_check(folder: str, manifest: dict, latency_ms_p95=None, runs: int = 50) -> dict:
    """Golden-crop parity (bit-exact for int8), outputs in the card's range, latency.

    ``folder`` is a store entry or ``current`` (after the switch: the path the vehicle
    reads). ``latency_ms_p95`` is the e2e-per-crop budget, judged only when given (a
    real board); otherwise the figure is recorded, not judged.
    """
    checks = []

    def add(name, ok, detail, retryable=False):
        checks.append({"check": name, "ok": bool(ok), "detail": detail, "retryable": retryable})
        return ok

    def result(extra=None):
        failed = [c for c in checks if not c["ok"]]
        return {
            "ok": not failed,
            "checks": checks,
            "reason": "; ".join(f"{c['check']}: {c['detail']}" for c in failed) or None,
            "retryable": bool(failed) and all(c["retryable"] for c in failed),
            **(extra or {}),
        }

    problems = file_problems(folder, manifest)
    if not add("integrity", not problems, "; ".join(problems) or "every file matches its sha256"):
        return result()
    try:
        np, Interpreter, load_delegate, resolver, runtime = import_runtime()
        model = os.path.join(folder, "model.tflite")
        data = read_model(model)
        interpreter = make_interpreter(
            data, model, Interpreter, load_delegate, resolver, _RunnerArgs
        )
        io = ModelIO(interpreter, np)
        io.resize(1)
        mean, std, clip, _ = load_preprocess(os.path.join(folder, "preprocess.json"))
        rule = load_image_rule(os.path.join(folder, "preprocess.json"))
        images, metadata, _ = load_crops(os.path.join(folder, "crops.npz"), np, 1, 0)
        golden = load_golden(os.path.join(folder, "golden.npz"), np)
    except RunnerError as exc:
        add("load", False, f"{exc.code}: {exc.problem}")
        return result()
    add("load", True, f"{runtime['name']} {runtime['version']}")
    card = read_json(os.path.join(folder, "card.json"))
    add("io", *_io_matches(io.quantisation(), card))
    pre = Preprocessor(io, mean, std, clip, rule)
    raw, probs = compute_outputs(pre, images, metadata, np)
    add("parity", *_parity(raw, probs, golden, manifest["model"]["sha256"], np))
    add("decisions", *_decisions(raw, probs, card, os.path.join(folder, "crops.npz"), np))
    finite = bool(np.all(np.isfinite(probs)))
    low, high = (float(probs.min()), float(probs.max())) if finite else (None, None)
    add(
        "range",
        finite and 0.0 <= low and high <= 1.0,
        f"probabilities in [{low}, {high}], card range [0, 1]" if finite else "non-finite output",
    )
    e2e = []
    n = len(images)
    for i in range(max(runs, 1) + 5):
        t0 = time.perf_counter()
        pre.set_inputs(images[i % n : i % n + 1], metadata[i % n : i % n + 1])
        interpreter.invoke()
        pre.probabilities(pre.raw_output())
        if i >= 5:  # warm-up invokes are not timed
            e2e.append((time.perf_counter() - t0) * 1e3)
    p95 = float(np.percentile(np.asarray(e2e), 95))
    if latency_ms_p95 is None:
        add("latency", True, f"e2e p95 {p95:.3f} ms per crop (not judged here)")
    else:
        add(
            "latency",
            p95 <= latency_ms_p95,
            f"e2e p95 {p95:.3f} ms per crop, budget {latency_ms_p95:g} ms",
            retryable=True,
        )
    return result(
        {
            "runtime": runtime,
            "e2e_ms_p95": p95,
            "runs": len(e2e),
            "latency_judged": latency_ms_p95 is not None,
        }
    )


def _io_matches(quant: dict, card: dict):
    by_role = {t.get("role"): t for t in card.get("inputs", []) + card.get("outputs", [])}
    wrong = []
    for role, name in (("image", "image"), ("meta", "meta"), ("score", "output")):
        have, want = quant.get(name), by_role.get(role)
        if have is None and want is None:
            continue
        if (
            have is None
            or want is None
            or have["dtype"] != want.get("dtype")
            or have["zero_point"] != want.get("zero_point")
            or abs(have["scale"] - float(want.get("scale", 0.0))) > 1e-9 * max(1.0, have["scale"])
        ):
            wrong.append(f"{name}: model {have}, card {want}")
    return (not wrong, "; ".join(wrong) or "inputs and output match the card's quantisation")


def _decisions(raw, probs, card: dict, crops: str, np):
    """The model's decisions on the golden crops (card threshold) must be eval's, crop by crop."""
    threshold = card.get("threshold") if isinstance(card.get("threshold"), dict) else {}
    score = threshold.get("score")
    if not isinstance(score, (int, float)) or isinstance(score, bool):
        return False, "the card has no decision threshold"
    try:
        with np.load(crops, allow_pickle=False) as npz:
            want = npz["eval_decision"].astype(np.int8) if "eval_decision" in npz.files else None
    except (OSError, ValueError) as exc:
        return False, f"cannot read the golden crops ({exc})"
    if want is None or len(want) != len(raw):
        return False, "the golden crops carry no eval decisions (re-release with edgeped release)"
    q = threshold.get("int8")
    if np.issubdtype(raw.dtype, np.integer) and isinstance(q, int) and not isinstance(q, bool):
        got = (raw.reshape(len(raw), -1)[:, 0].astype(np.int32) >= q).astype(np.int8)
        rule = f"output q >= {q}"
    else:
        got = (probs.reshape(-1) >= float(score)).astype(np.int8)
        rule = f"probability >= {score:g}"
    bad = int((got != want).sum())
    positives = int(want.sum())
    return bad == 0, (
        f"{bad} of {len(want)} decisions differ from eval's ({rule}; eval: {positives} "
        f"pedestrian, {len(want) - positives} background)"
    )


def _parity(raw, probs, golden, sha: str, np):
    want_sha = str(golden["model_sha256"]) if "model_sha256" in golden else None
    if want_sha != sha:
        return False, f"golden outputs are for model {str(want_sha)[:12]}, not {sha[:12]}"
    want_raw, want_probs = golden.get("raw"), golden.get("probabilities")
    if want_raw is None or len(want_raw) != len(raw):
        return False, "golden outputs do not match the golden crops"
    if np.issubdtype(raw.dtype, np.integer):
        bad = int(
            (raw.astype(np.int32) != want_raw.astype(np.int32))
            .reshape(len(raw), -1)
            .any(axis=1)
            .sum()
        )
        return bad == 0, f"{bad} of {len(raw)} golden crops differ (bit-exact int8)"
    bad = int((~(np.abs(probs - want_probs) <= 1e-5)).sum())
    return bad == 0, f"{bad} of {len(raw)} golden crops differ by more than 1e-5"
