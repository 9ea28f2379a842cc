"""The model card: what a device needs to run a .tflite, and where it came from."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class CardFacts:
    """The facts of a model card that decide and feed its model, read and checked once.

    Eval's consumers, shadow, bench, release and the gate take the threshold, the
    preprocessing and the calibration from here: the card is their one source.

    Attributes:
        file: the card's path, named in every error.
        model_sha256: the sha256 of the .tflite the card describes.
        mode: the conversion mode (``float32``, ``ptq-int8``, ``qat-int8``).
        threshold: the card's threshold section as eval wrote it (None before eval).
        threshold_score: the operating threshold on the probability (None before eval).
        threshold_int8: the same threshold on the raw int8 output (int8 models only).
        calibration: the calibrator eval fitted on val, if any.
        preprocessing: the card's preprocessing section as convert wrote it.
        image_rule: how images are fed (``fixed`` or ``standardize``).
        dataset: the dataset the model was converted against, if recorded.
    """

    file: str
    model_sha256: str
    mode: str = ""
    threshold: dict | None = None
    threshold_score: float | None = None
    threshold_int8: int | None = None
    calibration: dict | None = None
    preprocessing: dict | None = None
    image_rule: str = "fixed"
    dataset: str | None = None

    @classmethod
    def from_card(cls, card: dict, file: str | os.PathLike = "model card") -> CardFacts:
        """Takes the facts out of a parsed card.

        Raises:
            EdgepedError: naming the file and the fact when one is malformed.
        """
        fix = "regenerate it with `edgeped convert`, then `edgeped eval RUN_DIR`"
        if not isinstance(card, dict):
            raise EdgepedError(f"model card {file} is not a JSON object", fix)
        model = card.get("model")
        sha = model.get("sha256") if isinstance(model, dict) else None
        if not isinstance(sha, str):
            raise EdgepedError(
                f"model card {file} has no model.sha256: it cannot say which model it describes",
                fix,
            )
        threshold = card.get("threshold")
        score = threshold.get("score") if isinstance(threshold, dict) else None
        int8 = threshold.get("int8") if isinstance(threshold, dict) else None
        if threshold is not None and not isinstance(threshold, dict):
            problem = f"threshold is {threshold!r}, not an object"
        elif score is not None and not _number(score):
            problem = f"threshold.score is {score!r}, not a number"
        elif int8 is not None and not (
            isinstance(int8, int) and not isinstance(int8, bool) and -128 <= int8 <= 127
        ):
            problem = f"threshold.int8 is {int8!r}, not an int8 value"
        else:
            problem = None
        if problem:
            raise EdgepedError(
                f"model card {file} has no decision threshold ({problem})",
                "run `edgeped eval RUN_DIR`: it chooses the threshold on val and writes it "
                "to the card",
            )
        pre = card.get("preprocessing")
        if pre is not None and not isinstance(pre, dict):
            raise EdgepedError(f"model card {file}: preprocessing is {pre!r}, not an object", fix)
        image = (pre or {}).get("image")
        calibration = card.get("calibration")
        source = card.get("source")
        return cls(
            file=str(file),
            model_sha256=sha,
            mode=str(model.get("mode") or ""),
            threshold=threshold,
            threshold_score=float(score) if score is not None else None,
            threshold_int8=int8,
            calibration=calibration if isinstance(calibration, dict) else None,
            preprocessing=pre,
            image_rule=str(image.get("rule", "fixed")) if isinstance(image, dict) else "fixed",
            dataset=source.get("dataset") if isinstance(source, dict) else None,
        )

    def decision_threshold(self, run_dir: str | os.PathLike = "RUN_DIR") -> float:
        """The operating threshold on the probability.

        Raises:
            EdgepedError: the card has none yet (eval writes it).
        """
        if self.threshold_score is None:
            raise EdgepedError(
                f"the model card {self.file} has no operating threshold",
                f"run `edgeped eval {run_dir}` first: it picks the threshold on val and "
                "writes it to the card",
            )
        return self.threshold_score

    def check_describes(self, model: str | os.PathLike, model_sha256: str) -> None:
        """Refuses a card made for another model than ``model`` (whose sha256 is given).

        Raises:
            EdgepedError: the card names another sha256.
        """
        if self.model_sha256 != model_sha256:
            raise EdgepedError(
                f"model card {self.file} was made for the model with sha256 "
                f"{self.model_sha256[:12]}, {model} is {model_sha256[:12]}: its metadata "
                "normalisation may not be this model's",
                "re-run `edgeped convert` for this model, or pass --preprocess FILE",
            )

    def runner_preprocess(self) -> dict[str, Any] | None:
        """The preprocessing in the device runner's form, or None when the card has none.

        Raises:
            EdgepedError: the preprocessing lacks metadata mean/std or they are malformed.
        """
        section = self.preprocessing
        if not section:
            return None
        meta = section.get("metadata", section)
        if not isinstance(meta, dict) or not {"mean", "std"} <= set(meta):
            raise EdgepedError(
                f"model card {self.file}: preprocessing has no metadata mean/std",
                "regenerate the model card, or pass --preprocess FILE",
            )
        from edgeped.schemas import shape_problem

        problem = shape_problem(meta, "edgeped.preprocessing")
        if problem:
            raise EdgepedError(
                f"model card {self.file}: preprocessing.metadata.{problem}",
                "regenerate the model card with `edgeped convert`, or pass --preprocess FILE",
            )
        return {
            "image": {"rule": self.image_rule},
            "metadata": {"mean": meta["mean"], "std": meta["std"], "clip": meta.get("clip", 4.0)},
        }

    def host_preprocessing(self) -> Preprocessing:
        """The preprocessing as the host scorer applies it (eval, robustness, beam scoring).

        Raises:
            EdgepedError: the card has no preprocessing section.
        """
        if not self.preprocessing:
            raise EdgepedError(
                f"model card {self.file} has no preprocessing section",
                "regenerate it with `edgeped convert`",
            )
        return Preprocessing.from_dict(self.preprocessing)

    @property
    def calibrator(self) -> dict | None:
        """The calibrator's parameters (``calibration`` without its description), if fitted."""
        if self.calibration is None:
            return None
        return {k: v for k, v in self.calibration.items() if k not in ("rule", "fitted_on")}

    @property
    def preprocessing_sha256(self) -> str | None:
        """The sha256 of the preprocessing section's canonical JSON (None without one)."""
        if self.preprocessing is None:
            return None
        canonical = json.dumps(self.preprocessing, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def card_facts(run_dir: str | os.PathLike, model_name: str) -> CardFacts:
    """The facts of ``<run_dir>/<model_name>.card.json``.

    Raises:
        EdgepedError: the card is missing, not a model card, or a fact is malformed.
    """
    path = Path(run_dir) / f"{model_name}{CARD_SUFFIX}"
    if not path.is_file():
        raise EdgepedError(
            f"{Path(run_dir)} has no model card {path.name}",
            f"run `edgeped convert {run_dir}` (it writes a card beside each model)",
        )
    return CardFacts.from_card(read_card(path), path)


def card_facts_beside(model: str | os.PathLike) -> CardFacts:
    """The facts of the card beside a .tflite, checked to describe that very model.

    Raises:
        EdgepedError: no card beside the model, a malformed card, or one for another model.
    """
    from edgeped.fileio import sha256_file

    path = card_path(model)
    if not path.is_file():
        raise EdgepedError(
            f"{model} has no model card beside it",
            "use models straight from a run directory (convert writes the cards)",
        )
    facts = CardFacts.from_card(read_card(path), path)
    facts.check_describes(model, sha256_file(model))
    return facts


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
