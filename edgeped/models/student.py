"""The ECU student: a depthwise-separable CNN built for int8 on ARM.

Every layer is one tfmot's default 8-bit scheme quantises (Conv/Depthwise + BN +
ReLU6 fold into one int8 op; Dense, Concatenate, global pooling), and ReLU6
bounds activations so int8 ranges stay tight. Input normalisation is done
outside the graph (tfmot rejects Rescaling).
"""

from __future__ import annotations

from edgeped.models.layers import (
    conv_block,
    finish,
    head,
    model_inputs,
    scaled_channels,
    separable_features,
    stem,
)
from edgeped.models.registry import ModelSpec, register

# (pointwise filters, stride, blocks at depth 1) per stage of depthwise-separable
# blocks; the first block of a stage carries its stride. 128x64 -> 4x2.
STAGES = ((32, 1, 1), (48, 2, 1), (64, 2, 1), (96, 2, 1), (128, 2, 2))


def blocks(depth: int) -> tuple[tuple[int, int], ...]:
    """(filters, stride) of every block: depth d gives the stages after the first d - 1
    extra stride-1 blocks each (depth 1 is the 6-block student)."""
    out = []
    for i, (filters, stride, count) in enumerate(STAGES):
        n = count if i == 0 else count + depth - 1
        out += [(filters, stride)] + [(filters, 1)] * (n - 1)
    return tuple(out)


@register("student")
def build_student(spec: ModelSpec):
    from edgeped._keras import keras

    image, meta = model_inputs(keras, spec.use_metadata)
    x = separable_features(
        keras, image, scaled_channels(16, spec.width), blocks(spec.depth), spec.width
    )
    score = head(
        keras, x, meta, hidden=scaled_channels(32, spec.width), meta_units=16, dropout=spec.dropout
    )
    return finish(keras, image, meta, score, "student")


# student_fused: the same stages with the full-resolution block replaced by one regular
# 3x3 stride-2 conv. On the a76 a depthwise layer runs at ~1 MAC per instruction and a
# pointwise one at 6-9 (benchmarks/results/device/variants-20261201-round2.md), so moving the
# 64x32 work into a dense conv and widening the cheap low-resolution layers buys about
# twice the MACs and parameters of the student at the same instruction count. The stem
# stays at 16 channels whatever the width: it runs at the highest resolution.
FUSED_BLOCKS = ((48, 1), (64, 2), (96, 2), (128, 2), (128, 1))


@register("student_fused")
def build_student_fused(spec: ModelSpec):
    from edgeped._keras import keras

    image, meta = model_inputs(keras, spec.use_metadata)
    x = conv_block(keras, stem(keras, image, 16), scaled_channels(32, spec.width), 2, "f0")
    x = separable_features(keras, x, None, FUSED_BLOCKS, spec.width)
    score = head(
        keras, x, meta, hidden=scaled_channels(32, spec.width), meta_units=16, dropout=spec.dropout
    )
    return finish(keras, image, meta, score, "student_fused")
