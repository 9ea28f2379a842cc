"""Which of a model's ops XNNPACK takes over, and which fall back to the CPU kernels.

LiteRT lists the model's own ops followed by one DELEGATE node per partition; it does
not expose the execution plan. An op belongs to a partition when it lies between the
partition's inputs and outputs, so walking back from each DELEGATE node's outputs to its
inputs finds exactly the delegated ops; every other op runs on the reference kernels.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeped.errors import EdgepedError
from edgeped.fileio import sha256_bytes

DELEGATE_OP = "DELEGATE"


@dataclass(frozen=True)
class Delegation:
    """How a model's ops split between the XNNPACK delegate and the fallback kernels."""

    total_ops: int
    delegated_ops: int
    fallback_ops: tuple[str, ...]  # op names that run outside the delegate, in graph order

    @property
    def share(self) -> float:
        return self.delegated_ops / self.total_ops if self.total_ops else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_ops": self.total_ops,
            "delegated_ops": self.delegated_ops,
            "share": self.share,
            "fallback_ops": list(self.fallback_ops),
        }


def split_ops(ops: Iterable[Mapping[str, Any]]) -> Delegation:
    """Splits LiteRT op details (``_get_ops_details()`` with delegates applied).

    Args:
        ops: dicts with ``op_name``, ``inputs`` and ``outputs`` (tensor indices).
    """
    ops = list(ops)
    model_ops = [op for op in ops if op["op_name"] != DELEGATE_OP]
    producer = {int(t): i for i, op in enumerate(model_ops) for t in op["outputs"]}
    delegated: set[int] = set()
    for node in (op for op in ops if op["op_name"] == DELEGATE_OP):
        boundary = {int(t) for t in node["inputs"]}
        pending = [int(t) for t in node["outputs"]]
        seen: set[int] = set()
        while pending:
            tensor = pending.pop()
            if tensor in seen or tensor in boundary or tensor not in producer:
                continue
            seen.add(tensor)
            index = producer[tensor]
            delegated.add(index)
            pending.extend(int(t) for t in model_ops[index]["inputs"])
    fallback = tuple(op["op_name"] for i, op in enumerate(model_ops) if i not in delegated)
    return Delegation(len(model_ops), len(delegated), fallback)


def measure_delegation(model: str | os.PathLike) -> tuple[Delegation, str]:
    """Applies LiteRT's default XNNPACK delegate to a .tflite on the host and splits its ops.

    Returns:
        The split and the sha256 of the bytes that were inspected.

    Raises:
        EdgepedError: the file is missing or LiteRT cannot load it.
    """
    from edgeped.convert.inspect import load_interpreter

    path = Path(model)
    if not path.is_file():
        raise EdgepedError(f"model file not found: {path}", "check the run directory")
    content = path.read_bytes()
    interpreter = load_interpreter(content, delegates=True)
    return split_ops(interpreter._get_ops_details()), sha256_bytes(content)  # noqa: SLF001
