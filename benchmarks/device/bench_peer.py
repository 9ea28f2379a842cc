"""LiteRT against ONNX Runtime, per-operator cost, batching/threads and end-to-end overhead.

One run of this script measures, for a run directory's converted student models:
  1. peer table: LiteRT vs ONNX Runtime (CPUExecutionProvider) host invoke p50/p95 at
     1 thread, instructions per invoke on emulated cortex-a53/a72/a76, decision agreement
     on the test split, per-call overhead (instructions and host time of a one-op model);
  2. per-operator cost of the int8 model: instructions per op on each core from prefix
     models (the model cut after op k), host time per op the same way, MAC/instr per op,
     and ONNX Runtime's own host node profile;
  3. batch 1/4/16/64 instructions per crop on emulated a76 and host time per crop at
     threads 1 and 2;
  4. preprocessing + quantise + dequantise instructions against invoke on a76, for the
     device runner's rule and a fused rule.

The ONNX path: tf2onnx --tflite for the float and QAT int8 files, and ONNX Runtime's
quantize_static (QDQ, per-channel, S8S8) on the float ONNX calibrated on real train crops.

Run it with the ONNX environment's python (tools/setup_onnx_env.sh):
  .cache/onnx-env/venv/bin/python -m benchmarks.device.bench_peer --run RUN_DIR --data DATA_DIR \
      [--label vgg-w025]
Writes benchmarks/results/device/peer-<YYYYMMDD>[-<label>].json (--out: another path) and the
Markdown report beside it (benchmarks/device/peer_report.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.device import device_count as dc
from benchmarks.device import emu
from benchmarks.device import graphcost as gc

SUBJECT = "peer"
# Beside the harness's tool versions: the ONNX side shapes these figures too.
PACKAGES = ("onnxruntime", "onnx", "tf2onnx")
BATCHES = (1, 4, 16, 64)


# --------------------------------------------------------------------------- data


def load_split(data_dir: Path, split: str, limit: int | None = None):
    """uint8 images, raw metadata and labels of one split, in dataset order."""
    import numpy as np

    from edgeped.data.shards import Dataset

    images, metas, labels = [], [], []
    for batch in Dataset.open(data_dir).iter_batches(split, batch_records=1024):
        images.append(batch.images)
        metas.append(batch.metadata)
        labels.append(batch.labels)
        if limit and sum(len(x) for x in labels) >= limit:
            break
    images, metas, labels = (np.concatenate(x) for x in (images, metas, labels))
    if limit:
        images, metas, labels = images[:limit], metas[:limit], labels[:limit]
    return images.astype(np.uint8), metas.astype(np.float32), labels.astype(np.int64)


def read_card(path: Path) -> dict:
    return json.loads(path.with_name(path.name.replace(".tflite", ".card.json")).read_text())


# --------------------------------------------------------------------------- conversion


def tflite_to_onnx(tflite: Path, out: Path, opset: int = 17) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "tf2onnx.convert",
        "--tflite",
        str(tflite),
        "--output",
        str(out),
        "--opset",
        str(opset),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"tf2onnx failed on {tflite}: {proc.stderr[-3000:]}")
    return out


def ort_static_int8(float_onnx: Path, out: Path, calib: list[list]) -> Path:
    """ONNX Runtime's static quantisation (QDQ, per-channel, int8 weights+activations)."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    names = [i.name for i in ort.InferenceSession(str(float_onnx)).get_inputs()]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            arrays = next(self.it, None)
            return None if arrays is None else dict(zip(names, arrays, strict=True))

    quantize_static(
        str(float_onnx),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    return out


def trivial_models(out: Path) -> dict[str, Path]:
    """One ADD on a [1,12] float (shaped like the metadata input): a call with no work in it."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    from edgeped._keras import tf

    @tf.function(input_signature=[tf.TensorSpec([1, 12], tf.float32)])
    def add(x):
        return x + 1.0

    conv = tf.lite.TFLiteConverter.from_concrete_functions([add.get_concrete_function()], add)
    paths = {"litert": out / "trivial.tflite", "ort": out / "trivial.onnx"}
    paths["litert"].write_bytes(conv.convert())
    one = helper.make_tensor("one", TensorProto.FLOAT, [1, 12], np.ones(12, np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "trivial",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12])],
        [one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(paths["ort"]))
    return paths


def io_quant(tflite: Path) -> dict:
    """{"image"|"meta"|"output": [scale, zero]} of an int8 .tflite (for its ONNX twin)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tflite))
    out = {}
    for d in interp.get_input_details():
        out["image" if len(d["shape"]) == 4 else "meta"] = list(d["quantization"])
    out["output"] = list(interp.get_output_details()[0]["quantization"])
    return out


# --------------------------------------------------------------------------- host runs


def host_model(kind: str, path: Path, batch: int = 1, threads: int = 1, quant=None):
    import numpy as np

    return dc.RUNTIMES[kind](np, str(path), batch, threads, quant)


def host_scores(kind, path, images, metas, prespec, quant=None):
    """Probabilities for every crop, batch 1 (the ONNX files have a fixed batch of 1)."""
    import numpy as np

    model = host_model(kind, path, quant=quant)
    pre = dc.Preprocess(np, model.specs(), prespec)
    oq = model.output_quant()
    out = np.empty(len(images), np.float32)
    for i in range(len(images)):
        model.set_inputs(pre(images[i : i + 1], metas[i : i + 1]))
        model.invoke()
        out[i] = dc.dequantise(np, model.raw_output(), oq)[0]
    return out


def host_timing(
    kind, path, images, metas, prespec, *, quant=None, batch=1, threads=1, runs=2000, warmup=200
) -> dict:
    """Invoke-only wall time per call in microseconds (same input every call)."""
    import numpy as np

    model = host_model(kind, path, batch, threads, quant)
    pre = dc.Preprocess(np, model.specs(), prespec)
    idx = np.arange(batch) % len(images)
    model.set_inputs(pre(images[idx], metas[idx]))
    for _ in range(warmup):
        model.invoke()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        t0 = clock()
        model.invoke()
        samples.append((clock() - t0) / 1e3)
    return {
        "runs": runs,
        "batch": batch,
        "threads": threads,
        "p50_us": gc.percentile(samples, 50),
        "p95_us": gc.percentile(samples, 95),
        "p50_us_per_crop": gc.percentile(samples, 50) / batch,
    }


def ort_node_profile(path: Path, images, metas, prespec, quant=None, runs=300) -> dict:
    """ONNX Runtime's own profiler: mean host microseconds per node kind over `runs` calls."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        holder = dc.Ort.__new__(dc.Ort)
        holder.np, holder.sess, holder.inputs = np, sess, sess.get_inputs()
        holder.quant = quant or {}
        holder.types = {"tensor(float)": np.dtype(np.float32), "tensor(int8)": np.dtype(np.int8)}
        pre = dc.Preprocess(np, holder.specs(), prespec)
        feed = {d.name: a for d, a in zip(holder.inputs, pre(images[:1], metas[:1]), strict=True)}
        names = [sess.get_outputs()[0].name]
        for _ in range(runs):
            sess.run(names, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_kind: dict[str, float] = {}
    for ev in events:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            kind = ev.get("args", {}).get("op_name", "?")
            per_kind[kind] = per_kind.get(kind, 0.0) + ev["dur"] / runs
    return dict(sorted(per_kind.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------- agreement


def agreement(p_ref, p_other, threshold: float, labels) -> dict:
    import numpy as np

    d_ref, d_other = p_ref >= threshold, p_other >= threshold
    pos, neg = labels == 1, labels == 0
    return {
        "crops": int(len(labels)),
        "decision_agreement": float(np.mean(d_ref == d_other)),
        "flips": int(np.sum(d_ref != d_other)),
        "max_abs_dp": float(np.max(np.abs(p_ref - p_other))),
        "recall": float(np.mean(d_other[pos])) if pos.any() else None,
        "fpr": float(np.mean(d_other[neg])) if neg.any() else None,
    }


# --------------------------------------------------------------------------- main


def cpu_facts() -> dict[str, Any]:
    """The host CPU's model and the int8 dot-product extensions ORT's x86 kernels use."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {
        "cpu": cpu,
        "avx512_vnni": "avx512_vnni" in cpuinfo,
        "avx_vnni": " avx_vnni" in cpuinfo,
    }


def out_path(out: Path | None = None, label: str = "") -> Path:
    """`out`, else today's benchmarks/results/device/peer-<YYYYMMDD>[-<label>].json."""
    return out or harness.result_path("device", SUBJECT, label)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="run directory with converted models")
    ap.add_argument("--data", type=Path, required=True, help="dataset the run was trained on")
    ap.add_argument("--onnx-env", type=Path, default=Path(".cache/onnx-env"))
    ap.add_argument("--emu", default=None, help="emulated board (default $EDGEPED_ARM64_EMU)")
    ap.add_argument("--work", type=Path, default=None, help="scratch dir (default: a temp dir)")
    ap.add_argument("--calibration", type=int, default=128, help="train crops for ORT quantize")
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--runs", type=int, default=2000, help="host timed invokes per model")
    ap.add_argument(
        "--float",
        dest="float_name",
        default=None,
        help="float model name in the run (default: student_float32, else "
        "student_distilled_float32)",
    )
    ap.add_argument("--int8", dest="int8_name", default="student_qat_int8")
    ap.add_argument("--label", default="", help="name qualifier, e.g. the model 'vgg-w025'")
    ap.add_argument(
        "--out",
        type=Path,
        help="JSON path (default benchmarks/results/device/peer-<YYYYMMDD>[-<label>].json)",
    )
    args = ap.parse_args(argv)
    import numpy as np

    board = emu.board(args.emu)
    ort_site = args.onnx_env / "aarch64-site"
    if not (args.onnx_env / "READY").is_file():
        raise SystemExit(
            f"error: no ONNX environment at {args.onnx_env}\n"
            "fix: run `bash tools/setup_onnx_env.sh`"
        )
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeped-peer-"))
    work.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr)  # noqa: E731

    float_name = args.float_name or next(
        (
            n
            for n in ("student_float32", "student_distilled_float32")
            if (args.run / f"{n}.tflite").is_file()
        ),
        "student_float32",
    )
    lite = {
        "float32": args.run / f"{float_name}.tflite",
        "qat_int8": args.run / f"{args.int8_name}.tflite",
    }
    for p in lite.values():
        if not p.is_file():
            raise SystemExit(f"error: {p} is missing\nfix: run `edgeped convert {args.run}`")
    card_f, card_q = read_card(lite["float32"]), read_card(lite["qat_int8"])
    for path, card in ((lite["float32"], card_f), (lite["qat_int8"], card_q)):
        if not card.get("threshold"):
            raise SystemExit(
                f"error: {path.name}'s card has no threshold\n"
                f"fix: run `edgeped eval {args.run}` first"
            )
    prespec = card_q["preprocessing"]["metadata"]
    thr_f = card_f["threshold"]["score"]
    thr_q = card_q["threshold"]["score"]
    quant_q = io_quant(lite["qat_int8"])

    record = harness.provenance("peer", argv, packages=PACKAGES)
    record["machine"].update(cpu_facts())
    log("loading data")
    cal_img, cal_meta, _ = load_split(args.data, "train", args.calibration)
    test_img, test_meta, test_y = load_split(args.data, "test", args.test_limit)
    crops_npz = work / "crops.npz"
    np.savez(crops_npz, images=test_img[:64], metadata=test_meta[:64])

    log("converting to ONNX")
    onnx_f = tflite_to_onnx(lite["float32"], work / "student_float32.onnx")
    onnx_qd = tflite_to_onnx(lite["qat_int8"], work / "student_qat_int8_direct.onnx")
    probe = host_model("ort", onnx_f)
    pre_f = dc.Preprocess(np, probe.specs(), prespec)
    calib = [pre_f(cal_img[i : i + 1], cal_meta[i : i + 1]) for i in range(len(cal_img))]
    onnx_qs = ort_static_int8(onnx_f, work / "student_ort_static_int8.onnx", calib)
    trivial = trivial_models(work)
    models = {
        "LiteRT float32": ("litert", lite["float32"], None, "float32", thr_f),
        "ORT float32": ("ort", onnx_f, None, "float32", thr_f),
        "LiteRT QAT int8": ("litert", lite["qat_int8"], None, "qat_int8", thr_q),
        "ORT QAT int8 (tf2onnx direct)": ("ort", onnx_qd, quant_q, "qat_int8", thr_q),
        "ORT static int8 (quantize_static, real calibration)": (
            "ort",
            onnx_qs,
            None,
            "qat_int8",
            thr_q,
        ),
    }

    log("scoring the test split")
    probs = {
        n: host_scores(k, p, test_img, test_meta, prespec, q)
        for n, (k, p, q, _, _) in models.items()
    }
    ref = {"float32": probs["LiteRT float32"], "qat_int8": probs["LiteRT QAT int8"]}
    agree = {n: agreement(ref[r], probs[n], t, test_y) for n, (_, _, _, r, t) in models.items()}

    log("host timing")
    host = {
        n: host_timing(k, p, test_img, test_meta, prespec, quant=q, runs=args.runs)
        for n, (k, p, q, _, _) in models.items()
    }
    host_trivial = {
        k: host_timing(k, p, test_img, test_meta, prespec, runs=args.runs)
        for k, p in trivial.items()
    }
    sweep = []
    for name in ("LiteRT float32", "LiteRT QAT int8"):
        _, path, _, _, _ = models[name]
        for threads in (1, 2):
            for batch in BATCHES:
                sweep.append(
                    {
                        "model": name,
                        **host_timing(
                            "litert",
                            path,
                            test_img,
                            test_meta,
                            prespec,
                            batch=batch,
                            threads=threads,
                            runs=max(100, args.runs // batch),
                            warmup=20,
                        ),
                    }
                )
    ort_profile = {
        n: ort_node_profile(p, test_img, test_meta, prespec, q)
        for n, (k, p, q, _, _) in models.items()
        if k == "ort"
    }

    log("prefix models for per-op cost")
    qbytes = lite["qat_int8"].read_bytes()
    ops = gc.graph_ops(qbytes)
    prefix_paths = []
    for k in range(1, len(ops) + 1):
        path = work / f"prefix_{k:02d}.tflite"
        path.write_bytes(gc.prefix_model(qbytes, k))
        prefix_paths.append(path)
    host_prefix = [
        host_timing("litert", p, test_img, test_meta, prespec, runs=args.runs) for p in prefix_paths
    ]

    log("emulated counts")
    counts: dict = {}
    for core in emu.CORES:
        lite_jobs = [
            {"name": n, "model": str(p), "runs": 3}
            for n, (k, p, _, _, _) in models.items()
            if k == "litert"
        ]
        lite_jobs.append({"name": "trivial", "model": str(trivial["litert"]), "runs": 3})
        lite_jobs += [
            {"name": f"prefix_{i + 1}", "model": str(p), "runs": 3}
            for i, p in enumerate(prefix_paths)
        ]
        if core == "cortex-a76":
            for name in ("LiteRT float32", "LiteRT QAT int8"):
                path = str(models[name][1])
                lite_jobs += [
                    {"name": f"{name} batch {b}", "model": path, "batch": b, "runs": 3}
                    for b in BATCHES[1:]
                ]
                lite_jobs += [
                    {
                        "name": f"{name} phases {m}",
                        "model": path,
                        "runs": 5,
                        "phases": True,
                        "preprocessing": m,
                    }
                    for m in ("runner", "fused")
                ]
        ort_jobs = [
            {"name": n, "model": str(p), "runs": 3, "quant": q}
            for n, (k, p, q, _, _) in models.items()
            if k == "ort"
        ]
        ort_jobs.append({"name": "trivial", "model": str(trivial["ort"]), "runs": 3})
        if core == "cortex-a76":
            ort_jobs += [
                {
                    "name": f"{n} phases runner",
                    "model": str(p),
                    "runs": 5,
                    "phases": True,
                    "quant": q,
                }
                for n, (k, p, q, _, _) in models.items()
                if k == "ort"
            ]
        for runtime, jobs, site in (("litert", lite_jobs, None), ("ort", ort_jobs, ort_site)):
            log(f"  {core} {runtime}: {len(jobs)} jobs")
            with emu.clear_errors():
                res = emu.count(
                    board, core, runtime, jobs, site=site, crops=crops_npz, preprocess=prespec
                )
            counts.setdefault(core, {})[runtime] = res

    import onnxruntime

    result = {
        **harness.finish(record),
        "ort_providers": onnxruntime.get_available_providers(),
        "emulated": {c: counts[c]["litert"]["environment"] for c in counts},
        "emulated_ort": {c: counts[c]["ort"]["environment"] for c in counts},
        "inputs": {
            "run": str(args.run),
            "data": str(args.data),
            "test_crops": int(len(test_y)),
            "test_positives": int(test_y.sum()),
            "calibration_crops": len(calib),
            "models": {
                n: {
                    "file": Path(p).name,
                    "sha256": _sha(Path(p)),
                    "size_bytes": Path(p).stat().st_size,
                }
                for n, (_, p, _, _, _) in models.items()
            },
        },
        "macs": {
            "float32": gc.total_macs(lite["float32"].read_bytes()),
            "qat_int8": gc.total_macs(qbytes),
        },
        "agreement": agree,
        "host": host,
        "host_trivial": host_trivial,
        "host_sweep": sweep,
        "ort_profile_us": ort_profile,
        "ops": [o.to_dict() for o in ops],
        "host_prefix_p50_us": [h["p50_us"] for h in host_prefix],
        "counts": counts,
    }
    from benchmarks.device import peer_report

    out = out_path(args.out, args.label)
    harness.write_result(out, result, peer_report.render(result))
    print(out)
    return 0


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    sys.exit(main())
