"""A two-layer model (one strided conv, one dense) for fast tests of the whole path."""

from __future__ import annotations

from edgeped.models.layers import finish, model_inputs
from edgeped.models.registry import ModelSpec, register


@register("tiny")
def build_tiny(spec: ModelSpec):
    from edgeped._keras import keras

    layers = keras.layers
    image, meta = model_inputs(keras, spec.use_metadata)
    x = layers.Conv2D(max(4, int(8 * spec.width)), 5, strides=4, padding="same", name="conv")(image)
    x = layers.ReLU(6.0, name="relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if meta is not None:
        x = layers.Concatenate(name="fuse")([x, meta])
    score = layers.Dense(1, activation="sigmoid", name="score")(x)
    return finish(keras, image, meta, score, "tiny")
