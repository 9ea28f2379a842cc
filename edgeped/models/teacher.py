"""The float teacher: the plain VGG-style stack of models/vgg.py at width 0.5.

Accurate and not meant for the ECU (27 MMAC, 2.8 M cortex-a76 instructions per int8
invoke); it teaches the students by distillation.
"""

from __future__ import annotations

from edgeped.models.registry import ModelSpec, register
from edgeped.models.vgg import plain_cnn


@register("teacher")
def build_teacher(spec: ModelSpec):
    return plain_cnn(spec, "teacher")
