"""The model card as Markdown: written beside the JSON, says how to feed the model."""

import json

from edgeped.convert.model_card import markdown_path, render_card_markdown, write_card

CARD = {
    "kind": "edgeped.model_card",
    "model": {
        "file": "student_qat_int8.tflite",
        "sha256": "ab" * 32,
        "size_bytes": 86296,
        "mode": "qat-int8",
        "architecture": "student",
        "parameters": 53416,
        "ops": {"CONV_2D": 7, "LOGISTIC": 1},
        "float_ops": [],
    },
    "inputs": [
        {
            "role": "meta",
            "name": "serving_default_meta:0",
            "shape": [1, 12],
            "dtype": "int8",
            "scale": 0.031,
            "zero_point": -2,
        },
        {
            "role": "image",
            "name": "serving_default_image:0",
            "shape": [1, 128, 64, 3],
            "dtype": "int8",
            "scale": 0.0078125,
            "zero_point": 0,
        },
    ],
    "outputs": [
        {
            "role": "score",
            "name": "out:0",
            "shape": [1, 1],
            "dtype": "int8",
            "scale": 0.00390625,
            "zero_point": -128,
        },
    ],
    "preprocessing": {
        "image": {
            "channels": "RGB",
            "dtype_in": "uint8",
            "layout": "NHWC",
            "float_rule": "x = (u8 - 128) / 128",
            "int8_rule": "q = u8 - 128",
            "u8_minus_128_exact": True,
        },
        "metadata": {
            "fields": ["speed_mps", "yaw_rate_rps"],
            "mean": [9.1, 0.0],
            "std": [5.3, 0.08],
            "clip": 4.0,
            "rule": "z = clip((v - mean) / std)",
        },
    },
    "output": {
        "meaning": "probability that the crop shows a pedestrian",
        "int8_rule": "p = (q - output_zero_point) * output_scale",
    },
    "threshold": {
        "score": 0.359375,
        "rule": "max recall with val FPR <= 0.01",
        "selected_on": "val",
        "val_recall": 0.9378,
        "val_fpr": 0.0092,
        "int8": -36,
        "int8_rule": "pedestrian when output q >= int8",
    },
    "source": {"checkpoint": "student_qat.h5", "dataset_manifest_sha256": "cd" * 32},
    "tool_versions": {"edgeped": "0.1.0"},
}


def test_markdown_card_says_what_a_device_needs():
    text = render_card_markdown(CARD)
    assert text.startswith("# Model card: `student_qat_int8.tflite`")
    assert "**qat-int8**" in text and "84.3 KiB" in text
    assert "threshold: **0.359375**" in text and "int8 = **-36**" in text
    assert "| image | `serving_default_image:0` | [1, 128, 64, 3] | int8 | 0.0078125 | 0 |" in text
    assert "| speed_mps | 9.1 | 5.3 |" in text and "x = (u8 - 128) / 128" in text
    assert "checkpoint: `student_qat.h5`" in text


def test_card_without_threshold_says_so():
    text = render_card_markdown({**CARD, "threshold": None})
    assert "not chosen yet (run `edgeped eval`)" in text


def test_write_card_writes_json_and_markdown(tmp_path):
    path = tmp_path / "student_qat_int8.card.json"
    write_card(path, CARD)
    assert json.loads(path.read_text()) == CARD
    assert markdown_path(path).name == "student_qat_int8.card.md"
    assert markdown_path(path).read_text() == render_card_markdown(CARD)


def test_a_partial_card_still_renders():
    text = render_card_markdown({"model": {"file": "x.tflite"}, "threshold": {"score": 0.5}})
    assert "# Model card: `x.tflite`" in text and "threshold: **0.5** (?" in text
