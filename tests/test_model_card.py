"""CardFacts: the one reader of a model card's threshold, preprocessing and calibration."""

from __future__ import annotations

import hashlib
import json

import pytest

from edgeped.convert.model_card import CardFacts, card_facts, card_facts_beside
from edgeped.errors import EdgepedError

PRE = {
    "image": {"rule": "standardize", "dtype_in": "uint8"},
    "metadata": {"mean": [0.0] * 6, "std": [1.0] * 6, "clip": 3.0, "rule": "z"},
}
CARD = {
    "kind": "edgeped.model_card",
    "model": {"file": "m.tflite", "sha256": "ab" * 32, "mode": "qat-int8"},
    "preprocessing": PRE,
    "threshold": {"score": 0.375, "rule": "r", "int8": -32, "int8_rule": "q >= int8"},
    "calibration": {"slope": 1.1, "bias": -0.2, "fitted_on": "val"},
    "source": {"dataset": "data/synth"},
}


def _card(**over) -> dict:
    return {**json.loads(json.dumps(CARD)), **over}


def test_facts_of_an_evaluated_card():
    facts = CardFacts.from_card(_card(), "m.card.json")
    assert facts.threshold_score == 0.375 and facts.threshold_int8 == -32
    assert facts.threshold == CARD["threshold"] and facts.calibration == CARD["calibration"]
    assert facts.image_rule == "standardize" and facts.mode == "qat-int8"
    assert facts.model_sha256 == "ab" * 32 and facts.dataset == "data/synth"
    assert facts.decision_threshold() == 0.375
    assert facts.calibrator == {"slope": 1.1, "bias": -0.2}
    assert CardFacts.from_card(_card(calibration=None), "c").calibrator is None
    assert facts.runner_preprocess() == {
        "image": {"rule": "standardize"},
        "metadata": {"mean": [0.0] * 6, "std": [1.0] * 6, "clip": 3.0},
    }
    canonical = json.dumps(PRE, sort_keys=True, separators=(",", ":")).encode()
    assert facts.preprocessing_sha256 == hashlib.sha256(canonical).hexdigest()


def test_a_card_before_eval_has_no_threshold_and_says_how_to_get_one():
    facts = CardFacts.from_card(_card(threshold=None, calibration=None), "m.card.json")
    assert facts.threshold_score is None and facts.threshold_int8 is None
    with pytest.raises(EdgepedError, match="m.card.json has no operating threshold") as info:
        facts.decision_threshold("runs/r1")
    assert "edgeped eval runs/r1" in info.value.fix


@pytest.mark.parametrize(
    "over, word",
    [
        ({"threshold": {"score": "high"}}, "threshold.score"),
        ({"threshold": {"score": 0.5, "int8": 300}}, "threshold.int8"),
        ({"threshold": {"score": True}}, "threshold.score"),
        ({"threshold": [0.5]}, "threshold is"),
        ({"model": {"mode": "float32"}}, "model.sha256"),
        ({"preprocessing": "z-score"}, "preprocessing is"),
    ],
)
def test_a_malformed_fact_is_refused_naming_the_file_and_the_fact(over, word):
    with pytest.raises(EdgepedError, match="m.card.json") as info:
        CardFacts.from_card(_card(**over), "m.card.json")
    assert word in info.value.problem and "edgeped" in info.value.fix


def test_runner_preprocess_needs_metadata_mean_and_std():
    assert CardFacts.from_card(_card(preprocessing=None), "c").runner_preprocess() is None
    facts = CardFacts.from_card(_card(preprocessing={"metadata": {"mean": [0] * 6}}), "c")
    with pytest.raises(EdgepedError, match="no metadata mean/std"):
        facts.runner_preprocess()
    bad = {"metadata": {"mean": [0] * 6, "std": [1] * 5 + [0]}}
    with pytest.raises(EdgepedError, match=r"preprocessing\.metadata\.std\[5\]"):
        CardFacts.from_card(_card(preprocessing=bad), "c").runner_preprocess()
    assert CardFacts.from_card(_card(preprocessing=None), "c").image_rule == "fixed"


def test_loaders_read_the_card_of_a_run_and_beside_a_model(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"model bytes")
    sha = hashlib.sha256(b"model bytes").hexdigest()
    with pytest.raises(EdgepedError, match="no model card m.card.json") as info:
        card_facts(tmp_path, "m")
    assert "edgeped convert" in info.value.fix
    with pytest.raises(EdgepedError, match="no model card beside it"):
        card_facts_beside(model)
    (tmp_path / "m.card.json").write_text(json.dumps(_card(model={"sha256": sha})))
    assert card_facts(tmp_path, "m").threshold_score == 0.375
    assert card_facts_beside(model).model_sha256 == sha
    model.write_bytes(b"another model")
    with pytest.raises(EdgepedError, match="was made for the model with sha256"):
        card_facts_beside(model)
