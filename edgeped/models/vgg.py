"""Plain VGG-style CNNs: the `vgg` student, and the stack the float teacher is built from.

Two 3x3 convs + BN + ReLU per stage, max pooling between stages. At width 0.5 it is the
teacher (27 MMAC, 2.8 M cortex-a76 instructions per int8 invoke: not meant for the ECU);
`vgg` at width 0.25 is the same graph at 6.9 MMAC and 1.29 M instructions. Regular 3x3
convs run at several MACs per a76 instruction where depthwise ones run at about one
(benchmarks/results/device/variants-20261201-round2.md), and every layer is one tfmot's
default 8-bit scheme quantises.
"""

from __future__ import annotations

from edgeped.models.layers import BN_MOMENTUM, finish, head, model_inputs
from edgeped.models.registry import ModelSpec, register

STAGES = (32, 64, 128, 256)


def plain_cnn(spec: ModelSpec, name: str, stages=STAGES, first_stage_convs: int = 2):
    """The plain stack at ``spec.width``, with the shared head, as a model called ``name``.

    ``stages`` are the channels per stage at width 1; ``first_stage_convs`` is 2 for the
    teacher's stack, 1 to keep only the strided stem at full resolution.
    """
    from edgeped._keras import keras

    layers = keras.layers
    image, meta = model_inputs(keras, spec.use_metadata)
    x = image
    for i, filters in enumerate(stages):
        f = max(8, int(filters * spec.width))
        stride = 2 if i == 0 else 1
        x = layers.Conv2D(f, 3, strides=stride, padding="same", use_bias=False, name=f"s{i}_c1")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"s{i}_bn1")(x)
        x = layers.ReLU(name=f"s{i}_r1")(x)
        if i > 0 or first_stage_convs == 2:
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
    return finish(keras, image, meta, score, name)


@register("vgg")
def build_vgg(spec: ModelSpec):
    """The teacher's stack as a student (`[student] architecture = "vgg"`, width 0.25)."""
    return plain_cnn(spec, "vgg")


@register("vgg_stem1")
def build_vgg_stem1(spec: ModelSpec):
    """`vgg` without the second conv at full resolution (8 -> 8 channels at w0.25, which
    runs at 3.2 MAC per a76 instruction): 5.75 MMAC, 0.92 M a76 instructions at w0.25."""
    return plain_cnn(spec, "vgg_stem1", first_stage_convs=1)


@register("vgg_late")
def build_vgg_late(spec: ModelSpec):
    """`vgg_stem1` with the channels moved to the two low-resolution stages, where int8 3x3
    convs run near the `sdot` limit: (8, 16, 48, 128) at w0.25, 12.2 MMAC, 1.46 M a76
    instructions (8.4 MAC per instruction)."""
    return plain_cnn(spec, "vgg_late", stages=(32, 64, 192, 512), first_stage_convs=1)
