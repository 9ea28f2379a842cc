"""Pieces shared by the architectures: inputs, the metadata branch, the head."""

from __future__ import annotations

from edgeped.data.preprocess import META_INPUT_WIDTH
from edgeped.data.schema import CROP_SHAPE

# Keras' default 0.99 leaves the moving statistics far from the batch statistics
# for the first epochs of a short schedule: the inference-mode model is then no
# better than chance (measured: train AP 0.04 vs 0.50 after one epoch).
BN_MOMENTUM = 0.9


def model_inputs(keras, use_metadata: bool):
    """Returns (image, meta) Keras inputs; meta is None for an image-only model."""
    image = keras.Input(CROP_SHAPE, name="image")
    meta = keras.Input((META_INPUT_WIDTH,), name="meta") if use_metadata else None
    return image, meta


def head(keras, features, meta, *, hidden: int, meta_units: int, dropout: float):
    """Fuses image features with the metadata branch and ends in a sigmoid `score`.

    The metadata branch sees values and their presence mask, so a record without
    metadata (mask all zero) is a valid input: the model then relies on the image.
    """
    layers = keras.layers
    if meta is not None:
        m = layers.Dense(meta_units, activation="relu", name="meta_dense")(meta)
        features = layers.Concatenate(name="fuse")([features, m])
    x = layers.Dense(hidden, activation="relu", name="head_dense")(features)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(1, activation="sigmoid", name="score")(x)


def finish(keras, image, meta, score, name: str):
    model_in = [image] if meta is None else [image, meta]
    return keras.Model(model_in, score, name=name)
