"""Keras -> TFLite conversion modes (float32, ptq-int8, qat-int8), by registry.

Full-integer modes produce int8 input and output tensors, calibrated on a
representative dataset drawn from the train split. The image input of a QAT
model has scale 1/128 and zero point 0, so the device feeds q = u8 - 128.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from edgeped.errors import EdgepedError
from edgeped.registry import Registry

CONVERTERS: Registry[Callable[..., bytes]] = Registry("conversion mode")
register = CONVERTERS.register


@dataclass(frozen=True)
class CalibrationData:
    """Preprocessed model inputs used to calibrate int8 ranges."""

    image: np.ndarray  # (N, 128, 64, 3) float32
    meta: np.ndarray | None  # (N, 12) float32

    def __post_init__(self) -> None:
        if self.image.shape[0] == 0:
            raise EdgepedError(
                "the representative dataset is empty",
                "the train split needs records to calibrate int8 ranges",
            )

    def samples(self, model) -> Iterator[dict[str, np.ndarray]]:
        """Yields one-record samples keyed by input name (TFLite may reorder inputs)."""
        names = [t.name.split(":")[0] for t in model.inputs]
        for i in range(self.image.shape[0]):
            by_name = {
                "image": self.image[i : i + 1],
                "meta": None if self.meta is None else self.meta[i : i + 1],
            }
            yield {n: by_name[n] for n in names}


def _converter(model):
    from edgeped._keras import tf

    return tf.lite.TFLiteConverter.from_keras_model(model)


def _full_integer(converter, model, calibration: CalibrationData | None) -> None:
    from edgeped._keras import tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if calibration is not None:
        converter.representative_dataset = lambda: calibration.samples(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8


@register("float32")
def convert_float32(model, calibration: CalibrationData | None = None) -> bytes:
    return _converter(model).convert()


@register("ptq-int8")
def convert_ptq_int8(model, calibration: CalibrationData | None = None) -> bytes:
    if calibration is None:
        raise EdgepedError(
            "post-training int8 needs a representative dataset",
            "pass the dataset the model was trained on (--data)",
        )
    converter = _converter(model)
    _full_integer(converter, model, calibration)
    return converter.convert()


@register("qat-int8")
def convert_qat_int8(model, calibration: CalibrationData | None = None) -> bytes:
    if not any(type(layer).__name__ == "QuantizeLayer" for layer in model.layers):
        raise EdgepedError(
            "qat-int8 needs a quantization-aware model (tfmot), got a float one",
            "convert student_qat.h5, or use --mode ptq-int8 for a float model",
        )
    converter = _converter(model)
    _full_integer(converter, model, calibration)
    return converter.convert()


def convert_model(model, mode: str, calibration: CalibrationData | None = None) -> bytes:
    """Converts a Keras model with one of the registered modes; returns .tflite bytes.

    Raises:
        EdgepedError: unknown mode, or the converter failed (with its reason).
    """
    if mode not in CONVERTERS:
        raise EdgepedError(
            f"unknown conversion mode {mode!r}", f"use one of {', '.join(sorted(CONVERTERS))}"
        )
    try:
        with warnings.catch_warnings():
            # Known notices from inside the TFLite converter, not actionable by users:
            # int8 I/O stats come from calibration, and the converter itself still
            # instantiates the deprecated tf.lite.Interpreter.
            warnings.filterwarnings("ignore", message=".*Statistics for quantized inputs.*")
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            return CONVERTERS[mode](model, calibration)
    except EdgepedError:
        raise
    except Exception as exc:  # the converter raises many unrelated types
        raise EdgepedError(
            f"TFLite conversion ({mode}) failed: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}",
            "check the model uses only layers the mode supports",
        ) from exc


@dataclass(frozen=True)
class MixedPrecision:
    """Where a full-integer model keeps more precision: named layers in float, or 16x8.

    float_nodes are output tensor names of the layers to keep in float (as the
    quantisation report lists them); float_ops are op types (e.g. CONV_2D). With
    int16_activations the whole model runs with int16 activations and int8 weights
    (LiteRT's 16x8 mode; its I/O stays float32, and XNNPACK has no 16x8 kernels).
    """

    float_nodes: tuple[str, ...] = ()
    float_ops: tuple[str, ...] = ()
    int16_activations: bool = False

    def __post_init__(self) -> None:
        if self.int16_activations and (self.float_nodes or self.float_ops):
            raise ValueError(
                "int16_activations applies to the whole model; float_nodes/float_ops "
                f"({list(self.float_nodes) + list(self.float_ops)}) cannot be combined with it"
            )


def convert_mixed(model, calibration: CalibrationData, mixed: MixedPrecision) -> bytes:
    """Full-integer conversion that keeps the layers `mixed` names in float, or 16x8.

    Float layers: the model is calibrated once, then quantised by the MLIR quantiser with
    those nodes/ops denylisted (TFLite's QuantizationDebugger does the same), int8 I/O.

    Raises:
        EdgepedError: the converter failed or a named node is not in the model.
    """
    from edgeped._keras import tf

    try:
        converter = _converter(model)
        if mixed.int16_activations:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: calibration.samples(model)
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
                return converter.convert()
        from tensorflow.lite.python import convert as lite_convert

        _full_integer(converter, model, calibration)
        converter.experimental_mlir_quantizer = True
        converter._experimental_calibrate_only = True  # the debugger's own route
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            warnings.filterwarnings("ignore", message=".*Statistics for quantized inputs.*")
            calibrated = converter.convert()
        return lite_convert.mlir_quantize(
            calibrated,
            fully_quantize=True,
            input_data_type=tf.int8,
            output_data_type=tf.int8,
            denylisted_ops=list(mixed.float_ops) or None,
            denylisted_nodes=list(mixed.float_nodes) or None,
        )
    except Exception as exc:  # the converter raises many unrelated types
        raise EdgepedError(
            f"mixed-precision conversion failed: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}",
            "check the layer names against the quantisation report",
        ) from exc
