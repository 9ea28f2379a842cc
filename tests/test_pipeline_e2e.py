"""The whole path on a tiny model: train -> QAT -> convert -> evaluate (through the CLI)."""

import json

import numpy as np
import pytest

from edgeped.convert.inspect import load_interpreter, tensor_infos
from edgeped.data.preprocess import Preprocessing
from edgeped.data.shards import Dataset
from edgeped.evaluate.inference import TfliteScorer

pytestmark = pytest.mark.slow


def test_run_directory_has_every_artifact(tiny_run):
    for name in (
        "config.json",
        "train_log.json",
        "teacher.h5",
        "student_distilled.h5",
        "student_qat.h5",
        "plots/reliability.png",
        "plots/recall_vs_size.png",
        "metrics.json",
        "report.md",
        "plots/pr.png",
        "plots/roc.png",
    ):
        assert (tiny_run / name).is_file(), name
    for model in (
        "teacher_float32",
        "student_distilled_float32",
        "student_ptq_int8",
        "student_qat_int8",
    ):
        assert (tiny_run / f"{model}.tflite").is_file()
        card = json.loads((tiny_run / f"{model}.card.json").read_text())
        assert card["threshold"]["selected_on"] == "val"
        assert card["source"]["dataset_manifest_sha256"]
    assert (tiny_run / "plots/pr.png").read_bytes()[:4] == b"\x89PNG"


def test_int8_models_take_u8_minus_128_and_give_int8(tiny_run):
    for model in ("student_qat_int8", "student_ptq_int8"):
        card = json.loads((tiny_run / f"{model}.card.json").read_text())
        image = next(t for t in card["inputs"] if t["role"] == "image")
        assert image["dtype"] == "int8" and image["scale"] == 1 / 128 and image["zero_point"] == 0
        assert card["preprocessing"]["image"]["u8_minus_128_exact"] is True
        assert card["outputs"][0]["dtype"] == "int8"
        assert card["model"]["float_ops"] == []
        assert isinstance(card["threshold"]["int8"], int)


def test_int8_scores_track_float_scores(tiny_run, tiny_dataset):
    ds = Dataset.open(tiny_dataset)
    batch = ds.read("test")
    prep = Preprocessing.from_manifest_stats(ds.metadata_stats())
    float_scores = (
        TfliteScorer(tiny_run / "student_distilled_float32.tflite", prep)
        .score(batch.images, batch.metadata)
        .probability
    )
    for model in ("student_qat_int8", "student_ptq_int8"):
        q = TfliteScorer(tiny_run / f"{model}.tflite", prep).score(batch.images, batch.metadata)
        assert q.raw.dtype == np.int8
        assert np.abs(q.probability - float_scores).mean() < 0.05, model
        assert np.corrcoef(q.probability, float_scores)[0, 1] > 0.9, model


def test_metrics_json_is_consistent(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["schema_version"] == 1 and metrics["kind"] == "edgeped.metrics"
    for name, r in metrics["models"].items():
        assert r["threshold"]["fpr"] <= 0.01
        t = r["test"]
        assert t["tp"] == round(t["recall"] * t["positives"])
        assert 0 <= t["auc_pr"] <= 1 and 0 <= t["roc_auc"] <= 1
        assert set(r["test_slices"]) == {"lighting", "weather", "scene", "hard_negative"}
        sha = metrics["inputs"][name]["sha256"]
        card = json.loads((tiny_run / f"{name}.card.json").read_text())
        assert card["model"]["sha256"] == sha
    pairs = {(c["float"], c["quantized"]) for c in metrics["comparisons"]}
    assert pairs == {
        ("student_distilled_float32", "student_qat_int8"),
        ("student_distilled_float32", "student_ptq_int8"),
    }


def test_image_only_inputs_run(tiny_run):
    """A record without metadata is a valid input: the mask tells the model."""
    interpreter = load_interpreter(tiny_run / "student_qat_int8.tflite")
    inputs, _ = tensor_infos(interpreter)
    assert {t.role for t in inputs} == {"image", "meta"}
    prep = Preprocessing(mean=(0.0,) * 6, std=(1.0,) * 6)
    scorer = TfliteScorer(tiny_run / "student_qat_int8.tflite", prep, batch=4)
    images = np.random.default_rng(0).integers(0, 256, (4, 128, 64, 3), dtype=np.uint8)
    scores = scorer.score(images, np.full((4, 6), np.nan, np.float32)).probability
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
