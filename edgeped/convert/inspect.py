"""Reads a .tflite through LiteRT: tensors, quantisation, ops. No TensorFlow needed."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgeped.errors import EdgepedError

TFLITE_MAGIC = b"TFL3"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    index: int
    shape: list[int]
    shape_signature: list[int]
    dtype: str
    scale: float
    zero_point: int
    role: str  # image | meta | score

    def to_dict(self) -> dict:
        return asdict(self)


def _role(shape: list[int], is_input: bool) -> str:
    if not is_input:
        return "score"
    return "image" if len(shape) == 4 else "meta"


def load_interpreter(
    model: str | os.PathLike | bytes, num_threads: int = 1, delegates: bool = True
):
    """Opens a LiteRT interpreter with tensors allocated.

    Args:
        delegates: apply LiteRT's default delegate (XNNPACK). Off lists the model's
            own ops, as `op_counts` needs.

    Raises:
        EdgepedError: missing file, not a TFLite flatbuffer, truncated or corrupt.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if isinstance(model, bytes):
        content, label = model, "model bytes"
    else:
        path = Path(model)
        if not path.is_file():
            raise EdgepedError(
                f"model file not found: {path}", "check the path or run `edgeped convert`"
            )
        content, label = path.read_bytes(), str(path)
    if len(content) < 8 or content[4:8] != TFLITE_MAGIC:
        raise EdgepedError(
            f"{label} is not a TFLite model (no TFL3 identifier)",
            "pass a .tflite produced by `edgeped convert`",
        )
    try:
        resolver = (
            OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        interpreter = Interpreter(
            model_content=content, num_threads=num_threads, experimental_op_resolver_type=resolver
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise EdgepedError(
            f"{label} is corrupt or truncated: LiteRT could not load it ({exc})",
            "re-run `edgeped convert` or re-copy the file",
        ) from exc
    return interpreter


def tensor_infos(interpreter) -> tuple[list[TensorInfo], list[TensorInfo]]:
    def info(d, is_input):
        shape = [int(v) for v in d["shape"]]
        scale, zp = d["quantization"]
        return TensorInfo(
            d["name"],
            int(d["index"]),
            shape,
            [int(v) for v in d.get("shape_signature", shape)],
            np.dtype(d["dtype"]).name,
            float(scale),
            int(zp),
            _role(shape, is_input),
        )

    return (
        [info(d, True) for d in interpreter.get_input_details()],
        [info(d, False) for d in interpreter.get_output_details()],
    )


def op_counts(interpreter) -> dict[str, int]:
    counts: dict[str, int] = {}
    for op in interpreter._get_ops_details():  # noqa: SLF001 - LiteRT's only op listing
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return dict(sorted(counts.items()))


def float_ops(interpreter) -> list[str]:
    """Ops computing in float32 (other than I/O quantise/dequantise), for int8 audits."""
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    found = []
    for op in interpreter._get_ops_details():  # noqa: SLF001
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        dtypes = {np.dtype(details[i]["dtype"]).name for i in op["outputs"] if i in details}
        if "float32" in dtypes:
            found.append(op["op_name"])
    return found


def concat_audit(interpreter) -> list[dict]:
    """Input and output quantisation of every CONCATENATION op.

    Where the metadata branch joins the image features, int8 inputs with very
    different scales force a requantise and can crush the smaller-range branch;
    this lists what the converter chose so a card shows it.
    """
    details = {t["index"]: t for t in interpreter.get_tensor_details()}

    def q(i):
        scale, zp = details[i]["quantization"]
        return {
            "tensor": details[i]["name"],
            "dtype": np.dtype(details[i]["dtype"]).name,
            "scale": float(scale),
            "zero_point": int(zp),
        }

    out = []
    for op in interpreter._get_ops_details():  # noqa: SLF001
        if op["op_name"] != "CONCATENATION":
            continue
        ins = [q(i) for i in op["inputs"] if i in details]
        outs = [q(i) for i in op["outputs"] if i in details]
        scales = [t["scale"] for t in ins if t["scale"] > 0]
        out.append(
            {
                "inputs": ins,
                "outputs": outs,
                "input_scale_ratio": (max(scales) / min(scales)) if scales else None,
            }
        )
    return out
