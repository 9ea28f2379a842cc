"""The ECU student: a depthwise-separable CNN built for int8 on ARM.

Every layer is one tfmot's default 8-bit scheme quantises (Conv/Depthwise + BN +
ReLU6 fold into one int8 op; Dense, Concatenate, global pooling), and ReLU6
bounds activations so int8 ranges stay tight. Input normalisation is done
outside the graph (tfmot rejects Rescaling).
"""

from __future__ import annotations

from edgeped.models.layers import finish, head, model_inputs, scaled_channels, separable_features
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
