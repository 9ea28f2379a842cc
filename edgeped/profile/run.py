"""Profiles a .tflite per op on a target: prefix models measured by the device runner.

`profile_model` cuts the model after each op, ships the prefixes to the target in one
bundle (the runner's `--per-op` mode) and turns what comes back into per-op rows:
exact instructions per op on each emulated core, or invoke time per op on the host or
an SSH board (LiteRT's Python API exposes no per-op profiler). `ProfileResult.save`
writes JSON, Markdown and a PNG bar chart.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeped.errors import EdgepedError
from edgeped.fileio import sha256_file
from edgeped.profile.graph import GraphOp, graph_ops, prefix_model
from edgeped.profile.ops import Measure, limit_for, profile_rows
from edgeped.provenance import stamp

PROFILE_KIND = "edgeped.profile"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ProfileOptions:
    """How to measure: cores of the emulated board, counted/timed invokes, seeds."""

    cores: tuple[str, ...] = ("a53", "a72", "a76")
    insn_runs: int = 3
    timed_runs: int = 200
    seed: int = 0
    timeout_s: float = 3600.0

    def __post_init__(self) -> None:
        from edgeped.targets.emulated import core_name

        if not self.cores:
            raise ValueError("cores must name at least one of a53, a72, a76")
        for core in self.cores:
            core_name(core)  # ValueError names the allowed cores
        for name in ("insn_runs", "timed_runs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "cores": list(self.cores),
            "insn_runs": self.insn_runs,
            "timed_runs": self.timed_runs,
            "seed": self.seed,
            "timeout_s": self.timeout_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "profile options") -> ProfileOptions:
        from edgeped.config import from_mapping

        data = dict(data)
        if "cores" in data:
            data["cores"] = tuple(data["cores"])
        return from_mapping(cls, data, where=where)


@dataclass(frozen=True)
class ProfileResult:
    """Per-op profile of one model on one target (one measure per core when emulated)."""

    model_path: str
    model_sha256: str
    target: dict[str, Any]
    ops: tuple[GraphOp, ...]
    measures: tuple[Measure, ...]
    options: ProfileOptions
    notes: tuple[str, ...] = ()

    @property
    def rows(self) -> list[dict[str, Any]]:
        return profile_rows(list(self.ops), list(self.measures))

    @property
    def total_macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def sums_to_whole(self) -> bool:
        return all(m.sums_to_whole for m in self.measures)

    def summary(self) -> dict[str, Any]:
        """Per core: whole-invoke cost, MAC per instruction, the sum check, flagged ops."""
        out = {}
        rows = self.rows
        for m in self.measures:
            entry = {
                "metric": m.metric,
                "whole": m.whole,
                "sum_over_whole": m.sum_over_whole,
                "sums_to_whole": m.sums_to_whole,
                "flagged_ops": [r["index"] for r in rows if r["cost"][m.where]["flags"]],
            }
            if m.metric == "instructions":
                entry["mac_per_insn"] = self.total_macs / m.whole if m.whole else None
                entry["limit_mac_per_insn"] = m.limit
            out[m.where] = entry
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            **stamp(PROFILE_KIND),
            "model": {"path": self.model_path, "sha256": self.model_sha256},
            "target": self.target,
            "options": self.options.to_dict(),
            "total_macs": self.total_macs,
            "summary": self.summary(),
            "sums_to_whole": self.sums_to_whole,
            "notes": list(self.notes),
            "measures": [m.to_dict() for m in self.measures],
            "rows": self.rows,
        }


def resolve_model(path: str | Path) -> Path:
    """A .tflite as given, or the shipped model of a run directory.

    Raises:
        EdgepedError: no such file, or a run directory without its shipped model.
    """
    from edgeped.layout import SHIPPED_MODEL, model_path

    path = Path(path)
    if path.is_dir():
        candidate = model_path(path, SHIPPED_MODEL)
        if not candidate.is_file():
            raise EdgepedError(
                f"{path} has no {candidate.name} (the shipped model)",
                f"run `edgeped convert {path}` first, or pass a .tflite",
            )
        return candidate
    if not path.is_file():
        raise EdgepedError(f"model not found: {path}", "pass a .tflite or a run directory")
    return path


def write_bundle(model_bytes: bytes, crops: Path | None, out: Path, seed: int) -> int:
    """The runner's per-op input: one crop (images, metadata) plus every prefix model.

    Returns:
        The number of ops (= prefix models).
    """
    import numpy as np

    from edgeped.targets.bench import make_random_crops

    if crops is None:
        crops = make_random_crops(out.with_name("random_crops.npz"), 1, seed)
    try:
        with np.load(crops, allow_pickle=False) as npz:
            images, metadata = npz["images"][:1], npz["metadata"][:1]
    except (OSError, ValueError, KeyError) as exc:
        raise EdgepedError(
            f"cannot read crops {crops}: {exc}",
            "pass an .npz with images uint8 [N,128,64,3] and metadata float32 [N,6]",
        ) from exc
    n_ops = len(graph_ops(model_bytes))
    prefixes = {
        f"prefix_{k:04d}": np.frombuffer(prefix_model(model_bytes, k), np.uint8)
        for k in range(1, n_ops + 1)
    }
    np.savez(out, images=images, metadata=metadata, **prefixes)
    return n_ops


def _measure(result: dict, where: str, metric: str, limit: float | None) -> Measure:
    key = "instructions" if metric == "instructions" else "time_us_p50"
    return Measure(
        where=where,
        metric=metric,
        whole=float(result["whole"][key]),
        prefixes=tuple(float(p[key]) for p in result["prefixes"]),
        limit=limit,
        raw={"environment": result.get("environment")},
    )


def profile_model(
    model: str | Path,
    target_name: str = "arm64-emu",
    options: ProfileOptions | None = None,
    *,
    targets_file: str | Path | None = None,
    crops: str | Path | None = None,
    preprocess: str | Path | None = None,
    progress: Progress | None = None,
) -> ProfileResult:
    """Measures every op of `model` on a target; nothing is saved.

    Args:
        model: a .tflite, or a run directory (its shipped model).
        target_name: `arm64-emu` (instructions on each of options.cores), `local` or an
            SSH target of targets.toml (time per op).
        options: cores, counted/timed invokes, seed.
        targets_file: targets.toml for named targets.
        crops: .npz whose first crop feeds the model; a seeded random crop if omitted.
        preprocess: metadata normalisation JSON; the model card's if omitted.
        progress: called with one-line status messages.

    Raises:
        EdgepedError: bad model, unknown target, or the runner failed.
    """
    from edgeped.targets.base import RunnerJob
    from edgeped.targets.bench import card_path, preprocess_from_card
    from edgeped.targets.registry import resolve_target

    options = options or ProfileOptions()
    path = resolve_model(model)
    data = path.read_bytes()
    try:
        ops = graph_ops(data)
    except ValueError as exc:
        raise EdgepedError(f"{path} is not a TFLite model ({exc})", "convert it again") from exc
    if target_name == "arm64-emu":
        targets = [resolve_target(target_name, targets_file, c) for c in options.cores]
    else:
        targets = [resolve_target(target_name, targets_file, None)]
    notes = []
    measures = []
    with tempfile.TemporaryDirectory(prefix="edgeped-profile-") as tmp:
        bundle = Path(tmp) / "bundle.npz"
        write_bundle(data, Path(crops) if crops else None, bundle, options.seed)
        pre_path = Path(preprocess) if preprocess else None
        if pre_path is None and (card := preprocess_from_card(path)) is not None:
            pre_path = Path(tmp) / "preprocess.json"
            pre_path.write_text(json.dumps(card), encoding="utf-8")
            notes.append(f"metadata preprocessing from {card_path(path)}")
        for target in targets:
            counted = bool(target.emulated)
            args = ["--per-op", "--warmup", "2", "--insn-runs", str(options.insn_runs)]
            if not counted:
                args += ["--min-runs", str(options.timed_runs), "--max-seconds", "300"]
            job = RunnerJob(
                model=path,
                args=tuple(args),
                crops=bundle,
                preprocess=pre_path,
                timeout_s=options.timeout_s,
                count_instructions=counted,
            )
            where = getattr(target, "core", None) if counted else target.name
            if progress:
                progress(f"{len(ops)} prefix models on {where}")
            result = target.run(job, progress)
            if result.get("kind") != "edgeped.device_per_op":
                raise EdgepedError(
                    f"the runner on {target.name} does not know --per-op",
                    "push the current device/runner.py (it is staged with every job)",
                )
            metric = "instructions" if counted else "time_us"
            measures.append(_measure(result, where, metric, limit_for(where) if counted else None))
            if not counted:
                notes.append(
                    f"{target.name}: time per op = p50(prefix k) - p50(prefix k-1) of "
                    f"{options.timed_runs} invokes; {result['litert_op_profiler']} "
                    "(ai-edge-litert), so LiteRT's own per-op times cannot be read"
                )
    return ProfileResult(
        model_path=str(path),
        model_sha256=sha256_file(path),
        target={
            "name": target_name,
            "kind": targets[0].kind,
            "emulated": bool(targets[0].emulated),
            "cores": [m.where for m in measures] if targets[0].emulated else None,
        },
        ops=tuple(ops),
        measures=tuple(measures),
        options=options,
        notes=tuple(notes),
    )
