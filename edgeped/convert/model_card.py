"""The model card: what a device needs to run a .tflite, and where it came from."""

from __future__ import annotations

import os

from edgeped.convert.inspect import (
    concat_audit,
    float_ops,
    load_interpreter,
    op_counts,
    tensor_infos,
)
from edgeped.data.preprocess import PIXEL_SCALE, Preprocessing
from edgeped.errors import EdgepedError
from edgeped.fileio import json_bytes, read_json, sha256_bytes, write_json_atomic
from edgeped.layout import CARD_SUFFIX, card_path  # noqa: F401  (re-exported)
from edgeped.provenance import stamp


def build_card(
    tflite: bytes,
    *,
    file_name: str,
    mode: str,
    architecture: str,
    parameters: int,
    prep: Preprocessing,
    source: dict,
) -> dict:
    """Describes a converted model from its bytes (inspected with LiteRT) and its source."""
    interpreter = load_interpreter(tflite, delegates=False)
    inputs, outputs = tensor_infos(interpreter)
    image = next((t for t in inputs if t.role == "image"), None)
    if image is None:
        raise EdgepedError(f"{file_name} has no 4-D image input", "re-export the model")
    u8_minus_128 = (
        image.dtype == "int8"
        and abs(image.scale * PIXEL_SCALE - 1.0) < 1e-6
        and image.zero_point == 0
    )
    preprocessing = prep.to_dict()
    preprocessing["image"]["u8_minus_128_exact"] = u8_minus_128
    return {
        **stamp("edgeped.model_card"),
        "model": {
            "file": file_name,
            "sha256": sha256_bytes(tflite),
            "size_bytes": len(tflite),
            "mode": mode,
            "architecture": architecture,
            "parameters": parameters,
            "ops": op_counts(interpreter),
            "float_ops": float_ops(interpreter) if mode.endswith("int8") else [],
            "concatenations": concat_audit(interpreter),
        },
        "inputs": [t.to_dict() for t in inputs],
        "outputs": [t.to_dict() for t in outputs],
        "preprocessing": preprocessing,
        "output": {
            "meaning": "probability that the crop shows a pedestrian",
            "int8_rule": "p = (q - output_zero_point) * output_scale",
        },
        "threshold": None,
        "source": source,
    }


def read_card(path: str | os.PathLike) -> dict:
    card = read_json(path, "model card")
    if not isinstance(card, dict) or card.get("kind") != "edgeped.model_card":
        raise EdgepedError(
            f"{path} is not an edgeped model card", "pass the .card.json beside a model"
        )
    model = card.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("sha256"), str):
        raise EdgepedError(
            f"model card {path} has no model.sha256: it cannot say which model it describes",
            "regenerate it with `edgeped convert`",
        )
    return card


def write_card(path: str | os.PathLike, card: dict) -> None:
    write_json_atomic(path, card)


def card_bytes(card: dict) -> bytes:
    """The card as `write_card` stores it (for writing it together with its model)."""
    return json_bytes(card)
