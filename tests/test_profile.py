"""`edgeped profile`: per-op rows from prefix models, the sum check, the runner's --per-op mode."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import run_device_runner

from edgeped.cli import main
from edgeped.profile.graph import graph_ops, prefix_model
from edgeped.profile.ops import Measure, limit_for, op_flags, profile_rows
from edgeped.profile.render import save as save_report
from edgeped.profile.run import ProfileOptions, write_bundle


def test_graph_ops_of_the_two_layer_model(device_models):
    ops = graph_ops(device_models["int8"].read_bytes())
    kinds = [o.kind for o in ops]
    assert kinds.count("CONV_2D") == 1 and kinds.count("DEPTHWISE_CONV_2D") == 1
    conv = next(o for o in ops if o.kind == "CONV_2D")
    # 4 filters 3x3x3 at stride 4 on 128x64 (valid): 32x16 outputs (rounded down).
    assert conv.input_shapes == ((1, 128, 64, 3),)
    assert conv.output_shape == (1, 32, 16, 4)
    assert conv.macs == 32 * 16 * 4 * 27
    concat = next(o for o in ops if o.kind == "CONCATENATION")
    assert len(concat.input_shapes) == 2  # activations only: no weights in the shapes


def test_rows_share_and_mac_per_insn_from_prefix_counts(device_models):
    ops = graph_ops(device_models["int8"].read_bytes())
    prefixes = [1000.0 * (k + 1) for k in range(len(ops))]
    m = Measure(
        "cortex-a76", "instructions", prefixes[-1], tuple(prefixes), limit_for("cortex-a76")
    )
    rows = profile_rows(ops, [m])
    costs = [r["cost"]["cortex-a76"]["instructions"] for r in rows]
    assert costs == [1000.0] * len(ops)
    assert sum(r["cost"]["cortex-a76"]["share"] for r in rows) == pytest.approx(1.0)
    conv = next(r for r in rows if r["kind"] == "CONV_2D")
    assert conv["cost"]["cortex-a76"]["mac_per_insn"] == pytest.approx(conv["macs"] / 1000.0)
    assert m.sums_to_whole
    off = Measure("cortex-a76", "instructions", prefixes[-1] * 1.05, tuple(prefixes), 16)
    assert not off.sums_to_whole
    with pytest.raises(ValueError, match="prefix measurements"):
        profile_rows(ops, [Measure("cortex-a76", "instructions", 1.0, (1.0,), 16)])


def test_flags_name_ops_far_below_the_limit(device_models):
    conv = next(o for o in graph_ops(device_models["int8"].read_bytes()) if o.kind == "CONV_2D")
    whole = conv.macs * 2.0
    assert op_flags(conv, conv.macs / 2.0, whole, 16)  # 2 MAC/instr < 25% of 16
    assert not op_flags(conv, conv.macs / 8.0, whole, 16)  # 8 MAC/instr is half the limit
    assert not op_flags(conv, conv.macs / 2.0, conv.macs * 1e3, 16)  # 0.05% of the invoke
    assert limit_for("cortex-a53") == limit_for("cortex-a72") == 8
    assert limit_for("cortex-a76") == 16


def test_options_round_trip_and_reject_bad_values():
    options = ProfileOptions(cores=("a76",), insn_runs=5)
    assert ProfileOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options
    with pytest.raises(ValueError, match="a53"):
        ProfileOptions(cores=("a99",))
    with pytest.raises(ValueError, match="insn_runs"):
        ProfileOptions(insn_runs=0)


def test_runner_per_op_times_every_prefix(device_models, tmp_path):
    model = device_models["int8"]
    n_ops = write_bundle(model.read_bytes(), None, tmp_path / "bundle.npz", seed=0)
    code, result, err = run_device_runner(
        model, "--per-op", "--crops", tmp_path / "bundle.npz", "--min-runs", "5"
    )
    assert code == 0, err
    assert result["metric"] == "time_us" and len(result["prefixes"]) == n_ops
    assert all(p["time_us_p50"] > 0 for p in result["prefixes"])
    assert "not exposed" in result["litert_op_profiler"]


def test_runner_per_op_refuses_crops_without_prefixes(device_models, device_crops):
    code, result, _ = run_device_runner(device_models["int8"], "--per-op", "--crops", device_crops)
    assert code == 65 and result["error"]["code"] == "crops_invalid"


def test_prefix_of_every_op_is_the_whole_graph(device_models):
    data = device_models["int8"].read_bytes()
    n = len(graph_ops(data))
    assert [o.kind for o in graph_ops(prefix_model(data, n))] == [o.kind for o in graph_ops(data)]


def test_cli_profile_local_writes_json_md_png(device_models, tmp_path):
    folder = tmp_path / "prof"
    result = CliRunner().invoke(
        main,
        [
            "profile",
            str(device_models["int8"]),
            "--target",
            "local",
            "--runs",
            "5",
            "--out",
            str(folder),
            "--core",
            "a76",
        ],
    )
    assert result.exit_code == 0, result.output
    out = folder / "int8.local"
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["kind"] == "edgeped.profile" and len(data["rows"]) == len(
        graph_ops(device_models["int8"].read_bytes())
    )
    assert "| CONV_2D |" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["profile", "no_such.tflite"], 65, "model not found"),
        (["profile", "{model}", "--core", "a99"], 64, "a53"),
    ],
)
def test_cli_profile_bad_input(device_models, args, code, text):
    args = [a.replace("{model}", str(device_models["int8"])) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    assert text in result.output and "Traceback" not in result.output


def test_cli_profile_not_a_tflite(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    result = CliRunner().invoke(main, ["profile", str(bad), "--target", "local"])
    assert result.exit_code == 65 and "not a TFLite model" in result.output


@pytest.mark.emulated
@pytest.mark.slow
def test_emulated_per_op_instructions_add_up_to_the_whole(device_models, arm64_board, tmp_path):
    from edgeped.profile.run import profile_model

    model = device_models["int8"]
    result = profile_model(model, "arm64-emu", ProfileOptions(cores=("a53", "a76")))
    ops = graph_ops(model.read_bytes())
    assert [m.where for m in result.measures] == ["cortex-a53", "cortex-a76"]
    for m in result.measures:
        assert m.metric == "instructions" and m.whole > 10_000
        per_op = [r["cost"][m.where]["instructions"] for r in result.rows]
        assert len(per_op) == len(ops)
        assert abs(sum(per_op) / m.whole - 1.0) <= 0.02
        conv = next(r for r in result.rows if r["kind"] == "CONV_2D")
        assert conv["cost"][m.where]["instructions"] > 0
    # The conv kernels differ by core (sdot on a76): a76 needs fewer instructions for it.
    conv = next(r for r in result.rows if r["kind"] == "CONV_2D")["cost"]
    assert conv["cortex-a76"]["instructions"] < conv["cortex-a53"]["instructions"]
    paths = save_report(result, tmp_path / "p")
    assert "a76 MAC/instr" in paths[1].read_text()
