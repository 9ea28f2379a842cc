"""The architecture family: width and depth knobs, the MobileNet-style reference, int8-ready."""

import pytest

from edgeped.models import build_model
from edgeped.models.registry import ModelSpec
from edgeped.models.student import blocks


def _separable_blocks(model) -> int:
    return sum(type(layer).__name__ == "DepthwiseConv2D" for layer in model.layers)


def test_depth_adds_stride_one_blocks_and_keeps_the_output_resolution():
    assert blocks(1) == ((32, 1), (48, 2), (64, 2), (96, 2), (128, 2), (128, 1))
    deep = blocks(2)
    assert len(deep) == len(blocks(1)) + 4
    assert [s for _, s in deep].count(2) == 4  # same downsampling: 128x64 -> 4x2
    m1, m2 = build_model(ModelSpec("student")), build_model(ModelSpec("student", depth=2))
    assert _separable_blocks(m1) == 6 and _separable_blocks(m2) == 10
    assert m1.get_layer("b5_pw_relu").output_shape == m2.get_layer("b9_pw_relu").output_shape


def test_width_scales_channels_and_parameters():
    narrow = build_model(ModelSpec("student", width=0.5))
    wide = build_model(ModelSpec("student", width=1.5))
    assert narrow.get_layer("b5_pw").filters == 64 and wide.get_layer("b5_pw").filters == 192
    assert wide.count_params() > 4 * narrow.count_params()


def test_fused_student_replaces_the_full_resolution_block_with_one_conv():
    from edgeped.models.student import FUSED_BLOCKS

    model = build_model(ModelSpec("student_fused", width=1.5))
    assert model.get_layer("stem_conv").filters == 16  # the stem keeps 16 at every width
    f0 = model.get_layer("f0_conv")
    assert (f0.filters, f0.kernel_size, f0.strides) == (48, (3, 3), (2, 2))
    assert _separable_blocks(model) == len(FUSED_BLOCKS) == 5
    assert model.get_layer("b0_dw").input_shape[1:3] == (32, 16)  # no depthwise at 64x32
    assert model.get_layer("b4_pw_relu").output_shape == (None, 4, 2, 192)
    student = build_model(ModelSpec("student"))
    assert model.count_params() > 2 * student.count_params()


@pytest.mark.parametrize("arch", ["student", "student_fused", "mobilenet", "vgg"])
def test_family_members_take_both_inputs_and_quantise(arch):
    from edgeped._keras import tfmot

    model = build_model(ModelSpec(arch, width=0.5, depth=2 if arch == "student" else 1))
    assert [t.name.split(":")[0] for t in model.inputs] == ["image", "meta"]
    assert model.output_shape == (None, 1)
    qat = tfmot().quantization.keras.quantize_model(model)  # no unsupported layer
    assert qat.count_params() >= model.count_params()
