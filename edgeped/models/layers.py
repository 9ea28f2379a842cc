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


def scaled_channels(c: int, width: float) -> int:
    """A layer's channel count under a width multiplier: a multiple of 8, at least 8."""
    return max(8, int(round(c * width / 8)) * 8)


def stem(keras, image, filters: int):
    """The 3x3 stride-2 conv + BN + ReLU6 every student-family model starts with."""
    layers = keras.layers
    x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(
        image
    )
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    return layers.ReLU(6.0, name="stem_relu")(x)


def conv_block(keras, x, filters: int, stride: int, name: str):
    """A regular 3x3 conv + BN + ReLU6 (one int8 op once folded)."""
    layers = keras.layers
    x = layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x)


def separable_features(keras, image, stem_channels: int | None, blocks, width: float):
    """Stem, then depthwise-separable blocks (3x3 depthwise + 1x1 pointwise, BN, ReLU6
    each), then global average pooling: the body of the student family.

    Args:
        stem_channels: the stem's width; None when `image` is already a feature map.
        blocks: (filters, stride) per block, before the width multiplier.
    """
    layers = keras.layers
    x = image if stem_channels is None else stem(keras, image, stem_channels)
    for i, (filters, stride) in enumerate(blocks):
        x = layers.DepthwiseConv2D(
            3, strides=stride, padding="same", use_bias=False, name=f"b{i}_dw"
        )(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"b{i}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"b{i}_dw_relu")(x)
        x = layers.Conv2D(scaled_channels(filters, width), 1, use_bias=False, name=f"b{i}_pw")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"b{i}_pw_bn")(x)
        x = layers.ReLU(6.0, name=f"b{i}_pw_relu")(x)
    return layers.GlobalAveragePooling2D(name="pool")(x)
