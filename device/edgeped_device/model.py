"""The model file, its interpreter and its input/output tensors."""

from __future__ import annotations

import os

from .common import IMAGE_SHAPE, META_FEATURES, RunnerError


def read_model(path: str) -> bytes:
    """Reads the model and rejects files that cannot be a TFLite flatbuffer."""
    if not os.path.isfile(path):
        raise RunnerError(
            "model_missing",
            f"model file not found: {path}",
            "push the model first or check the path",
        )
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise RunnerError(
            "model_corrupt",
            f"{path} is not a TFLite model ({len(data)} bytes, no TFL3 identifier)",
            "the file is corrupt or truncated: convert or push it again",
        )
    return data


def make_interpreter(data: bytes, path: str, Interpreter, load_delegate, resolver, args):
    kwargs = {"model_content": data, "num_threads": args.threads}
    if not args.xnnpack:
        if resolver is None:
            raise RunnerError(
                "unsupported_option",
                "this runtime cannot turn XNNPACK off",
                "use ai-edge-litert, or run with XNNPACK on",
            )
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if args.delegate:
        options = dict(item.split("=", 1) for item in args.delegate_option)
        try:
            kwargs["experimental_delegates"] = [load_delegate(args.delegate, options)]
        except (ValueError, OSError) as exc:
            raise RunnerError(
                "delegate_failed",
                f"cannot load delegate {args.delegate}: {exc}",
                "check the shared library path and its options",
            ) from exc
    try:
        interpreter = Interpreter(**kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise RunnerError(
            "model_corrupt",
            f"the runtime rejected {path}: {exc}",
            "the file is corrupt, truncated or uses ops this runtime lacks: "
            "convert or push it again",
        ) from exc
    return interpreter


class ModelIO:
    """The model's image/meta inputs and probability output, found by rank."""

    def __init__(self, interpreter, np) -> None:
        self.np = np
        self.interpreter = interpreter
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        images = [d for d in inputs if len(d["shape"]) == 4]
        metas = [d for d in inputs if len(d["shape"]) == 2]
        described = ", ".join(
            f"{d['name']}{list(d['shape'])}:{np.dtype(d['dtype']).name}" for d in inputs
        )
        if len(images) != 1 or len(metas) > 1 or len(images) + len(metas) != len(inputs):
            raise RunnerError(
                "unsupported_model_io",
                f"expected one 4-D image input and at most one 2-D meta input, got {described}",
                "export the model with inputs image [N,128,64,3] and optional meta [N,12]",
            )
        self.image = images[0]
        self.meta = metas[0] if metas else None
        if tuple(int(x) for x in self.image["shape"][1:]) != IMAGE_SHAPE:
            raise RunnerError(
                "unsupported_model_io",
                f"image input {list(self.image['shape'])} is not [N,128,64,3]",
                "export the model with a 128x64 RGB NHWC input",
            )
        if self.meta is not None and int(self.meta["shape"][1]) != 2 * META_FEATURES:
            raise RunnerError(
                "unsupported_model_io",
                f"meta input {list(self.meta['shape'])} is not [N,12]",
                "meta must be concat(z[6], mask[6])",
            )
        for d in [self.image] + ([self.meta] if self.meta else []):
            if np.dtype(d["dtype"]) not in (np.dtype(np.int8), np.dtype(np.float32)):
                raise RunnerError(
                    "unsupported_model_io",
                    f"input {d['name']} has dtype {np.dtype(d['dtype']).name}",
                    "inputs must be int8 (quantised) or float32",
                )
        if len(outputs) != 1:
            raise RunnerError(
                "unsupported_model_io",
                f"expected one output tensor, got {len(outputs)}",
                "export a single [N,1] probability output",
            )
        self.output = outputs[0]
        self.batch = int(self.image["shape"][0])

    def resize(self, batch: int) -> None:
        """Sets the batch size, if the model allows it."""
        if batch == self.batch:
            return
        try:
            self.interpreter.resize_tensor_input(self.image["index"], [batch, *IMAGE_SHAPE])
            if self.meta is not None:
                self.interpreter.resize_tensor_input(self.meta["index"], [batch, 2 * META_FEATURES])
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise RunnerError(
                "batch_unsupported",
                f"the model does not accept batch {batch}: {exc}",
                "run with --batch 1 or export the model with a dynamic batch",
            ) from exc
        self.batch = batch
        by_index = {d["index"]: d for d in self.interpreter.get_input_details()}
        self.image = by_index[self.image["index"]]
        if self.meta is not None:
            self.meta = by_index[self.meta["index"]]
        self.output = self.interpreter.get_output_details()[0]

    def quantisation(self) -> dict:
        def q(d):
            scale, zero = d["quantization"]
            return {
                "dtype": self.np.dtype(d["dtype"]).name,
                "scale": float(scale),
                "zero_point": int(zero),
                "shape": [int(x) for x in d["shape"]],
            }

        out = {"image": q(self.image), "output": q(self.output)}
        if self.meta is not None:
            out["meta"] = q(self.meta)
        return out
