"""The shadow report: rates, directions, intervals, McNemar, slices; offline and on a target."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeped.errors import EdgepedError
from edgeped.rollout.shadow_log import Integrity, ShadowRecords, Side
from edgeped.rollout.shadow_report import ShadowConfig, mcnemar_exact, shadow_report, wilson


def _records(b, c, labels=None, tags=None):
    b, c = np.asarray(b, np.int8), np.asarray(c, np.int8)
    n = b.size
    return ShadowRecords(
        crop_ids=np.array([f"k{i}" for i in range(n)]),
        baseline=Side(b * 0.6 + 0.2, b),
        candidate=Side(c * 0.6 + 0.2, c),
        baseline_info={"name": "b", "threshold": 0.5},
        candidate_info={"name": "c", "threshold": 0.5},
        source={"kind": "test"},
        labels=None if labels is None else np.asarray(labels),
        tags=tags or {},
        integrity=Integrity(records=n),
    )


def test_directions_rates_and_intervals_by_hand():
    # 10 crops: baseline calls 4 pedestrian; candidate drops 2 of them, adds 1.
    b = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    c = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    labels = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    r = shadow_report(_records(b, c, labels), ShadowConfig(min_slice_crops=5)).overall
    assert r["flip_rate"]["count"] == 3 and r["flip_rate"]["rate"] == pytest.approx(0.3)
    # Disagreement: the candidate drops 2 of the baseline's 4 pedestrian calls ...
    d = r["disagreement"]
    assert d["new_miss_rate"]["count"] == 2 and d["new_miss_rate"]["of"] == 4
    assert r["new_miss_rate_all"]["rate"] == pytest.approx(0.2)
    # ... but on labels only one of them was a pedestrian (of 3 the baseline found); the
    # other was a baseline false alarm, rejected: a gain, not a miss.
    assert r["basis"] == "labels"
    assert r["new_miss_rate"]["count"] == 1 and r["new_miss_rate"]["of"] == 3
    assert r["gains"]["false_alarms_removed"]["count"] == 1
    assert r["new_false_alarm_rate"]["count"] == 1  # k4: background the candidate now flags
    assert r["harmful_flip_rate"]["count"] == 2
    assert r["new_detection_rate"]["count"] == 1 and r["new_detection_rate"]["of"] == 6
    lo, hi = r["flip_rate"]["ci95"]
    assert (lo, hi) == pytest.approx(wilson(3, 10)) and lo < 0.3 < hi
    # Wilson by its closed form.
    z, p, n = 1.959963984540054, 0.3, 10
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (lo, hi) == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert r["baseline"]["recall"]["rate"] == pytest.approx(1.0)
    assert r["candidate"]["recall"]["rate"] == pytest.approx(2 / 3)
    assert r["baseline"]["fpr"]["count"] == 1 and r["candidate"]["fpr"]["count"] == 1
    assert r["new_misses_of_pedestrians"]["count"] == 1
    # Exact McNemar: 1 vs 2 discordant -> two-sided binomial p = 1.0
    assert r["mcnemar"]["p_value"] == pytest.approx(1.0)


def test_a_candidate_that_only_rejects_false_alarms_loses_no_pedestrian():
    # The baseline flags 5 background crops; the candidate rejects them all and keeps
    # every pedestrian: on labels that is a pure gain, without labels it is disagreement.
    labels = [1] * 10 + [0] * 90
    b = [1] * 10 + [1] * 5 + [0] * 85
    c = [1] * 10 + [0] * 90
    labelled = shadow_report(_records(b, c, labels)).overall
    assert labelled["basis"] == "labels"
    assert labelled["new_miss_rate"]["count"] == 0 and labelled["new_miss_rate"]["of"] == 10
    assert labelled["harmful_flip_rate"]["count"] == 0
    assert labelled["gains"]["false_alarms_removed"]["count"] == 5
    unlabelled = shadow_report(_records(b, c)).overall
    assert unlabelled["basis"] == "disagreement"
    assert unlabelled["new_miss_rate"]["count"] == 5 and unlabelled["new_miss_rate"]["of"] == 15
    # A partly labelled log cannot judge errors: it stays on disagreement.
    partial = shadow_report(_records(b, c, labels[:-1] + [-1])).overall
    assert partial["basis"] == "disagreement" and partial["new_miss_rate"]["count"] == 5


def test_mcnemar_exact_detects_a_one_sided_shift():
    assert mcnemar_exact(0, 10)["p_value"] == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact(0, 0)["p_value"] == 1.0


def test_slices_mark_small_ones_and_self_comparison_is_zero():
    rng = np.random.default_rng(0)
    b = (rng.random(100) < 0.3).astype(int)
    tags = {"lighting": np.array(["day"] * 80 + ["night"] * 20)}
    report = shadow_report(_records(b, b, tags=tags), ShadowConfig(min_slice_crops=30))
    assert report.overall["flip_rate"]["count"] == 0 and report.new_miss_ids == ()
    rows = report.slices["lighting"]
    assert rows["day"]["judgeable"] and not rows["night"]["judgeable"]
    assert rows["night"]["crops"] == 20 and rows["night"]["flip_rate"]["ci95"][1] > 0.1


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="min_slice_crops"):
        ShadowConfig(min_slice_crops=0)
    with pytest.raises(ValueError, match="level"):
        ShadowConfig(level=1.5)


@pytest.mark.slow
def test_offline_report_from_a_run_matches_eval_flips(tiny_run, tmp_path):
    from edgeped.rollout.shadow import build_report

    metrics = json.loads((tiny_run / "metrics.json").read_text())
    comp = metrics["comparisons"][0]
    report, files = build_report(
        tiny_run, tmp_path, baseline=comp["float"], candidate=comp["quantized"]
    )
    assert report.overall["flip_rate"]["count"] == comp["flips"]
    assert report.overall["flip_rate"]["rate"] == pytest.approx(comp["flip_rate"])
    assert set(report.slices) == {"lighting", "weather", "scene", "hard_negative"}
    saved = json.loads(files["json"].read_text())
    assert saved["kind"] == "edgeped.shadow_report" and saved["candidate"]["sha256"]
    assert files["markdown"].read_text().startswith("# Shadow report")
    with pytest.raises(EdgepedError, match="name the two models"):
        build_report(tiny_run, tmp_path)
    with pytest.raises(EdgepedError, match="no model"):
        build_report(tiny_run, tmp_path, baseline="nope", candidate=comp["quantized"])


@pytest.mark.slow
def test_device_shadow_against_int8_sibling_gives_exactly_evals_flips(
    tiny_run, tiny_dataset, tmp_path
):
    """On the host target, over every test crop: the device's flips are eval's flips."""
    from edgeped.rollout.shadow import ShadowOptions, run_shadow
    from edgeped.targets import resolve_target

    metrics = json.loads((tiny_run / "metrics.json").read_text())
    test_crops = metrics["dataset"]["test"]["crops"]
    for comp in metrics["comparisons"]:
        out = tmp_path / comp["quantized"]
        run = run_shadow(
            tiny_run / f"{comp['float']}.tflite",
            tiny_run / f"{comp['quantized']}.tflite",
            resolve_target("local"),
            out,
            data_dir=tiny_dataset,
            options=ShadowOptions(cost_runs=5, warmup=1),
        )
        o = run.report.overall
        assert o["crops"] == test_crops
        assert o["flip_rate"]["count"] == comp["flips"], comp
        assert run.report.integrity["ok"] and run.report.integrity["finished"]
        assert (out / "shadow.json").is_file() and (out / "shadow_scores.png").is_file()
        if o["new_miss_rate"]["count"]:
            assert (out / "shadow_new_misses.png").is_file()
    # Self-shadow over the same crops: zero flips, identical scores.
    name = metrics["comparisons"][0]["quantized"]
    model = tiny_run / f"{name}.tflite"
    run = run_shadow(
        model, model, resolve_target("local"), tmp_path / "self", data_dir=tiny_dataset,
        options=ShadowOptions(cost_runs=5, warmup=1),
    )  # fmt: skip
    assert run.report.overall["flip_rate"]["count"] == 0
    assert run.report.score_agreement["max_abs_diff"] == 0.0
    with pytest.raises(EdgepedError, match="never overwritten"):
        run_shadow(model, model, resolve_target("local"), tmp_path / "self", data_dir=tiny_dataset)


def test_card_int8_threshold_decides_like_eval_on_every_raw_value():
    """The device compares raw int8 outputs; eval compares probabilities: same decisions."""
    from edgeped.evaluate.inference import dequantize, int8_threshold

    scale, zero = 1 / 256, -128
    q = np.arange(-128, 128)
    probs = dequantize(q, scale, zero).astype(np.float64)
    # Exact dequantised values, values just above them (eval's "nothing positive"
    # threshold is the next float above the top score) and values between steps.
    for t in [*probs[::17], *np.nextafter(probs[::13], 2.0), 0.3, 0.99999, 1.5, -1.0]:
        qt = int8_threshold(float(t), scale, zero)
        assert np.array_equal(q >= qt, probs >= t), t


def _scored_run(root, scores: dict[str, list[float]], threshold: float = 0.5):
    """A run eval has scored: metrics.json, test_scores.npz and a card per model."""
    from edgeped.evaluate.scores import write_test_scores

    root.mkdir()
    n = len(next(iter(scores.values())))
    ids, labels = [f"c{i}" for i in range(n)], np.arange(n) % 2
    digest = write_test_scores(root / "test_scores.npz", ids, labels, scores)
    models = {}
    for name in scores:
        sha = f"{len(models):064x}"
        models[name] = {
            "model": {"sha256": sha, "size_bytes": 1000},
            "threshold": {"threshold": threshold, "rule": "r", "recall": 1.0, "fpr": 0.0},
            "calibration": {"fitted": True, "calibrator": {"slope": 1.0, "bias": 0.5}},
        }
        card = {
            "kind": "edgeped.model_card",
            "model": {"sha256": sha, "mode": "float32"},
            "threshold": {"score": threshold, "rule": "r", "selected_on": "val"},
            "calibration": {"slope": 1.0, "bias": 0.5, "method": "platt", "fitted_on": "val"},
        }
        (root / f"{name}.card.json").write_text(json.dumps(card))
    metrics = {
        "kind": "edgeped.metrics",
        "models": models,
        "test_scores": {"file": "test_scores.npz", "sha256": digest},
    }
    (root / "metrics.json").write_text(json.dumps(metrics))
    return root


def test_offline_shadow_decides_with_the_cards_threshold_not_metrics_json(tmp_path):
    """The card is the one source of threshold and calibrator: edits to metrics.json do nothing."""
    from edgeped.rollout.shadow import records_from_run

    run = _scored_run(tmp_path / "run", {"a": [0.1, 0.4, 0.6, 0.9], "b": [0.2, 0.6, 0.4, 0.8]})
    before = records_from_run(run, "a", "b")
    assert before.baseline.decisions.tolist() == [0, 0, 1, 1]
    assert before.candidate_info["threshold"] == 0.5

    assert before.baseline_info["calibrator"] == {"slope": 1.0, "bias": 0.5, "method": "platt"}

    metrics = json.loads((run / "metrics.json").read_text())
    for entry in metrics["models"].values():
        entry["threshold"]["threshold"] = 0.95
        entry["calibration"]["calibrator"] = {"slope": 2.0, "bias": 0.0}
    (run / "metrics.json").write_text(json.dumps(metrics))
    after = records_from_run(run, "a", "b")
    assert after.baseline.decisions.tolist() == before.baseline.decisions.tolist()
    assert after.candidate.decisions.tolist() == before.candidate.decisions.tolist()
    assert after.baseline_info["threshold"] == after.candidate_info["threshold"] == 0.5
    assert after.candidate_info["calibrator"] == before.candidate_info["calibrator"]

    card = json.loads((run / "b.card.json").read_text())
    card["threshold"] = None  # `convert` run again after `eval`
    (run / "b.card.json").write_text(json.dumps(card))
    with pytest.raises(EdgepedError, match="no operating threshold") as info:
        records_from_run(run, "a", "b")
    assert "b.card.json" in info.value.problem and "edgeped eval" in info.value.fix
