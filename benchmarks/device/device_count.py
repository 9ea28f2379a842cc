#!/usr/bin/env python3
"""Counts guest instructions per phase of a LiteRT or ONNX Runtime call on the emulated board.

Runs on the target (the emulated arm64 board's python-aarch64): Python stdlib + numpy + the
runtime only. It marks regions with the same syscall as the runner's --insn-count (lseek on
/dev/null with MARKER_START / MARKER_STOP from device/edgeped_device/insn.py, counted by
tools/qemu_insncount.c) and reads the counts back from EDGEPED_INSN_OUT.

Usage: python device_count.py JOBS.json   (prints one JSON object)

Started by benchmarks/device/emu.py through the emulated target, which puts the on-board
package (device/, for the runner's marker values and crop shape) and, for ONNX Runtime, the
aarch64 site-packages on PYTHONPATH.

JOBS.json: {"runtime": "litert" | "ort", "threads": 1, "crops": "crops.npz" | null,
            "preprocess": {"mean": [6], "std": [6], "clip": 4.0},
            "jobs": [{"name": str, "model": path, "batch": 1, "runs": 3, "phases": false,
                      "preprocessing": "runner" | "fused",
                      "quant": {"image"|"meta"|"output": [scale, zero]} (ORT int8 I/O)}]}

Per job it counts `runs` invokes (the headline is their median, as in the runner). With
"phases": true it also counts, per call, the preprocessing of the uint8 crop and raw
metadata into input tensors (quantised), the copy into the runtime, and reading +
dequantising the output, each as its own region.
"""

from __future__ import annotations

import json
import os
import sys

try:
    # The runner's marker values and crop shape, from the on-board package (on PYTHONPATH).
    # The regions open and close with a bare lseek (no marker() call inside them), as before.
    from edgeped_device.common import IMAGE_SHAPE  # sets OPENBLAS_NUM_THREADS=1
    from edgeped_device.insn import MARKER_START, MARKER_STOP
except ModuleNotFoundError as exc:
    if exc.name != "edgeped_device":
        raise
    if __name__ == "__main__":
        problem = "the on-board package edgeped_device is not on PYTHONPATH"
        fix = "start it through benchmarks/device/emu.py (PYTHONPATH=device)"
        print(json.dumps({"ok": False, "error": {"problem": problem, "fix": fix}}))
        sys.exit(3)
    # Imported on the host (bench_peer, tests) for the runtimes and preprocessing rules: the
    # crop shape is the host package's (the same contract); counting is the board's alone.
    from edgeped.data.schema import CROP_SHAPE as IMAGE_SHAPE

    MARKER_START = MARKER_STOP = None
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def fail(problem: str, fix: str) -> None:
    print(json.dumps({"ok": False, "error": {"problem": problem, "fix": fix}}))
    sys.exit(3)


class Counter:
    """Opens and closes counted regions; reads the plugin's counts back in order."""

    def __init__(self) -> None:
        self.path = os.environ.get("EDGEPED_INSN_OUT")
        if not self.path:
            fail("EDGEPED_INSN_OUT is not set", "run under python-aarch64 with EDGEPED_INSN_OUT")
        self.fd = os.open(os.devnull, os.O_RDONLY)
        self.seen = self._read_all()

    def _read_all(self) -> int:
        with open(self.path) as handle:
            return len(handle.read().split())

    def start(self) -> None:
        os.lseek(self.fd, MARKER_START, os.SEEK_SET)

    def stop(self) -> None:
        os.lseek(self.fd, MARKER_STOP, os.SEEK_SET)

    def take(self, expected: int) -> list[int]:
        with open(self.path) as handle:
            values = [int(v) for v in handle.read().split()]
        new = values[self.seen :]
        self.seen = len(values)
        if len(new) != expected:
            fail(
                f"the plugin recorded {len(new)} of {expected} regions",
                "start qemu-aarch64 with the libinsncount plugin (python-aarch64 does this)",
            )
        return new


class LiteRT:
    def __init__(self, np, path: str, batch: int, threads: int, quant=None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.np = np
        self.interp = Interpreter(model_path=path, num_threads=threads)
        inputs = self.interp.get_input_details()
        for d in inputs:
            shape = [batch, *[int(x) for x in d["shape"][1:]]]
            if shape != [int(x) for x in d["shape"]]:
                self.interp.resize_tensor_input(d["index"], shape)
        self.interp.allocate_tensors()
        self.inputs = self.interp.get_input_details()
        self.output = self.interp.get_output_details()[0]

    def specs(self):
        out = []
        for d in self.inputs:
            scale, zero = d["quantization"]
            out.append((d["name"], len(d["shape"]), self.np.dtype(d["dtype"]), scale, zero))
        return out

    def set_inputs(self, arrays) -> None:
        for d, a in zip(self.inputs, arrays, strict=True):
            self.interp.set_tensor(d["index"], a)

    def invoke(self) -> None:
        self.interp.invoke()

    def raw_output(self):
        return self.interp.get_tensor(self.output["index"])

    def output_quant(self):
        scale, zero = self.output["quantization"]
        return self.np.dtype(self.output["dtype"]), scale, zero


class Ort:
    """ONNX Runtime session; quantisation of a QDQ model's float I/O is the model's own job."""

    def __init__(self, np, path: str, batch: int, threads: int, quant=None) -> None:
        import onnxruntime as ort

        self.np = np
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.batch = batch
        self.inputs = self.sess.get_inputs()
        self.output_names = [self.sess.get_outputs()[0].name]
        self.feed = {}
        self.result = None
        # ONNX keeps int8 I/O scales inside the graph (DequantizeLinear): the caller passes
        # the source model's {"image"|"meta"|"output": [scale, zero_point]}.
        self.quant = quant or {}
        self.types = {
            "tensor(float)": self.np.dtype(self.np.float32),
            "tensor(int8)": self.np.dtype(self.np.int8),
        }

    def specs(self):
        out = []
        for d in self.inputs:
            dtype = self.types[d.type]
            role = "image" if len(d.shape) == 4 else "meta"
            scale, zero = self.quant.get(role, (0.0, 0)) if dtype == self.np.int8 else (0.0, 0)
            if dtype == self.np.int8 and not scale:
                fail(f"int8 input {d.name} needs its scale", 'pass "quant" in the job')
            out.append((d.name, len(d.shape), dtype, float(scale), int(zero)))
        return out

    def set_inputs(self, arrays) -> None:
        self.feed = {d.name: a for d, a in zip(self.inputs, arrays, strict=True)}

    def invoke(self) -> None:
        self.result = self.sess.run(self.output_names, self.feed)

    def raw_output(self):
        return self.result[0]

    def output_quant(self):
        dtype = self.types[self.sess.get_outputs()[0].type]
        if dtype == self.np.int8:
            scale, zero = self.quant["output"]
            return dtype, float(scale), int(zero)
        return dtype, 0.0, 0


RUNTIMES = {"litert": LiteRT, "ort": Ort}


class Preprocess:
    """uint8 crops + raw metadata -> the model's input arrays (the device contract)."""

    def __init__(self, np, specs, spec: dict) -> None:
        self.np = np
        self.specs = specs
        self.mean = np.asarray(spec.get("mean", [0.0] * 6), dtype=np.float32)
        self.std = np.asarray(spec.get("std", [1.0] * 6), dtype=np.float32)
        self.clip = float(spec.get("clip", 4.0))

    def __call__(self, crops, metadata, counter=None):
        np = self.np
        out = []
        for _name, rank, dtype, scale, zero in self.specs:
            if counter:
                counter.start()
            if rank == 4:
                if dtype == np.int8 and abs(scale - 1.0 / 128.0) < 1e-9 and zero == 0:
                    out.append((crops.astype(np.int16) - 128).astype(np.int8))
                else:
                    x = (crops.astype(np.float32) - 128.0) / 128.0
                    out.append(
                        x
                        if dtype == np.float32
                        else np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
                    )
            else:
                present = ~np.isnan(metadata)
                z = np.where(present, (np.nan_to_num(metadata) - self.mean) / self.std, 0.0)
                z = np.clip(z, -self.clip, self.clip)
                x = np.concatenate([z, present.astype(np.float32)], axis=1).astype(np.float32)
                out.append(
                    x
                    if dtype == np.float32
                    else np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
                )
            if counter:
                counter.stop()
        return out


class FusedPreprocess:
    """The same rule in fewer passes: what an ECU integration would do per call.

    Image: one lookup-table pass from uint8 into a preallocated input array (for int8 with
    scale 1/128 and zero 0 the table is u8 ^ 0x80). Metadata: standardisation and
    quantisation folded into one affine map per field, computed in plain Python per value
    (12 values per crop cost less than a dozen numpy calls).
    """

    def __init__(self, np, specs, spec: dict, batch: int) -> None:
        self.np = np
        self.plans = []
        mean = [float(v) for v in spec.get("mean", [0.0] * 6)]
        std = [float(v) for v in spec.get("std", [1.0] * 6)]
        clip = float(spec.get("clip", 4.0))
        for _name, rank, dtype, scale, zero in specs:
            if rank == 4:
                x = (np.arange(256, dtype=np.float32) - 128.0) / 128.0
                lut = (
                    x
                    if dtype == np.float32
                    else np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
                )
                if dtype == np.int8 and abs(scale - 1.0 / 128.0) < 1e-9 and zero == 0:
                    kind = "xor"  # u8 - 128 as int8 is u8 with its top bit flipped
                elif dtype == np.float32:
                    kind = "affine"  # u8 / 128 - 1, exact in float32
                else:
                    kind = "lut"
                self.plans.append(("image", kind, lut, np.empty((batch, *IMAGE_SHAPE), dtype)))
            else:
                if dtype == np.float32:
                    fields = [
                        (1.0 / s, -m / s, -clip, clip, 0.0, 1.0)
                        for m, s in zip(mean, std, strict=True)
                    ]
                else:
                    fields = [
                        (
                            1.0 / (s * scale),
                            zero - m / (s * scale),
                            max(-128.0, zero - clip / scale),
                            min(127.0, zero + clip / scale),
                            float(zero),
                            min(127.0, round(1.0 / scale) + zero),
                        )
                        for m, s in zip(mean, std, strict=True)
                    ]
                self.plans.append(("meta", fields, dtype, batch))

    def __call__(self, crops, metadata, counter=None):
        out = []
        for plan in self.plans:
            if counter:
                counter.start()
            out.append(
                self._image(plan, crops) if plan[0] == "image" else self._meta(plan, metadata)
            )
            if counter:
                counter.stop()
        return out

    def _image(self, plan, crops):
        np = self.np
        _, kind, lut, buf = plan
        if kind == "xor":
            if crops.flags.c_contiguous and crops.nbytes % 8 == 0:
                # Eight pixels per 64-bit XOR: numpy's uint8-with-scalar loop is not
                # vectorised on aarch64 (measured: ~12.5 instructions per pixel).
                np.bitwise_xor(
                    crops.reshape(-1).view(np.uint64),
                    np.uint64(0x8080808080808080),
                    out=buf.reshape(-1).view(np.uint64),
                )
            else:
                np.bitwise_xor(crops, np.uint8(0x80), out=buf.view(np.uint8))
        elif kind == "affine":
            np.multiply(crops, np.float32(1.0 / 128.0), out=buf)
            np.subtract(buf, np.float32(1.0), out=buf)
        else:
            np.take(lut, crops, out=buf)
        return buf

    def _meta(self, plan, metadata):
        np = self.np
        _, fields, dtype, batch = plan
        values = []
        rows = metadata.tolist()
        for row in rows:
            z, mask = [], []
            for v, (a, b, lo, hi, q0, q1) in zip(row, fields, strict=True):
                if v != v:  # NaN: missing -> z = 0 (quantised: the zero point)
                    z.append(q0)
                    mask.append(q0)
                else:
                    q = v * a + b
                    z.append(lo if q < lo else hi if q > hi else q)
                    mask.append(q1)
            values.append(z + mask)
        if dtype == np.float32:
            return np.array(values, dtype=np.float32)
        return np.rint(np.array(values, dtype=np.float32)).astype(np.int8)


def dequantise_python(np, raw, quant):
    """Probabilities as a Python list: one element per crop needs no numpy pass."""
    dtype, scale, zero = quant
    flat = raw.reshape(-1).tolist()
    if dtype == np.float32:
        return flat
    return [(v - zero) * scale for v in flat]


def dequantise(np, raw, quant):
    dtype, scale, zero = quant
    if dtype == np.float32:
        return raw.reshape(len(raw), -1)[:, 0].astype(np.float32)
    return ((raw.reshape(len(raw), -1)[:, 0].astype(np.float32) - zero) * scale).astype(np.float32)


def load_inputs(np, path, count: int):
    if path:
        with np.load(path, allow_pickle=False) as npz:
            return npz["images"], npz["metadata"].astype(np.float32)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, *IMAGE_SHAPE), dtype=np.uint8)
    metadata = rng.normal(size=(count, 6)).astype(np.float32)
    return images, metadata


def run_job(
    np, counter: Counter, runtime: str, threads: int, job: dict, images, metadata, prespec: dict
) -> dict:
    batch = int(job.get("batch", 1))
    runs = int(job.get("runs", 3))
    model = RUNTIMES[runtime](np, job["model"], batch, threads, job.get("quant"))
    mode = job.get("preprocessing", "runner")
    if mode not in ("runner", "fused"):
        fail(f"preprocessing {mode!r} is unknown", "use runner or fused")
    pre = (
        Preprocess(np, model.specs(), prespec)
        if mode == "runner"
        else FusedPreprocess(np, model.specs(), prespec, batch)
    )
    idx = np.arange(batch) % len(images)
    crops, meta = images[idx], metadata[idx]
    quant = model.output_quant()
    post = dequantise if mode == "runner" else dequantise_python
    # Two untimed calls: first-call allocations and lazy kernel set-up stay out of the counts.
    for _ in range(2):
        model.set_inputs(pre(crops, meta))
        model.invoke()
        post(np, model.raw_output(), quant)
    result = {
        "name": job.get("name", job["model"]),
        "model": job["model"],
        "batch": batch,
        "runs": runs,
        "preprocessing": mode,
    }
    if job.get("phases"):
        names = [
            "preprocess_image" if rank == 4 else "preprocess_meta"
            for _n, rank, *_rest in model.specs()
        ] + ["set_inputs", "invoke", "get_output"]
        per_phase = {p: [] for p in names}
        for _ in range(runs):
            arrays = pre(crops, meta, counter)
            counter.start()
            model.set_inputs(arrays)
            counter.stop()
            counter.start()
            model.invoke()
            counter.stop()
            counter.start()
            post(np, model.raw_output(), quant)
            counter.stop()
            for phase, value in zip(names, counter.take(len(names)), strict=True):
                per_phase[phase].append(value)
        result["phases"] = {p: sorted(v)[len(v) // 2] for p, v in per_phase.items()}
        result["phases_per_run"] = per_phase
        result["instructions_per_invoke"] = result["phases"]["invoke"]
    else:
        model.set_inputs(pre(crops, meta))
        for _ in range(runs):
            counter.start()
            model.invoke()
            counter.stop()
        counts = counter.take(runs)
        result["per_invoke"] = counts
        result["instructions_per_invoke"] = sorted(counts)[len(counts) // 2]
    if mode == "fused":
        # The fused rule must feed the same tensors as the runner's rule.
        ref = Preprocess(np, model.specs(), prespec)(crops, meta)
        got = pre(crops, meta)
        result["fused_max_abs_diff"] = max(
            float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
            for a, b in zip(ref, got, strict=True)
        )
    result["instructions_per_crop"] = result["instructions_per_invoke"] / batch
    return result


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    args = list(argv)
    try:
        with open(args[0], encoding="utf-8") as handle:
            spec = json.load(handle)
    except (OSError, ValueError) as exc:
        fail(f"cannot read jobs file {args[0]}: {exc}", "write the jobs JSON described in --help")
    if spec.get("runtime") not in RUNTIMES:
        fail(f"runtime {spec.get('runtime')!r} is unknown", f"use one of {sorted(RUNTIMES)}")
    import numpy as np

    counter = Counter()
    images, metadata = load_inputs(np, spec.get("crops"), 64)
    results = [
        run_job(
            np,
            counter,
            spec["runtime"],
            int(spec.get("threads", 1)),
            job,
            images,
            metadata,
            spec.get("preprocess") or {},
        )
        for job in spec["jobs"]
    ]
    import platform

    if spec["runtime"] == "ort":
        import onnxruntime as rt
    else:
        import ai_edge_litert as rt
    env = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "runtime": spec["runtime"],
        "runtime_version": getattr(rt, "__version__", "unknown"),
    }
    print(json.dumps({"ok": True, "environment": env, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
