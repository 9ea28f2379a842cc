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
from edgeped.fileio import read_json, sha256_bytes, write_json_atomic, write_text_atomic
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
    if card.get("kind") != "edgeped.model_card":
        raise EdgepedError(
            f"{path} is not an edgeped model card", "pass the .card.json beside a model"
        )
    return card


def markdown_path(path: str | os.PathLike) -> Path:
    """`student_qat_int8.card.json` -> `student_qat_int8.card.md`."""
    p = Path(path)
    return p.with_name(p.name.removesuffix(".json") + ".md")


def write_card(path: str | os.PathLike, card: dict) -> None:
    """Writes the card as JSON (what tools read) and as Markdown beside it (what people read)."""
    write_json_atomic(path, card)
    write_text_atomic(markdown_path(path), render_card_markdown(card))


def _cell(value) -> str:
    return str(value).replace("|", "\\|")


def render_card_markdown(card: dict) -> str:
    """The model card for a person: what the model is, how to feed it, where it came from."""
    m = card["model"]
    threshold = card.get("threshold")
    out = [
        f"# Model card: `{m['file']}`",
        "",
        f"- mode: **{m['mode']}**, architecture `{m['architecture']}`, "
        f"{m['parameters']:,} parameters, {m['size_bytes'] / 1024:.1f} KiB "
        f"({m['size_bytes']:,} bytes)",
        f"- sha256: `{m['sha256']}`",
        f"- output: {card['output']['meaning']}",
    ]
    if threshold:
        out.append(
            f"- operating threshold: **{threshold['score']:.6g}** ({threshold['rule']}, chosen on "
            f"{threshold['selected_on']}: val recall {100 * threshold['val_recall']:.2f}%, "
            f"val FPR {100 * threshold['val_fpr']:.2f}%)"
        )
        if "int8" in threshold:
            out.append(
                f"- int8 threshold: {threshold['int8_rule']}, int8 = **{threshold['int8']}**"
            )
    else:
        out.append("- operating threshold: not chosen yet (run `edgeped eval`)")
    out += ["", "## Inputs and outputs", ""]
    out += [
        "| role | name | shape | dtype | scale | zero point |",
        "|---|---|---|---|---|---|",
    ]
    for t in card["inputs"] + card["outputs"]:
        out.append(
            f"| {t['role']} | `{_cell(t['name'])}` | {t['shape']} | {t['dtype']} | "
            f"{t.get('scale', 0):.6g} | {t.get('zero_point', 0)} |"
        )
    image = card["preprocessing"]["image"]
    meta = card["preprocessing"]["metadata"]
    out += [
        "",
        "## How to feed it",
        "",
        f"- image: {image['dtype_in']} {image['channels']} {image['layout']}; float rule "
        f"`{image['float_rule']}`; int8 rule: {image['int8_rule']} "
        f"(exact for this model: {'yes' if image.get('u8_minus_128_exact') else 'no'})",
        f"- metadata: {meta['rule']}",
        "",
        "| field | mean | std |",
        "|---|---|---|",
        *[
            f"| {f} | {mu:.6g} | {sd:.6g} |"
            for f, mu, sd in zip(meta["fields"], meta["mean"], meta["std"], strict=True)
        ],
        "",
        f"- output (int8 models): `{card['output']['int8_rule']}`",
        "",
        "## Graph",
        "",
        "Ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(m["ops"].items())),
        "",
    ]
    if m.get("float_ops"):
        out += [f"Float ops left in the int8 graph: {', '.join(m['float_ops'])}", ""]
    src = card["source"]
    out += ["## Provenance", ""]
    out += [f"- {k}: `{v}`" for k, v in src.items()]
    versions = card.get("tool_versions") or {}
    if versions:
        out.append("- tools: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    return "\n".join(out) + "\n"
