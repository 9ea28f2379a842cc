"""The peer/limit benchmarks' reusable pieces: graph MACs, prefix models, fused preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.device import device_count as dc
from benchmarks.device import graphcost as gc


@pytest.fixture(scope="module")
def tiny_int8() -> bytes:
    """image [1,16,8,3] -> conv3x3 s2 (8) -> dw3x3 -> pw 1x1 (16) -> pool; meta [1,12] -> dense
    4; concat -> dense 1 sigmoid; full int8."""
    from edgeped._keras import keras, tf

    keras.utils.set_random_seed(0)
    L = keras.layers
    image = keras.Input((16, 8, 3), name="image")
    meta = keras.Input((12,), name="meta")
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(image)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Conv2D(16, 1, activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    m = L.Dense(4, activation="relu")(meta)
    x = L.Concatenate()([x, m])
    out = L.Dense(1, activation="sigmoid")(x)
    model = keras.Model([image, meta], out)
    rng = np.random.default_rng(0)

    def rep():
        for _ in range(8):
            yield {
                "image": rng.uniform(-1, 1, (1, 16, 8, 3)).astype(np.float32),
                "meta": rng.normal(size=(1, 12)).astype(np.float32),
            }

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def test_graph_ops_classes_and_macs(tiny_int8):
    ops = gc.graph_ops(tiny_int8)
    by_kind = {o.op_class: o for o in ops}
    assert by_kind["stem"].macs == 8 * 4 * 8 * 3 * 3 * 3  # out 8x4x8, 3x3x3 kernel
    assert by_kind["depthwise"].macs == 8 * 4 * 8 * 9
    assert by_kind["pointwise"].macs == 8 * 4 * 16 * 8
    assert by_kind["meta"].macs == 12 * 4
    assert by_kind["fuse"].kind == "CONCATENATION"
    assert [o.macs for o in ops if o.op_class == "head" and o.kind == "FULLY_CONNECTED"] == [20]
    assert gc.total_macs(tiny_int8) == sum(o.macs for o in ops)


def test_prefix_models_compute_the_same_intermediates(tiny_int8):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    plain = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    rng = np.random.default_rng(2)

    def run(content, preserve=False):
        interp = Interpreter(
            model_content=content,
            experimental_op_resolver_type=plain,
            experimental_preserve_all_tensors=preserve,
        )
        interp.allocate_tensors()
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], feeds[len(d["shape"])])
        interp.invoke()
        return interp

    feeds = {
        4: rng.integers(-128, 128, (1, 16, 8, 3), dtype=np.int8),
        2: rng.integers(-128, 128, (1, 12), dtype=np.int8),
    }
    full = run(tiny_int8, preserve=True)
    by_name = {d["name"]: d["index"] for d in full.get_tensor_details()}
    ops = gc.graph_ops(tiny_int8)
    for keep in range(1, len(ops) + 1):
        prefix = gc.prefix_model(tiny_int8, keep)
        assert gc.num_ops(prefix) == keep
        cut = run(prefix)
        outs = {d["name"]: cut.get_tensor(d["index"]) for d in cut.get_output_details()}
        last = ops[keep - 1].output_name
        assert last in outs  # the op just kept is always an output (nothing after reads it yet)
        np.testing.assert_array_equal(outs[last], full.get_tensor(by_name[last]))
    with pytest.raises(ValueError, match="keep must be"):
        gc.prefix_model(tiny_int8, 0)
    with pytest.raises(ValueError, match="not a TFLite"):
        gc.prefix_model(b"garbage-bytes", 1)


def test_per_op_deltas_and_stats():
    assert gc.per_op_deltas([10, 15, 15, 40]) == [10, 5, 0, 25]
    assert gc.percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(np.percentile([1, 2, 3, 4], 50))
    assert gc.percentile([5.0, 1.0, 3.0], 95) == pytest.approx(np.percentile([5, 1, 3], 95))
    assert gc.mac_per_insn(100, 0) is None
    ops = [
        gc.GraphOp(0, "CONV_2D", "stem", "a", (1,), 100),
        gc.GraphOp(1, "CONV_2D", "pointwise", "b", (1,), 50),
        gc.GraphOp(2, "CONV_2D", "pointwise", "c", (1,), 50),
    ]
    assert gc.by_class(ops, [10, 5, 5])["pointwise"] == {"ops": 2, "macs": 100, "cost": 10}


@pytest.mark.parametrize("image_quant", [(1 / 128, 0), (0.0078, -3), None])
@pytest.mark.parametrize("meta_quant", [(0.04, -5), (0.5, 10), None])
def test_fused_preprocessing_equals_the_runner_rule(image_quant, meta_quant):
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (3, 128, 64, 3), dtype=np.uint8)
    meta = rng.normal(5, 20, (3, 6)).astype(np.float32)
    meta[0, 2] = np.nan
    meta[2, :] = np.nan
    spec = {"mean": [1, 2, 3, 0, -1, 5], "std": [2, 3, 4, 1, 0.5, 10], "clip": 4.0}

    def entry(name, rank, quant):
        if quant is None:
            return (name, rank, np.dtype(np.float32), 0.0, 0)
        return (name, rank, np.dtype(np.int8), quant[0], quant[1])

    specs = [entry("image", 4, image_quant), entry("meta", 2, meta_quant)]
    ref = dc.Preprocess(np, specs, spec)(crops, meta)
    got = dc.FusedPreprocess(np, specs, spec, batch=3)(crops, meta)
    for a, b in zip(ref, got, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        if a.dtype == np.int8:
            # the image is exact; a metadata value may round the other way at .5 (float32
            # runner arithmetic against the fused float64 affine map)
            tolerance = 0 if a.ndim == 4 else 1
            assert np.abs(a.astype(int) - b.astype(int)).max() <= tolerance
        else:
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_dequantise_python_matches_numpy():
    raw = np.array([[-128], [0], [127]], dtype=np.int8)
    quant = (np.dtype(np.int8), 1 / 256, -128)
    np.testing.assert_allclose(dc.dequantise_python(np, raw, quant), dc.dequantise(np, raw, quant))


def test_report_per_op_takes_prefix_differences():
    from benchmarks.device import peer_report

    ops = [
        gc.GraphOp(0, "CONV_2D", "stem", "a", (1, 4, 4, 8), 1000).to_dict(),
        gc.GraphOp(1, "DEPTHWISE_CONV_2D", "depthwise", "b", (1, 4, 4, 8), 100).to_dict(),
    ]
    counts = {
        core: {
            "litert": {
                "results": [
                    {"name": "prefix_1", "instructions_per_invoke": 500 * (i + 1)},
                    {"name": "prefix_2", "instructions_per_invoke": 500 * (i + 1) + 50},
                ]
            }
        }
        for i, core in enumerate(peer_report.CORE_SHORT)
    }
    rows, cores = peer_report.per_op(
        {"ops": ops, "counts": counts, "host_prefix_p50_us": [10.0, 12.5]}
    )
    assert cores["cortex-a53"] == [500, 50] and cores["cortex-a76"] == [1500, 50]
    assert rows[1]["instructions"]["cortex-a72"] == 50 and rows[1]["host_us"] == 2.5
    assert peer_report.insns({"counts": counts}, "cortex-a76", "litert", "missing") is None


def test_variant_plot_points_and_png(tmp_path):
    import json

    from benchmarks.training import plot_variants

    def result(name, ins, macs):
        return {
            "rows": [{"variant": {"name": name}, "macs": macs, "instructions": {"cortex-a76": ins}}]
        }

    a, b = result("base", 1_000_000, 4_000_000), result("base", 500_000, 4_000_000)
    assert plot_variants.points([a])["base"] == (1_000_000, 4.0, 4_000_000)
    assert plot_variants.points([a, b])["base"][1] == 8.0  # the later file wins
    files = []
    for i, r in enumerate((a, result("wide", 2_000_000, 14_000_000))):
        files.append(tmp_path / f"r{i}.json")
        files[-1].write_text(json.dumps(r))
    out = tmp_path / "v.png"
    assert plot_variants.main([str(f) for f in files] + ["--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
