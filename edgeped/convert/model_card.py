"""The model card: what a device needs to run a .tflite, and where it came from."""

from __future__ import annotations

import os
from pathlib import Path

from edgeped.convert.inspect import (
    concat_audit,
    float_ops,
    load_interpreter,
    op_counts,
    tensor_infos,
)
from edgeped.data.preprocess import PIXEL_SCALE, Preprocessing
from edgeped.errors import EdgepedError
from edgeped.fileio import json_bytes, read_json, sha256_bytes, write_json_atomic, write_text_atomic
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
        prep.image_rule == "fixed"
        and image.dtype == "int8"
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
    from edgeped.schemas import check_shape

    return check_shape(
        card, "edgeped.model_card", path, "model card", "regenerate it with `edgeped convert`"
    )


def markdown_path(path: str | os.PathLike) -> Path:
    """`student_qat_int8.card.json` -> `student_qat_int8.card.md`."""
    p = Path(path)
    return p.with_name(p.name.removesuffix(".json") + ".md")


def write_card(path: str | os.PathLike, card: dict) -> None:
    """Writes the card as JSON (what tools read) and as Markdown beside it (what people read)."""
    write_json_atomic(path, card)
    write_text_atomic(markdown_path(path), render_card_markdown(card))


def card_bytes(card: dict) -> bytes:
    """The card as `write_card` stores it (for writing it together with its model)."""
    return json_bytes(card)


def _cell(value) -> str:
    return str(value).replace("|", "\\|")


def _num(value, fmt: str = ".6g", scale: float = 1.0, suffix: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "?"
    return f"{value * scale:{fmt}}{suffix}"


def render_card_markdown(card: dict) -> str:
    """The model card for a person: what the model is, how to feed it, where it came from.

    Tolerates partial cards (a field missing renders as `?`): the JSON card is what
    tools read, and writing it must never fail because of this view.
    """
    m = card.get("model") or {}
    threshold = card.get("threshold")
    output = card.get("output") or {}
    size = m.get("size_bytes")
    out = [
        f"# Model card: `{m.get('file', '?')}`",
        "",
        f"- mode: **{m.get('mode', '?')}**, architecture `{m.get('architecture', '?')}`, "
        f"{_num(m.get('parameters'), ',')} parameters, {_num(size, '.1f', 1 / 1024)} KiB "
        f"({_num(size, ',')} bytes)",
        f"- sha256: `{m.get('sha256', '?')}`",
        f"- output: {output.get('meaning', '?')}",
    ]
    if isinstance(threshold, dict) and threshold:
        out.append(
            f"- operating threshold: **{_num(threshold.get('score'))}** "
            f"({threshold.get('rule', '?')}, chosen on {threshold.get('selected_on', '?')}: "
            f"val recall {_num(threshold.get('val_recall'), '.2f', 100, '%')}, "
            f"val FPR {_num(threshold.get('val_fpr'), '.2f', 100, '%')})"
        )
        if "int8" in threshold:
            out.append(
                f"- int8 threshold: {threshold.get('int8_rule', '?')}, "
                f"int8 = **{threshold['int8']}**"
            )
    else:
        out.append("- operating threshold: not chosen yet (run `edgeped eval`)")
    out += [
        "",
        "## Inputs and outputs",
        "",
        "| role | name | shape | dtype | scale | zero point |",
        "|---|---|---|---|---|---|",
    ]
    for t in (card.get("inputs") or []) + (card.get("outputs") or []):
        out.append(
            f"| {t.get('role', '?')} | `{_cell(t.get('name', '?'))}` | {t.get('shape', '?')} | "
            f"{t.get('dtype', '?')} | {_num(t.get('scale', 0))} | {t.get('zero_point', 0)} |"
        )
    prep = card.get("preprocessing") or {}
    image, meta = prep.get("image") or {}, prep.get("metadata") or {}
    out += [
        "",
        "## How to feed it",
        "",
        f"- image: {image.get('dtype_in', '?')} {image.get('channels', '?')} "
        f"{image.get('layout', '?')}; float rule `{image.get('float_rule', '?')}`; int8 rule: "
        f"{image.get('int8_rule', '?')} "
        f"(exact for this model: {'yes' if image.get('u8_minus_128_exact') else 'no'})",
        f"- metadata: {meta.get('rule', '?')}",
        "",
        "| field | mean | std |",
        "|---|---|---|",
        *[
            f"| {f} | {_num(mu)} | {_num(sd)} |"
            for f, mu, sd in zip(
                meta.get("fields", []), meta.get("mean", []), meta.get("std", []), strict=False
            )
        ],
        "",
        f"- output (int8 models): `{output.get('int8_rule', '?')}`",
        "",
        "## Graph",
        "",
        "Ops: " + ", ".join(f"{k} x{v}" for k, v in sorted((m.get("ops") or {}).items())),
        "",
    ]
    if m.get("float_ops"):
        out += [f"Float ops left in the int8 graph: {', '.join(m['float_ops'])}", ""]
    out += ["## Provenance", ""]
    out += [f"- {k}: `{v}`" for k, v in (card.get("source") or {}).items()]
    versions = card.get("tool_versions") or {}
    if versions:
        out.append("- tools: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    return "\n".join(out) + "\n"
