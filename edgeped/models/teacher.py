"""The float teacher: a plain VGG-style CNN, accurate and not meant for the ECU."""

from __future__ import annotations

from edgeped.models.layers import BN_MOMENTUM, finish, head, model_inputs
from edgeped.models.registry import ModelSpec, register

STAGES = (32, 64, 128, 256)


@register("teacher")
def build_teacher(spec: ModelSpec):
    from edgeped._keras import keras

    layers = keras.layers
    image, meta = model_inputs(keras, spec.use_metadata)
    x = image
    for i, filters in enumerate(STAGES):
        f = max(8, int(filters * spec.width))
        stride = 2 if i == 0 else 1
        x = layers.Conv2D(f, 3, strides=stride, padding="same", use_bias=False, name=f"s{i}_c1")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"s{i}_bn1")(x)
        x = layers.ReLU(name=f"s{i}_r1")(x)
        x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"s{i}_c2")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"s{i}_bn2")(x)
        x = layers.ReLU(name=f"s{i}_r2")(x)
        x = layers.MaxPooling2D(2, name=f"s{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    score = head(
        keras,
        x,
        meta,
        hidden=max(16, int(128 * spec.width)),
        meta_units=32,
        dropout=max(spec.dropout, 0.2),
    )
    return finish(keras, image, meta, score, "teacher")
