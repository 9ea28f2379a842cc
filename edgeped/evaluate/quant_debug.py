"""Which layers lose accuracy in int8, and what keeping them in float or 16x8 buys back.

`layer_errors` runs TFLite's QuantizationDebugger on a float model: every op's int8
output is compared with its float output on the same crops (NumericVerify), giving per
layer the RMSE, the max abs error and the scale; RMSE / scale (error in quantisation
steps) ranks them. `quant_debug_run` does that for a run's float parent on validation
crops, converts variants (full int8; each of the worst layers kept in float; the whole
model in 16x8), scores each on val/test through LiteRT and, on the emulated board,
counts its instructions, so a user sees where accuracy is cheapest to buy back.
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeped.convert.converter import CalibrationData, MixedPrecision, convert_mixed
from edgeped.errors import EdgepedError

QUANT_DEBUG_KIND = "edgeped.quant_debug"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class LayerError:
    """One op's int8 output against its float output, over the debug crops."""

    op: str
    tensor: str  # output tensor name: what MixedPrecision.float_nodes takes
    elements: int
    rmse: float
    max_abs_error: float
    mean_error: float
    scale: float
    zero_point: int

    @property
    def rmse_over_scale(self) -> float:
        """RMSE in quantisation steps: ~0.29 is pure rounding error, more is range trouble."""
        return self.rmse / self.scale if self.scale else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rmse_over_scale": self.rmse_over_scale}


def parse_layer_dump(text: str) -> list[LayerError]:
    """QuantizationDebugger.layer_statistics_dump CSV -> LayerErrors, worst first.

    Raises:
        ValueError: the CSV lacks the debugger's columns.
    """
    rows = list(csv.DictReader(io.StringIO(text)))
    need = {"op_name", "tensor_name", "num_elements", "mean_squared_error", "scale"}
    if rows and not need <= set(rows[0]):
        raise ValueError(f"layer dump lacks columns {sorted(need - set(rows[0]))}")
    out = [
        LayerError(
            op=r["op_name"],
            tensor=r["tensor_name"],
            elements=int(float(r["num_elements"])),
            rmse=math.sqrt(max(float(r["mean_squared_error"]), 0.0)),
            max_abs_error=float(r["max_abs_error"]),
            mean_error=float(r["mean_error"]),
            scale=float(r["scale"]),
            zero_point=int(float(r["zero_point"])),
        )
        for r in rows
    ]
    return sorted(out, key=lambda e: -e.rmse_over_scale)


def _input_ranks(model) -> list[int]:
    """Ranks of the converted model's inputs in TFLite order (it may reorder them)."""
    from ai_edge_litert.interpreter import Interpreter

    from edgeped._keras import tf

    interp = Interpreter(model_content=tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return [len(d["shape"]) for d in interp.get_input_details()]


def layer_errors(model, calibration: CalibrationData, debug: CalibrationData) -> list[LayerError]:
    """Per-layer int8 error of a float Keras model's full-integer conversion, worst first.

    Raises:
        EdgepedError: the debugger could not be built or run on this model.
    """
    from edgeped._keras import tf

    ranks = _input_ranks(model)

    def debug_dataset():
        for i in range(debug.image.shape[0]):
            yield [debug.image[i : i + 1] if r == 4 else debug.meta[i : i + 1] for r in ranks]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: calibration.samples(model)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Statistics for quantized inputs.*")
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=debug_dataset
            )
            debugger.run()
    except Exception as exc:  # the debugger raises many unrelated types
        raise EdgepedError(
            f"the quantisation debugger failed: {type(exc).__name__}: {str(exc)[:300]}",
            "debug a float checkpoint (student.h5), not a QAT one",
        ) from exc
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    return parse_layer_dump(buf.getvalue())


@dataclass(frozen=True)
class QuantDebugOptions:
    """How much to measure: crops, how many layers to try in float, the operating point."""

    calibration_samples: int = 256
    debug_samples: int = 256
    top: int = 3
    max_fpr: float = 0.01
    count_instructions: bool = True
    core: str = "a76"

    def __post_init__(self) -> None:
        for name in ("calibration_samples", "debug_samples", "top"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.max_fpr < 1:
            raise ValueError(f"max_fpr must be in (0, 1), got {self.max_fpr}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "quant-debug options"):
        from edgeped.config import from_mapping

        return from_mapping(cls, data, where=where)


@dataclass(frozen=True)
class Variant:
    """One converted variant and what it measured."""

    name: str
    kind: str  # float32 | int8 | float-layer | 16x8
    precision: MixedPrecision
    size_bytes: int
    sha256: str
    val: dict[str, float]
    test: dict[str, float]
    instructions: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "precision": asdict(self.precision)}


@dataclass(frozen=True)
class QuantDebugResult:
    run_dir: str
    float_checkpoint: str
    layers: tuple[LayerError, ...]
    variants: tuple[Variant, ...]
    options: QuantDebugOptions
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from edgeped.provenance import stamp

        return {
            **stamp(QUANT_DEBUG_KIND),
            "run_dir": self.run_dir,
            "float_checkpoint": self.float_checkpoint,
            "options": self.options.to_dict(),
            "inputs": self.inputs,
            "layers": [e.to_dict() for e in self.layers],
            "variants": [v.to_dict() for v in self.variants],
        }


def split_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Recall and FPR at a threshold, and the ranking metrics, of one split."""
    from edgeped.evaluate.metrics import ranking_metrics, rates_at

    point = rates_at(labels, scores, threshold)
    return {"recall": point.recall, "fpr": point.fpr, **ranking_metrics(labels, scores)}


def score_variant(tflite: bytes, prep, val, test, max_fpr: float) -> tuple[dict, dict]:
    """Scores val and test through LiteRT; the threshold is val's at FPR <= max_fpr."""
    from edgeped.evaluate.inference import TfliteScorer
    from edgeped.evaluate.metrics import threshold_max_recall

    with tempfile.TemporaryDirectory(prefix="edgeped-qd-") as tmp:
        path = Path(tmp) / "variant.tflite"
        path.write_bytes(tflite)
        scorer = TfliteScorer(path, prep, batch=64, num_threads=1)
        s_val = scorer.score(val.images, val.metadata).probability
        s_test = scorer.score(test.images, test.metadata).probability
    point = threshold_max_recall(val.labels, s_val, max_fpr)
    v = split_metrics(val.labels, s_val, point.threshold)
    t = split_metrics(test.labels, s_test, point.threshold)
    return {**v, "threshold": point.threshold}, t


def count_invoke(tflite: bytes, core: str, progress: Progress | None = None) -> int:
    """Instructions per invoke on the emulated board (the runner's count)."""
    from edgeped.targets.bench import BenchOptions, bench_model
    from edgeped.targets.emulated import EmulatedArm64Target

    with tempfile.TemporaryDirectory(prefix="edgeped-qd-") as tmp:
        path = Path(tmp) / "variant.tflite"
        path.write_bytes(tflite)
        result = bench_model(
            path,
            EmulatedArm64Target(core=core),
            BenchOptions(min_runs=1, min_seconds=0.0, warmup=1, insn_runs=3),
            progress=progress,
        )
    return int(result.instructions_per_invoke)


def debug_crops(dataset, prep, samples: int, seed: int) -> CalibrationData:
    """Validation crops for the per-layer errors: up to a quarter pedestrians."""
    batch = dataset.read("val")
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(batch.labels == 1), np.flatnonzero(batch.labels == 0)
    n_pos = min(len(pos), samples // 4)
    pick = np.sort(
        np.concatenate(
            [
                rng.choice(pos, n_pos, replace=False),
                rng.choice(neg, min(len(neg), samples - n_pos), replace=False),
            ]
        )
    )
    return CalibrationData(prep.image(batch.images[pick]), prep.metadata(batch.metadata[pick]))


@dataclass
class _RunContext:
    run: Path
    dataset: Any
    prep: Any
    checkpoint: str
    model: Any
    calibration: CalibrationData
    seed: int


def _run_context(run_dir: str | Path, calibration_samples: int, progress: Progress) -> _RunContext:
    """The run's dataset, preprocessing, float student and calibration crops (as convert)."""
    from edgeped.convert.run import calibration_data
    from edgeped.data.preprocess import Preprocessing
    from edgeped.data.shards import Dataset
    from edgeped.fileio import read_json
    from edgeped.layout import CHECKPOINTS, CONFIG_FILE
    from edgeped.train.checkpoints import load_checkpoint

    run = Path(run_dir)
    config = read_json(run / CONFIG_FILE, f"run config ({CONFIG_FILE})")
    data_dir = str((config.get("config") or {}).get("data_dir") or "")
    if not data_dir or not Path(data_dir).is_dir():
        raise EdgepedError(
            f"the run's dataset {data_dir!r} (data_dir in {run / CONFIG_FILE}) is not there",
            "run from the folder the run was trained in, or put the dataset back at that path",
        )
    checkpoint = next(
        (
            c
            for c in (CHECKPOINTS["student_distilled"], CHECKPOINTS["student"])
            if (run / c).is_file()
        ),
        None,
    )
    if checkpoint is None:
        raise EdgepedError(
            f"{run} has no float student checkpoint (student_distilled.h5 or student.h5)",
            "train the run with the student stage (the QAT model's float parent)",
        )
    dataset = Dataset.open(data_dir)
    prep = Preprocessing.from_manifest_stats(dataset.metadata_stats())
    progress(f"loading {checkpoint}")
    model = load_checkpoint(run / checkpoint)
    if len(model.inputs) < 2:
        raise EdgepedError(
            "the quantisation report needs the image + metadata model", "train with use_metadata"
        )
    seed = int(config["config"].get("seed", 0))
    calibration = calibration_data(
        dataset, prep, samples=calibration_samples, use_metadata=True, seed=seed
    )
    return _RunContext(run, dataset, prep, checkpoint, model, calibration, seed)


def convert_mixed_run(
    run_dir: str | Path,
    mixed: MixedPrecision,
    *,
    name: str = "student_mixed_int8",
    calibration_samples: int = 256,
    progress: Progress = lambda _: None,
) -> Path:
    """Converts the run's float student with `mixed` precision; writes RUN/NAME.tflite + card.

    Raises:
        EdgepedError: no float checkpoint, no dataset, or the conversion failed.
    """
    from edgeped.convert.model_card import build_card, card_bytes
    from edgeped.fileio import sha256_file, write_group_atomic
    from edgeped.layout import card_path

    ctx = _run_context(run_dir, calibration_samples, progress)
    tflite = convert_mixed(ctx.model, ctx.calibration, mixed)
    path = ctx.run / f"{name}.tflite"
    card = build_card(
        tflite,
        file_name=path.name,
        mode="int16x8" if mixed.int16_activations else "mixed-int8",
        architecture=ctx.model.name,
        parameters=int(ctx.model.count_params()),
        prep=ctx.prep,
        source={
            "checkpoint": ctx.checkpoint,
            "checkpoint_sha256": sha256_file(ctx.run / ctx.checkpoint),
            "float_parent": ctx.checkpoint,
            "dataset": str(ctx.dataset.root),
            "dataset_manifest_sha256": ctx.dataset.manifest_sha256,
            "calibration_samples": int(ctx.calibration.image.shape[0]),
            "mixed_precision": asdict(mixed),
        },
    )
    write_group_atomic({path: tflite, card_path(path): card_bytes(card)})
    return path


def quant_debug_run(
    run_dir: str | Path,
    options: QuantDebugOptions | None = None,
    *,
    progress: Progress = lambda _: None,
) -> QuantDebugResult:
    """Per-layer int8 error of a run's float student, and what float/16x8 layers buy back.

    Args:
        run_dir: a trained run (its float student: student_distilled.h5, else student.h5).
        options: crops, number of layers tried in float, operating point, counting.
        progress: called with one-line status messages.

    Raises:
        EdgepedError: no float checkpoint, no dataset, or a conversion failed.
    """
    from edgeped.convert.converter import convert_model
    from edgeped.fileio import sha256_bytes, sha256_file

    options = options or QuantDebugOptions()
    ctx = _run_context(run_dir, options.calibration_samples, progress)
    model = ctx.model
    debug = debug_crops(ctx.dataset, ctx.prep, options.debug_samples, ctx.seed)
    progress(f"per-layer errors on {debug.image.shape[0]} val crops (QuantizationDebugger)")
    layers = layer_errors(model, ctx.calibration, debug)
    val, test = ctx.dataset.read("val"), ctx.dataset.read("test")
    plans = [("float32 parent", "float32", None), ("int8 (all layers)", "int8", MixedPrecision())]
    plans += [
        (f"{e.op} #{i + 1} in float", "float-layer", MixedPrecision(float_nodes=(e.tensor,)))
        for i, e in enumerate(layers[: options.top])
    ]
    plans.append(("16x8 (int16 activations)", "16x8", MixedPrecision(int16_activations=True)))
    variants = []
    for name, kind, mixed in plans:
        progress(f"variant: {name}")
        tflite = (
            convert_model(model, "float32")
            if mixed is None
            else convert_mixed(model, ctx.calibration, mixed)
        )
        v_metrics, t_metrics = score_variant(tflite, ctx.prep, val, test, options.max_fpr)
        insn = count_invoke(tflite, options.core, progress) if options.count_instructions else None
        variants.append(
            Variant(
                name=name,
                kind=kind,
                precision=mixed or MixedPrecision(),
                size_bytes=len(tflite),
                sha256=sha256_bytes(tflite),
                val=v_metrics,
                test=t_metrics,
                instructions=insn,
            )
        )
    return QuantDebugResult(
        run_dir=str(ctx.run),
        float_checkpoint=ctx.checkpoint,
        layers=tuple(layers),
        variants=tuple(variants),
        options=options,
        inputs={
            "checkpoint_sha256": sha256_file(ctx.run / ctx.checkpoint),
            "dataset": str(ctx.dataset.root),
            "dataset_manifest_sha256": ctx.dataset.manifest_sha256,
            "calibration_crops": int(ctx.calibration.image.shape[0]),
            "debug_crops": int(debug.image.shape[0]),
            "val_crops": int(len(val.labels)),
            "test_crops": int(len(test.labels)),
            "core": options.core if options.count_instructions else None,
        },
    )
