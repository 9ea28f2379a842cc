"""Benchmark a .tflite on a target and keep the evidence: bench.json.

``bench_model`` is the pure-ish core (it runs things but writes nothing the caller
keeps); ``BenchResult.save`` writes bench.json atomically; ``deploy_model`` is the
push + parity + benchmark flow that stores its result in a run directory.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeped.errors import EdgepedError
from edgeped.fileio import sha256_file, write_json_atomic
from edgeped.provenance import stamp
from edgeped.targets.base import Progress, RunnerJob, Target, runner_code_sha256, runner_path
from edgeped.targets.local import LocalTarget

BENCH_KIND = "edgeped.bench"


# Above these a value is a typo, not a benchmark: a batch of 1e9 crops would allocate
# for minutes before anything is timed.
_OPTION_CEILINGS = {
    "threads": 256,
    "batch": 4096,
    "min_runs": 10_000_000,
    "warmup": 1_000_000,
    "load_threads": 256,
    "insn_runs": 1000,
    "random_count": 1_000_000,
}


@dataclass(frozen=True)
class BenchOptions:
    """How to run the benchmark; mirrors the runner's options."""

    threads: int = 1
    batch: int = 1
    min_runs: int = 50
    min_seconds: float = 1.0
    warmup: int = 5
    xnnpack: bool = True
    delegate: str | None = None
    pin: tuple[int, ...] = ()
    load_threads: int = 0
    insn_runs: int = 3
    random_count: int = 16
    seed: int = 0
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("threads", "batch", "min_runs", "insn_runs", "random_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "load_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name, top in _OPTION_CEILINGS.items():
            if getattr(self, name) > top:
                raise ValueError(
                    f"{name} must be <= {top} (more would only exhaust the target), "
                    f"got {getattr(self, name)}"
                )
        if not (math.isfinite(self.min_seconds) and math.isfinite(self.timeout_s)):
            raise ValueError(
                f"min_seconds and timeout_s must be finite, got {self.min_seconds} and "
                f"{self.timeout_s}"
            )
        if self.min_seconds < 0 or self.timeout_s <= 0:
            raise ValueError(
                f"min_seconds must be >= 0 and timeout_s > 0, got "
                f"{self.min_seconds} and {self.timeout_s}"
            )
        if self.min_seconds > self.max_timed_seconds:
            raise ValueError(
                f"min_seconds {self.min_seconds:g} does not fit in timeout_s {self.timeout_s:g}: "
                f"the timed loop may run at most {self.max_timed_seconds:g} s of it (start-up, "
                "parity and the result need the rest); raise the timeout or lower min_seconds"
            )
        if any(cpu < 0 for cpu in self.pin):
            raise ValueError(f"pin must list CPU numbers >= 0, got {self.pin}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["pin"] = list(self.pin)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "bench options") -> BenchOptions:
        from edgeped.config import from_mapping

        return from_mapping(cls, data, where=where)

    @property
    def max_timed_seconds(self) -> float:
        """How long the timed loop may run inside the timeout."""
        return max(min(self.timeout_s * 0.8, self.timeout_s - 5), 1.0)

    def runner_args(self) -> tuple[str, ...]:
        args = [
            "--threads",
            str(self.threads),
            "--batch",
            str(self.batch),
            "--min-runs",
            str(self.min_runs),
            "--min-seconds",
            str(self.min_seconds),
            "--warmup",
            str(self.warmup),
            "--insn-runs",
            str(self.insn_runs),
            "--random-count",
            str(self.random_count),
            "--seed",
            str(self.seed),
            # End the timed loop early enough for start-up, parity and the result to
            # fit inside the timeout.
            "--max-seconds",
            str(self.max_timed_seconds),
        ]
        if not self.xnnpack:
            args.append("--no-xnnpack")
        if self.delegate:
            args += ["--delegate", self.delegate]
        if self.pin:
            args += ["--pin", ",".join(str(c) for c in self.pin)]
        if self.load_threads:
            args += ["--load-threads", str(self.load_threads)]
        return tuple(args)


@dataclass(frozen=True)
class BenchResult:
    """What one benchmark found; ``to_dict`` is the bench.json payload."""

    model_path: str
    model_sha256: str
    size_bytes: int
    target: dict[str, Any]
    options: BenchOptions
    runner: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def emulated(self) -> bool:
        return bool(self.target.get("emulated") or self.runner.get("emulated"))

    @property
    def core(self) -> str | None:
        return self.target.get("core") or self.runner.get("environment", {}).get("cpu_model")

    @property
    def parity(self) -> dict[str, Any] | None:
        return self.runner.get("parity")

    @property
    def instructions_per_invoke(self) -> int | None:
        insn = self.runner.get("instructions")
        return insn["instructions_per_invoke"] if insn else None

    @property
    def overhead_instructions_per_invoke(self) -> int | None:
        """Instructions of the runner's preprocessing and dequantisation around one invoke."""
        insn = self.runner.get("instructions")
        return insn.get("overhead_instructions_per_invoke") if insn else None

    def summary(self) -> dict[str, Any]:
        """The figures a gate reads, with units in the names."""
        r = self.runner
        parity = self.parity
        return {
            "model_sha256": self.model_sha256,
            "size_bytes": self.size_bytes,
            "target_name": self.target["name"],
            "target_kind": self.target["kind"],
            "emulated": self.emulated,
            "core": self.core,
            "threads": self.options.threads,
            "batch": self.options.batch,
            "invoke_ms_p50": r["invoke_ms"]["p50"],
            "invoke_ms_p95": r["invoke_ms"]["p95"],
            "invoke_ms_p99": r["invoke_ms"]["p99"],
            "e2e_ms_per_crop_p50": r["e2e_ms_per_crop"]["p50"],
            "e2e_ms_per_crop_p95": r["e2e_ms_per_crop"]["p95"],
            "init_ms": r["init_ms"],
            "first_inference_ms": r["first_inference_ms"],
            "throughput_crops_per_s": r["throughput_crops_per_s"],
            "peak_rss_mb": r["memory"]["phase_peak_rss_mb"],
            "process_peak_rss_mb": r["memory"]["process_peak_rss_mb"],
            "parity_ok": None if parity is None else parity["ok"],
            "instructions_per_invoke": self.instructions_per_invoke,
            "overhead_instructions_per_invoke": self.overhead_instructions_per_invoke,
            "runs": r["runs"],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **stamp(BENCH_KIND),
            **self.summary(),
            "model": {
                "path": self.model_path,
                "sha256": self.model_sha256,
                "size_bytes": self.size_bytes,
            },
            "target": self.target,
            "options": self.options.to_dict(),
            "inputs": self.inputs,
            "parity": self.parity,
            "runner": self.runner,
        }

    def save(self, path: str | Path) -> Path:
        """Writes bench.json atomically (readers never see a partial file)."""
        write_json_atomic(path, self.to_dict())
        return Path(path)


def card_path(model: Path) -> Path | None:
    """The model card beside a model (``edgeped.layout.card_path``), if it exists."""
    from edgeped.layout import card_path as beside

    candidate = beside(model)
    return candidate if candidate.is_file() else None


def preprocess_from_card(model: Path) -> dict[str, Any] | None:
    """The ``preprocessing`` section of the model's card in runner form, if there is a card.

    Raises:
        EdgepedError: the card exists but is unreadable, describes another model or lacks
            metadata mean/std.
    """
    card = card_path(model)
    if card is None:
        return None
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgepedError(
            f"model card {card} is not valid JSON ({exc})",
            "regenerate the model card with `edgeped convert`",
        ) from exc
    if not isinstance(data, dict):
        raise EdgepedError(
            f"model card {card} is not a JSON object", "regenerate it with `edgeped convert`"
        )
    from edgeped.convert.model_card import CardFacts

    facts = CardFacts.from_card(data, card)
    facts.check_describes(model, sha256_file(model))
    return facts.runner_preprocess()


def make_random_crops(path: Path, count: int, seed: int) -> Path:
    """Writes seeded random crops (uint8 images, metadata with ~10% missing) as .npz."""
    import numpy as np

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 128, 64, 3), dtype=np.uint8)
    metadata = rng.normal(size=(count, 6)).astype(np.float32)
    metadata[rng.random(metadata.shape) < 0.1] = np.nan
    np.savez(path, images=images, metadata=metadata)
    return path


def compute_golden(
    model: Path, crops: Path, out: Path, options: BenchOptions, preprocess: Path | None = None
) -> Path:
    """Computes golden outputs on the host with the same runner and preprocessing.

    Raises:
        EdgepedError: the host runner failed.
    """
    host = LocalTarget(name="host")
    argv = [
        str(runner_path()),
        str(model),
        "--crops",
        str(crops),
        "--write-golden",
        str(out),
        "--batch",
        str(options.batch),
        "--threads",
        str(options.threads),
    ]
    if not options.xnnpack:
        argv.append("--no-xnnpack")
    if preprocess:
        argv += ["--preprocess", str(preprocess)]
    from edgeped.targets.local import run_process

    run_process([host.python, *argv], "the host (golden outputs)", options.timeout_s)
    return out


def bench_model(
    model: str | Path,
    target: Target,
    options: BenchOptions | None = None,
    *,
    crops: str | Path | None = None,
    golden: str | Path | None = None,
    preprocess: str | Path | None = None,
    parity: bool = False,
    progress: Progress | None = None,
) -> BenchResult:
    """Benchmarks ``model`` on ``target`` and returns the result (nothing is saved).

    Args:
        model: the .tflite file on the host.
        target: where to run it.
        options: runner options (threads, batch, run bounds, ...).
        crops: .npz of real crops; random crops are used if omitted.
        golden: golden outputs .npz; computed on the host if omitted and ``parity`` is set.
        preprocess: metadata normalisation JSON; taken from the model card if omitted.
        parity: check outputs against the host (random crops are generated on the host
            if ``crops`` is omitted, so both sides see the same inputs).
        progress: called with one-line status messages.

    Raises:
        EdgepedError: bad model path, target failure, or a result for a different model.
    """
    options = options or BenchOptions()
    if golden and not crops:
        raise EdgepedError(
            "--golden needs the crops it was computed from",
            "pass --crops FILE too, or drop --golden to compute it on the host",
        )
    model = Path(model)
    if not model.is_file():
        raise EdgepedError(f"model not found: {model}", "check the path to the .tflite file")
    model_sha = sha256_file(model)
    with tempfile.TemporaryDirectory(prefix="edgeped-bench-") as tmp:
        tmpdir = Path(tmp)
        pre_path = Path(preprocess) if preprocess else None
        pre_source = str(pre_path) if pre_path else None
        if pre_path is None:
            card_pre = preprocess_from_card(model)
            if card_pre is not None:
                pre_path = tmpdir / "preprocess.json"
                pre_path.write_text(json.dumps(card_pre), encoding="utf-8")
                pre_source = str(card_path(model))
        crops_path = Path(crops) if crops else None
        if crops_path is None and (parity or golden):
            crops_path = make_random_crops(tmpdir / "crops.npz", options.random_count, options.seed)
        golden_path = Path(golden) if golden else None
        if golden_path is None and parity:
            if progress:
                progress("computing golden outputs on the host")
            golden_path = compute_golden(
                model, crops_path, tmpdir / "golden.npz", options, pre_path
            )
        job = RunnerJob(
            model=model,
            args=options.runner_args(),
            crops=crops_path,
            golden=golden_path,
            preprocess=pre_path,
            timeout_s=options.timeout_s,
        )
        runner = target.run(job, progress)
        inputs = {
            "crops_sha256": sha256_file(crops_path) if crops_path else None,
            "golden_sha256": sha256_file(golden_path) if golden_path else None,
            "preprocess": pre_source,
            "preprocess_sha256": sha256_file(pre_path) if pre_path else None,
            "runner_sha256": runner_code_sha256(),
        }
    if runner["model"]["sha256"] != model_sha:
        raise EdgepedError(
            f"the target ran a different model (sha256 "
            f"{runner['model']['sha256'][:12]}, expected {model_sha[:12]})",
            "push the model again",
        )
    return BenchResult(
        model_path=str(model),
        model_sha256=model_sha,
        size_bytes=model.stat().st_size,
        target=target.describe(),
        options=options,
        runner=runner,
        inputs=inputs,
    )


def deploy_model(
    model: str | Path,
    target: Target,
    run_dir: str | Path,
    options: BenchOptions | None = None,
    *,
    crops: str | Path | None = None,
    preprocess: str | Path | None = None,
    progress: Progress | None = None,
) -> tuple[BenchResult, Path]:
    """Pushes the model to the board, checks parity with the host, benchmarks, stores bench.json.

    Returns:
        The result and the path of the bench.json written in ``run_dir``.

    Raises:
        EdgepedError: any push/run failure; a parity failure is reported in the result.
    """
    result = bench_model(
        model, target, options, crops=crops, preprocess=preprocess, parity=True, progress=progress
    )
    path = result.save(Path(run_dir) / "bench.json")
    return result, path
