"""A MobileNet-v1-style reference: a 3x3/2 stem and seven depthwise-separable blocks.

It is the plain depthwise CNN that real-data results are compared against
(32-64-64-128-128-256-256, stride 16 overall); the `student` family is the ECU
default. Same int8-friendly layers as the student (Conv/Depthwise + BN + ReLU6).
"""

from __future__ import annotations

from edgeped.models.layers import finish, head, model_inputs, scaled_channels, separable_features
from edgeped.models.registry import ModelSpec, register

BLOCKS = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1))


@register("mobilenet")
def build_mobilenet(spec: ModelSpec):
    from edgeped._keras import keras

    image, meta = model_inputs(keras, spec.use_metadata)
    x = separable_features(keras, image, scaled_channels(32, spec.width), BLOCKS, spec.width)
    score = head(
        keras, x, meta, hidden=scaled_channels(32, spec.width), meta_units=16, dropout=spec.dropout
    )
    return finish(keras, image, meta, score, "mobilenet")
