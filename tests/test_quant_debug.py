"""The quantisation report: per-layer int8 errors ranked, float/16x8 variants measured."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edgeped.cli import main
from edgeped.convert.converter import CalibrationData, MixedPrecision, convert_mixed
from edgeped.evaluate.quant_debug import (
    QuantDebugOptions,
    layer_errors,
    parse_layer_dump,
    quant_debug_run,
)
from edgeped.evaluate.quant_debug_render import save as save_report

DUMP = """op_name,tensor_idx,num_elements,stddev,mean_error,max_abs_error,mean_squared_error,scale,zero_point,tensor_name
CONV_2D,17,2048.0,0.002,0.0,0.011,0.0001,0.01,-128,model/conv/Relu
MEAN,29,4.0,0.002,0.0,0.005,0.0004,0.1,-128,model/pool/Mean
"""


def test_parse_layer_dump_ranks_by_error_in_quantisation_steps():
    layers = parse_layer_dump(DUMP)
    # conv: rmse 0.01 / scale 0.01 = 1.0 step; pool: rmse 0.02 / scale 0.1 = 0.2 step.
    assert [e.op for e in layers] == ["CONV_2D", "MEAN"]
    assert layers[0].rmse_over_scale == pytest.approx(1.0)
    assert layers[1].rmse == pytest.approx(0.02)
    with pytest.raises(ValueError, match="lacks columns"):
        parse_layer_dump("op_name,foo\nCONV_2D,1\n")


@pytest.fixture(scope="module")
def float_model_and_data():
    from conftest import _tiny_device_model

    rng = np.random.default_rng(0)
    data = CalibrationData(
        rng.uniform(-1, 1, (16, 128, 64, 3)).astype(np.float32),
        rng.normal(size=(16, 12)).astype(np.float32),
    )
    return _tiny_device_model(), data


@pytest.mark.slow
def test_debugger_and_a_layer_kept_in_float(float_model_and_data):
    from ai_edge_litert.interpreter import Interpreter

    model, data = float_model_and_data
    layers = layer_errors(model, data, data)
    ops = {e.op for e in layers}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= ops
    assert all(e.scale > 0 and e.rmse >= 0 for e in layers)
    ranked = [e.rmse_over_scale for e in layers]
    assert ranked == sorted(ranked, reverse=True)

    def conv_dtypes(tflite):
        interp = Interpreter(model_content=tflite)
        tensors = {t["index"]: t for t in interp.get_tensor_details()}
        return {
            str(tensors[op["outputs"][0]]["dtype"].__name__)
            for op in interp._get_ops_details()
            if op["op_name"] == "CONV_2D"
        }, [d["dtype"].__name__ for d in interp.get_input_details()]

    conv = next(e for e in layers if e.op == "CONV_2D")
    assert conv_dtypes(convert_mixed(model, data, MixedPrecision())) == (
        {"int8"},
        ["int8", "int8"],
    )
    kept, io = conv_dtypes(convert_mixed(model, data, MixedPrecision(float_nodes=(conv.tensor,))))
    assert kept == {"float32"} and io == ["int8", "int8"]  # the device contract holds
    int16 = convert_mixed(model, data, MixedPrecision(int16_activations=True))
    assert conv_dtypes(int16)[0] == {"int16"}
    with pytest.raises(ValueError, match="whole model"):
        MixedPrecision(float_nodes=("x",), int16_activations=True)


@pytest.mark.slow
def test_report_on_a_trained_run(tiny_run, tmp_path):
    options = QuantDebugOptions(
        calibration_samples=32, debug_samples=32, top=1, count_instructions=False
    )
    result = quant_debug_run(tiny_run, options)
    kinds = [v.kind for v in result.variants]
    assert kinds == ["float32", "int8", "float-layer", "16x8"]
    for v in result.variants:
        assert 0.0 <= v.test["recall"] <= 1.0 and 0.0 < v.test["auc_pr"] <= 1.0
    assert result.variants[2].precision.float_nodes == (result.layers[0].tensor,)
    json_path, md_path = save_report(result, tmp_path / "qd")
    data = json.loads(json_path.read_text())
    assert data["kind"] == "edgeped.quant_debug" and len(data["layers"]) == len(result.layers)
    assert "RMSE/scale" in md_path.read_text()
    assert QuantDebugOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options


@pytest.mark.slow
def test_cli_keep_float_writes_model_and_card(tiny_run, tmp_path):
    # A copy: the written model must not join the shared run other tests evaluate.
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = CliRunner().invoke(
        main,
        [
            "quant-debug",
            str(run),
            "--int16",
            "--name",
            "student_16x8",
            "--calibration-samples",
            "16",
        ],
    )
    assert result.exit_code == 0, result.output
    card = json.loads((run / "student_16x8.card.json").read_text())
    assert card["source"]["mixed_precision"]["int16_activations"] is True


def test_cli_bad_input(tmp_path):
    result = CliRunner().invoke(main, ["quant-debug", str(tmp_path)])
    assert result.exit_code == 65 and "error:" in result.output
    result = CliRunner().invoke(
        main, ["quant-debug", str(tmp_path), "--keep-float", "x", "--int16"]
    )
    assert result.exit_code == 64 and "whole model" in result.output
    result = CliRunner().invoke(main, ["quant-debug", str(tmp_path), "--max-fpr", "2"])
    assert result.exit_code == 64
