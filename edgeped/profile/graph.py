"""TFLite graph arithmetic: the ops of a .tflite with shapes and MACs, and prefix models.

Pure functions on model bytes (no TensorFlow import; the flatbuffer schema ships with
ai-edge-litert).

- `graph_ops` lists the operators of a .tflite in execution order with their input and
  output shapes, a class (stem, depthwise, pointwise, meta branch, head, ...) and
  multiply-accumulates.
- `prefix_model` cuts a .tflite after its first k operators: the same ops, weights and
  quantisation, with every tensor still needed later made a graph output. The cost of op k
  on a runtime is then count(prefix k) - count(prefix k-1), a per-operator figure the
  Python interpreter API cannot give (it has no per-op hook or profiler).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INT8_SDOT_MAC_PER_INSN = 16  # one 128-bit SDOT: 4 lanes x 4 int8 products
FP32_FMLA_MAC_PER_INSN = 4  # one 128-bit FMLA: 4 fp32 lanes


@dataclass(frozen=True)
class GraphOp:
    """One operator of a TFLite subgraph, in execution order."""

    index: int
    kind: str  # builtin name, e.g. CONV_2D
    op_class: str  # stem | depthwise | pointwise | conv | pool | meta | fuse | head | io | other
    output_name: str
    output_shape: tuple[int, ...]
    macs: int
    input_shapes: tuple[tuple[int, ...], ...] = ()  # activation inputs (constants left out)

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "kind": self.kind,
            "class": self.op_class,
            "output": self.output_name,
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shape": list(self.output_shape),
            "macs": self.macs,
        }


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _builtin_names(schema) -> dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def _load(model_bytes: bytes):
    schema = _schema()
    if len(model_bytes) < 8 or model_bytes[4:8] != b"TFL3":
        raise ValueError("not a TFLite model (no TFL3 identifier)")
    return schema, schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))


def _name(tensor) -> str:
    name = tensor.name
    return name.decode() if isinstance(name, bytes) else str(name)


def _opcode(schema, names, model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    value = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    return names.get(value, f"OP_{value}")


def op_macs(kind: str, in_shapes: list[tuple[int, ...]], out_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one op from its input/output shapes (0 for non-MAC ops)."""
    if kind == "CONV_2D" and len(in_shapes) >= 2:
        filt = in_shapes[1]  # [out_c, kh, kw, in_c]
        return math.prod(out_shape) * filt[1] * filt[2] * filt[3]
    if kind == "DEPTHWISE_CONV_2D" and len(in_shapes) >= 2:
        filt = in_shapes[1]  # [1, kh, kw, out_c]
        return math.prod(out_shape) * filt[1] * filt[2]
    if kind == "FULLY_CONNECTED" and len(in_shapes) >= 2:
        return math.prod(out_shape) * in_shapes[1][-1]
    return 0


def _classify(
    kind: str,
    op_inputs: list[int],
    meta_tensors: set,
    first_conv_done: bool,
    in_shapes: list[tuple[int, ...]],
) -> str:
    from_meta = any(i in meta_tensors for i in op_inputs)
    if kind in ("QUANTIZE", "DEQUANTIZE"):
        return "io"
    if kind == "CONV_2D":
        if not first_conv_done:
            return "stem"
        filt = in_shapes[1] if len(in_shapes) > 1 else ()
        return "pointwise" if filt[1:3] == (1, 1) else "conv"
    if kind == "DEPTHWISE_CONV_2D":
        return "depthwise"
    if kind in ("MEAN", "AVERAGE_POOL_2D", "MAX_POOL_2D", "SUM"):
        return "pool"
    if kind == "CONCATENATION":
        return "fuse"
    if from_meta:
        return "meta"
    if kind in ("FULLY_CONNECTED", "LOGISTIC"):
        return "head"
    return "other"


def graph_ops(model_bytes: bytes) -> list[GraphOp]:
    """The operators of subgraph 0 in execution order, classed, with their shapes and MACs.

    Raises:
        ValueError: the bytes are not a TFLite model.
    """
    schema, model = _load(model_bytes)
    names = _builtin_names(schema)
    sub = model.subgraphs[0]
    shapes = {
        i: tuple(int(d) for d in t.shape) if t.shape is not None else ()
        for i, t in enumerate(sub.tensors)
    }
    constant = {
        i
        for i, t in enumerate(sub.tensors)
        if t.buffer
        and model.buffers[t.buffer].data is not None
        and len(model.buffers[t.buffer].data)
    }
    graph_inputs = {int(t) for t in sub.inputs}
    # The metadata branch: everything computed from a rank-2 graph input before the concat.
    meta_tensors = {t for t in graph_inputs if len(shapes[t]) == 2}
    ops = []
    first_conv_done = False
    for index, op in enumerate(sub.operators):
        kind = _opcode(schema, names, model, op)
        inputs = [int(i) for i in op.inputs if i >= 0]
        in_shapes = [shapes[i] for i in inputs]
        out = int(op.outputs[0])
        op_class = _classify(kind, inputs, meta_tensors, first_conv_done, in_shapes)
        if kind == "CONV_2D":
            first_conv_done = True
        if op_class == "meta" or (kind == "QUANTIZE" and any(i in meta_tensors for i in inputs)):
            meta_tensors.update(int(o) for o in op.outputs)
        ops.append(
            GraphOp(
                index,
                kind,
                op_class,
                _name(sub.tensors[out]),
                shapes[out],
                op_macs(kind, in_shapes, shapes[out]),
                tuple(shapes[i] for i in inputs if i not in constant),
            )
        )
    return ops


def total_macs(model_bytes: bytes) -> int:
    return sum(op.macs for op in graph_ops(model_bytes))


def num_ops(model_bytes: bytes) -> int:
    _, model = _load(model_bytes)
    return len(model.subgraphs[0].operators)


def prefix_model(model_bytes: bytes, keep: int) -> bytes:
    """The model cut after its first `keep` operators (1 <= keep <= number of ops).

    Graph inputs stay as they are; the outputs become every tensor produced by a kept op
    that a dropped op (or the original output list) still reads, so no kept op is dead.

    Raises:
        ValueError: `keep` is out of range or the bytes are not a TFLite model.
    """
    import flatbuffers

    schema, model = _load(model_bytes)
    sub = model.subgraphs[0]
    total = len(sub.operators)
    if not 1 <= keep <= total:
        raise ValueError(f"keep must be in [1, {total}], got {keep}")
    kept, dropped = sub.operators[:keep], sub.operators[keep:]
    produced = [int(o) for op in kept for o in op.outputs]
    needed = {int(i) for op in dropped for i in op.inputs if i >= 0}
    needed.update(int(o) for o in sub.outputs)
    outputs = [t for t in produced if t in needed]
    if not outputs:
        outputs = [int(kept[-1].outputs[0])]
    sub.operators = kept
    sub.outputs = outputs
    model.signatureDefs = None  # the signature names the old outputs
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def per_op_deltas(prefix_counts: list[float]) -> list[float]:
    """Cost of op k from cumulative counts of prefixes 1..n (the first prefix counts itself)."""
    return [prefix_counts[0]] + [
        b - a for a, b in zip(prefix_counts, prefix_counts[1:], strict=False)
    ]


def mac_per_insn(macs: int, instructions: float) -> float | None:
    return None if instructions <= 0 else macs / instructions
