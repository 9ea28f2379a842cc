"""Release bundles: the model, its card, golden outputs and `release.json`, refused unless gated.

A bundle is a directory the board's agent installs as one unit::

    release.json      the manifest (below); lists every other file with its sha256 and size
    model.tflite      the model
    card.json         its model card
    crops.npz         golden crops: real test crops of the run, both classes, near the
                      threshold, distinct outputs, with eval's decisions (rollout/golden.py)
    golden.npz        the host's outputs for those crops (bit-exact reference for int8)
    preprocess.json   metadata standardisation, from the card
    drift_reference.json   the drift reference profile, when the run has one

`plan_release` checks everything and returns the manifest without touching the disk
(the gate verdict must be for this model's sha256 and must pass, or every non-passed
budget must carry a recorded waiver); `write_bundle` computes the golden outputs and
writes the bundle atomically.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeped.convert.model_card import CardFacts
from edgeped.errors import EdgepedError
from edgeped.fileio import read_json, sha256_file, write_json_atomic
from edgeped.provenance import stamp, tool_versions
from edgeped.schemas import read_checked

RELEASE_KIND = "edgeped.release"
GATE_KIND = "edgeped.gate"
MANIFEST = "release.json"
OUTPUT_KIND = "release"  # the --out marker kind (edgeped.outdir)
DRIFT_REFERENCE_NAMES = ("drift_reference.json",)
GOLDEN_CROPS_DEFAULT = 16
# Statuses that block a release (edgeped.gate.verdict.Status.blocks_release), by group.
_FAILED = {"fail"}
_MISSING = {"missing", "stale", "unreadable"}


@dataclass(frozen=True)
class Waiver:
    """An explicit, recorded decision to release despite one non-passed budget."""

    budget: str
    reason: str

    def __post_init__(self) -> None:
        if not self.budget.strip():
            raise ValueError("waiver budget must be a budget name such as runtime.e2e_ms_p95")
        if len(self.reason.strip()) < 8:
            raise ValueError(
                f"waiver reason for {self.budget!r} must say why (at least 8 characters), "
                f"got {self.reason!r}"
            )


@dataclass(frozen=True)
class ReleaseOptions:
    """What to release from a run directory."""

    model: str | None = None  # default: the model gate.json judged
    waivers: tuple[Waiver, ...] = ()
    crops: Path | None = None  # golden crops .npz; real test crops of the run when omitted
    golden_count: int = GOLDEN_CROPS_DEFAULT
    seed: int = 0
    data_dir: Path | None = None  # the dataset the run was evaluated on [default: recorded]
    sign_key: Path | None = None  # Ed25519 private key (edgeped keygen); unsigned when None
    baseline: Path | None = None  # the bundle (or its release.json) this release replaces
    gate_file: Path | None = None  # default: RUN_DIR/gate.json

    def __post_init__(self) -> None:
        if self.golden_count < 1:
            raise ValueError(f"golden_count must be >= 1, got {self.golden_count}")
        names = [w.budget for w in self.waivers]
        if len(set(names)) != len(names):
            raise ValueError(f"each budget may be waived once, got {names}")


@dataclass(frozen=True)
class ReleasePlan:
    """A checked release: the manifest so far and the run files that go into the bundle."""

    manifest: dict[str, Any]
    model_path: Path
    card_path: Path
    card: CardFacts
    drift_reference: Path | None
    options: ReleaseOptions = field(default_factory=ReleaseOptions)
    inputs: tuple[Path, ...] = ()  # everything else the release reads (never replaced by --out)

    @property
    def release_id(self) -> str:
        return self.manifest["release_id"]


def _budget_groups(verdict: dict) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {"passed": [], "failed": [], "missing": [], "skipped": []}
    for row in verdict.get("results", []):
        status = row.get("status")
        if status == "pass":
            groups["passed"].append(row["budget"])
        elif status in _FAILED:
            groups["failed"].append(row["budget"])
        elif status in _MISSING:
            groups["missing"].append(row["budget"])
        else:
            groups["skipped"].append(row["budget"])
    return groups


def _read_gate(path: Path, model: str | None, model_sha: str, run_dir: Path) -> dict:
    if not path.is_file():
        raise EdgepedError(
            f"no gate verdict at {path}: a release needs the gate's verdict on this model",
            f"run `edgeped gate {run_dir} --json {path}` first",
        )
    verdict = read_checked(
        path, "edgeped.gate", "gate verdict", f"re-run `edgeped gate {run_dir} --json {path}`"
    )
    if not isinstance(verdict, dict) or verdict.get("kind") != GATE_KIND:
        raise EdgepedError(
            f"{path} is not an edgeped gate verdict",
            f"re-run `edgeped gate {run_dir} --json {path}`",
        )
    if model and verdict.get("model") != model:
        raise EdgepedError(
            f"{path} judged model {verdict.get('model')!r}, not {model!r}",
            f"run `edgeped gate {run_dir} --model {model} --json {path}`",
        )
    if verdict.get("model_sha256") != model_sha:
        raise EdgepedError(
            f"the gate verdict is stale: it judged model sha256 "
            f"{str(verdict.get('model_sha256'))[:12]}, the model is {model_sha[:12]}; "
            "release refused",
            f"re-run `edgeped gate {run_dir} --json {path}` on the current model",
        )
    return verdict


def _check_threshold(card: CardFacts, run_dir: Path) -> None:
    """A release decides pedestrian / background: its card must carry the threshold."""
    score = card.threshold_score
    ok = score is not None and 0.0 <= score <= 1.0
    if ok and card.mode.endswith("int8"):
        ok = card.threshold_int8 is not None
    if not ok:
        raise EdgepedError(
            f"the model card {card.file} has no decision threshold"
            + (" (int8 threshold missing)" if score is not None else "")
            + ": the board could not decide pedestrian or background; release refused",
            f"run `edgeped eval {run_dir}` (it chooses the threshold and writes it to the "
            f"card), then `edgeped gate {run_dir}` again",
        )


def _check_card(
    verdict: dict, card: CardFacts, card_file: Path, gate_path: Path, run: Path
) -> None:
    """The card must be byte for byte the one the gate judged (threshold, calibration...)."""
    from edgeped.gate.verdict import card_binding, card_differences

    judged = verdict.get("card")
    if not isinstance(judged, dict) or not judged.get("sha256"):
        raise EdgepedError(
            f"the gate verdict {gate_path} does not record which model card it judged "
            "(made by an older edgeped); release refused",
            f"re-run `edgeped gate {run} --json {gate_path}`",
        )
    now = card_binding(card, sha256_file(card_file))
    if judged["sha256"] != now["sha256"]:
        changed = card_differences(judged, now)
        what = f"its {', '.join(changed)} changed" if changed else "its other fields changed"
        raise EdgepedError(
            f"the model card {card_file.name} differs from the card the gate judged "
            f"(sha256 {str(judged['sha256'])[:12]}, now {now['sha256'][:12]}): {what}; "
            "release refused",
            f"gate the current card: `edgeped gate {run} --json {gate_path}` "
            "(or restore the card the gate judged)",
        )


def _check_waivers(groups: dict[str, list[str]], waivers: tuple[Waiver, ...]) -> list[dict]:
    blocking = {b: "fail" for b in groups["failed"]} | {b: "missing" for b in groups["missing"]}
    unknown = sorted(w.budget for w in waivers if w.budget not in blocking)
    if unknown:
        raise EdgepedError(
            f"waivers name budgets that did not block this release: {unknown}",
            f"waive only non-passed budgets: {sorted(blocking) or 'none (the gate passed)'}",
        )
    waived = {w.budget for w in waivers}
    unwaived = sorted(set(blocking) - waived)
    if unwaived:
        listing = ", ".join(f"{b} ({blocking[b]})" for b in unwaived)
        raise EdgepedError(
            f"the gate did not pass and is not waived for: {listing}; release refused",
            "fix the model or its evidence and gate again, or waive each budget explicitly "
            "with --waive BUDGET --reason TEXT (recorded in the release and shown on the board)",
        )
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return [
        {
            "budget": w.budget,
            "status": blocking[w.budget],
            "reason": w.reason.strip(),
            "by": who,
            "time": when,
        }
        for w in waivers
    ]


def _baseline(path: Path | None) -> dict | None:
    if path is None:
        return None
    manifest_path = path / MANIFEST if path.is_dir() else path
    manifest = read_checked(
        manifest_path,
        "edgeped.release",
        "baseline release manifest",
        "pass the bundle directory (or release.json) of the release this one replaces",
    )
    if manifest.get("kind") != RELEASE_KIND:
        raise EdgepedError(
            f"{manifest_path} is not a release manifest",
            "pass the bundle directory (or release.json) of the release this one replaces",
        )
    return {
        "release_id": manifest["release_id"],
        "model_sha256": manifest["model"]["sha256"],
        "manifest_sha256": sha256_file(manifest_path),
    }


def plan_release(run_dir: str | os.PathLike, options: ReleaseOptions) -> ReleasePlan:
    """Checks a run's model, card and gate verdict (plus waivers) and builds its manifest.

    Raises:
        EdgepedError: missing or stale files, a verdict that did not pass without a waiver
            for every non-passed budget, or a waiver for a budget that passed.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise EdgepedError(f"run directory not found: {run}", "pass the run directory to release")
    gate_path = options.gate_file or run / "gate.json"
    gate_peek = (
        read_checked(
            gate_path,
            "edgeped.gate",
            "gate verdict",
            f"re-run `edgeped gate {run} --json {gate_path}`",
        )
        if gate_path.is_file()
        else {}
    )
    name = options.model or gate_peek.get("model")
    if not name:
        raise EdgepedError(
            f"no gate verdict at {gate_path}, so no model to release",
            f"run `edgeped gate {run} --json {gate_path}` first",
        )
    model = run / f"{name}.tflite"
    card_file = run / f"{name}.card.json"
    if not model.is_file():
        known = sorted(p.stem for p in run.glob("*.tflite"))
        raise EdgepedError(f"model {name!r} not found in {run}", f"pick one of {known}")
    if not card_file.is_file():
        raise EdgepedError(f"model card {card_file} not found", f"run `edgeped convert {run}`")
    model_sha = sha256_file(model)
    card = read_json(card_file, "model card")
    if (card.get("model") or {}).get("sha256") != model_sha:
        raise EdgepedError(
            f"the model card {card_file.name} describes another model than {model.name}",
            f"regenerate the card with `edgeped convert {run}`",
        )
    facts = CardFacts.from_card(card, card_file)
    _check_threshold(facts, run)
    verdict = _read_gate(gate_path, name, model_sha, run)
    _check_card(verdict, facts, card_file, gate_path, run)
    groups = _budget_groups(verdict)
    waivers = _check_waivers(groups, options.waivers)
    config = run / "config.json"
    config_data = read_json(config, "training config") if config.is_file() else {}
    drift = next((run / n for n in DRIFT_REFERENCE_NAMES if (run / n).is_file()), None)
    runtime_budgets = (verdict.get("budgets") or {}).get("runtime") or {}
    out_outputs = [t for t in card.get("outputs", [])]
    manifest = {
        **stamp(RELEASE_KIND),
        "release_id": f"{name}-{model_sha[:12]}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # Monotonic release counter (UTC ns): a signed board refuses a lower one than it ran.
        "sequence": time.time_ns(),
        "model": {
            "name": name,
            "file": "model.tflite",
            "sha256": model_sha,
            "size_bytes": model.stat().st_size,
            "mode": (card.get("model") or {}).get("mode"),
            "architecture": (card.get("model") or {}).get("architecture"),
        },
        "card": {"file": "card.json", "sha256": sha256_file(card_file)},
        "runtime": {
            "checked_with": "ai-edge-litert",
            "version": tool_versions().get("ai-edge-litert"),
        },
        "quantisation": {"inputs": card.get("inputs", []), "outputs": out_outputs},
        "thresholds": facts.threshold,
        "provenance": {
            "run": run.name,
            "dataset_manifest_sha256": config_data.get("dataset_manifest_sha256"),
            "training_config_sha256": sha256_file(config) if config.is_file() else None,
            "card_sha256": sha256_file(card_file),
        },
        "gate": {
            "sha256": sha256_file(gate_path),
            "passed": bool(verdict.get("passed")),
            "exit_code": verdict.get("exit_code"),
            "budgets_passed": groups["passed"],
            "budgets_failed": groups["failed"],
            "budgets_missing": groups["missing"],
            "budgets_skipped": groups["skipped"],
        },
        "waivers": waivers,
        "health": {
            "latency_ms_p95": runtime_budgets.get("max_e2e_ms_per_crop_p95"),
            "latency_target_kinds": runtime_budgets.get("target_kinds", ["ssh"]),
            "parity": "bit-exact int8 outputs on the golden crops (float: 1e-5)",
        },
        "drift_reference": {"file": "drift_reference.json", "sha256": sha256_file(drift)}
        if drift
        else None,
        "replaces": _baseline(options.baseline),
    }
    if options.sign_key is not None:
        from edgeped.rollout.signing import _private_key

        _private_key(Path(options.sign_key))  # refused now, not after the golden outputs
    named = (gate_path, options.baseline, options.crops, options.sign_key)
    inputs = tuple(Path(p) for p in named if p is not None)
    return ReleasePlan(manifest, model, card_file, facts, drift, options, inputs)


def write_bundle(plan: ReleasePlan, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Computes golden outputs on the host and writes the bundle directory atomically.

    The bundle is built in a hidden staging folder beside ``out_dir`` and renamed into
    place; an existing bundle at ``out_dir`` is replaced only once the new one is whole,
    and only if it is a bundle (``edgeped.outdir.claim``): a run directory, a dataset or
    any other folder is refused, whatever ``overwrite`` says.

    Raises:
        EdgepedError: ``out_dir`` may not be replaced, the golden outputs cannot be
            computed or the disk is full.
    """
    from edgeped import outdir
    from edgeped.targets.bench import BenchOptions, compute_golden

    out = outdir.claim(
        out_dir,
        OUTPUT_KIND,
        overwrite=overwrite,
        replace=True,
        recognise=MANIFEST,
        inputs=[plan.model_path.parent, plan.card_path, *plan.inputs],
    )
    try:
        with outdir.stage(out, OUTPUT_KIND) as tmp:
            shutil.copyfile(plan.model_path, tmp / "model.tflite")
            shutil.copyfile(plan.card_path, tmp / "card.json")
            pre = plan.card.runner_preprocess()
            if pre is None:
                raise EdgepedError(
                    f"{plan.card_path.name} has no preprocessing section",
                    "regenerate the card with `edgeped convert`",
                )
            write_json_atomic(tmp / "preprocess.json", pre)
            _golden_crops(plan, tmp / "crops.npz")
            compute_golden(
                tmp / "model.tflite",
                tmp / "crops.npz",
                tmp / "golden.npz",
                BenchOptions(),
                tmp / "preprocess.json",
            )
            _check_golden_decisions(tmp, plan.manifest["thresholds"])
            if plan.drift_reference is not None:
                shutil.copyfile(plan.drift_reference, tmp / "drift_reference.json")
            manifest = dict(plan.manifest)
            manifest["files"] = {
                p.name: {"sha256": sha256_file(p), "size_bytes": p.stat().st_size}
                for p in sorted(tmp.iterdir())
            }
            manifest["health"] = {**manifest["health"], "golden_crops": _count(tmp / "crops.npz")}
            write_json_atomic(tmp / MANIFEST, manifest)
            if plan.options.sign_key is not None:
                from edgeped.rollout.signing import sign_bundle

                sign_bundle(tmp, plan.options.sign_key)
    except OSError as exc:
        if exc.errno == 28:
            raise EdgepedError(f"disk full while writing the bundle {out}", "free space") from exc
        raise EdgepedError(f"cannot write the bundle {out}: {exc}", "check the path") from exc
    return out


def _golden_crops(plan: ReleasePlan, out: Path) -> None:
    """crops.npz: the given --crops (which must carry eval's decisions), else real test crops."""
    import numpy as np

    from edgeped.rollout.golden import golden_from_run

    opts = plan.options
    if opts.crops is not None:
        if not Path(opts.crops).is_file():
            raise EdgepedError(f"golden crops not found: {opts.crops}", "check --crops")
        try:
            with np.load(opts.crops, allow_pickle=False) as npz:
                names = set(npz.files)
        except (OSError, ValueError) as exc:
            raise EdgepedError(
                f"--crops {opts.crops} is not an .npz ({exc})", "check --crops"
            ) from exc
        if not {"images", "eval_decision"} <= names:
            raise EdgepedError(
                f"--crops {opts.crops} has no eval_decision: the board's health check compares "
                "its decisions with eval's",
                "drop --crops: release picks real test crops of the run with eval's decisions",
            )
        shutil.copyfile(opts.crops, out)
        return
    arrays = golden_from_run(
        plan.model_path.parent,
        plan.manifest["model"]["name"],
        float(plan.manifest["thresholds"]["score"]),
        opts.golden_count,
        opts.data_dir,
    )
    with open(out, "wb") as handle:
        np.savez(handle, **arrays)


def _check_golden_decisions(folder: Path, threshold: dict) -> None:
    """The host's decisions on the golden crops must be eval's, or the board's never will."""
    import numpy as np

    from edgeped.rollout.golden import decisions

    with np.load(folder / "golden.npz", allow_pickle=False) as g:
        raw, probs = g["raw"], g["probabilities"]
    with np.load(folder / "crops.npz", allow_pickle=False) as c:
        want = c["eval_decision"].astype(np.int8)
    got = decisions(raw, probs, threshold)
    bad = np.flatnonzero(got != want)
    if bad.size:
        raise EdgepedError(
            f"the model decides {bad.size} of {len(want)} golden crops differently from eval "
            f"(crops {bad[:5].tolist()}): the card's threshold does not fit the model eval "
            "measured; release refused",
            "run `edgeped eval` and `edgeped gate` again on this run",
        )
    if len({row.tobytes() for row in np.asarray(raw).reshape(len(raw), -1)}) < min(len(raw), 2):
        raise EdgepedError(
            "every golden crop gives the same output: they cannot test the model",
            "pick other crops (drop --crops) or check the model",
        )


def _count(crops: Path) -> int:
    import numpy as np

    with np.load(crops, allow_pickle=False) as npz:
        return int(len(npz["images"]))


def read_bundle(bundle: str | os.PathLike, verify: bool = False) -> dict:
    """The manifest of a bundle directory; with ``verify``, every file it lists is checked.

    The board checks every file on arrival whatever the host did, so installing reads
    the manifest only (to show its waivers and pick the health budget).

    Raises:
        EdgepedError: not a bundle, or (``verify``) a file is missing or differs from its sha256.
    """
    folder = Path(bundle)
    if not folder.is_dir():
        raise EdgepedError(
            f"bundle not found: {folder}", "pass a directory made by `edgeped release`"
        )
    manifest = read_checked(
        folder / MANIFEST,
        "edgeped.release",
        "release manifest",
        "make it again with `edgeped release`",
    )
    if manifest.get("kind") != RELEASE_KIND or not isinstance(manifest.get("files"), dict):
        raise EdgepedError(f"{folder} is not a release bundle", "make one with `edgeped release`")
    if not verify:
        return manifest
    bad = []
    for name, want in sorted(manifest["files"].items()):
        path = folder / name
        if not path.is_file():
            bad.append(f"{name} missing")
        elif sha256_file(path) != want["sha256"]:
            bad.append(f"{name} differs from its sha256")
    if bad:
        raise EdgepedError(
            f"bundle {folder} is damaged: {', '.join(bad)}",
            "rebuild it with `edgeped release` (the board would refuse it)",
        )
    return manifest


def manifest_json(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True)
