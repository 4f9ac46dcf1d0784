"""Networks written as users write them, each a pattern that once failed to build (issue 13):
every one goes export -> tidy -> streamline -> to_hw bit-exact against PyTorch, with every layer
in hardware, and folds on the Pynq-Z1; the slow test also simulates each in C++, bit-exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv1d, QuantConv2d, QuantConvTranspose2d, QuantLinear, QuantReLU, TruncAvgPool2d
from brevitas.quant import Int8WeightPerChannelFloat, Uint8ActPerTensorFixedPoint
from onnx import helper, numpy_helper
from qonnx.custom_op.registry import getCustomOp
from torch import nn

from qnnflow.flow.boards import load_board
from qnnflow.hls.cppsim import cppsim
from qnnflow.models.export import seeded_inputs
from qnnflow.transforms.fold import fold

from .nets import activation, weight_kwargs
from .test_generality import HEAD_OPS, TAIL_OPS, PerChannelWeightPow2, _input_quant, _randomized, assert_exact_through_hw

BOARD = load_board("pynq-z1")


def pool_after_linear():
    """Bug 1: the pool copied the MatMul's stale INT32 type before the MVAU's own output type was
    known, and fold refused the mismatch (and the scale kept 4 axes past the flatten)."""
    return nn.Sequential(
        _input_quant(), QuantConv2d(2, 3, 3, bias=False, **weight_kwargs(4)), nn.MaxPool2d(2),
        nn.Flatten(), QuantLinear(12, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 6, 6)


def xnor_conv_pool_sign():
    """Bug 2: the popcount-to-+-1 correction meant for the last layer was inserted after the XNOR
    conv, mid-graph, and the pool read floats."""
    return nn.Sequential(
        _input_quant(), QuantConv2d(2, 4, 3, bias=False, **weight_kwargs(4)), activation("sign", 1),
        QuantConv2d(4, 4, 3, bias=False, **weight_kwargs(1)), nn.MaxPool2d(2), activation("sign", 1),
        nn.Flatten(), QuantLinear(4 * 2 * 2, 4, bias=False, **weight_kwargs(1)),
    ), (1, 2, 8, 8)


class ViewFlatten(nn.Module):
    """Flatten as Brevitas's own CNV writes it."""

    def forward(self, x):
        return x.view(x.size(0), -1)


def view_flatten():
    """Bug 3: exported as a Reshape, which left a Transpose inside the dataflow region."""
    return nn.Sequential(
        _input_quant(), QuantConv2d(2, 3, 3, bias=False, **weight_kwargs(4)), activation("relu", 4), nn.MaxPool2d(2),
        ViewFlatten(), QuantLinear(3 * 2 * 2, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 6, 6)


def shape_computed_by_graph(model):
    """Each Reshape's constant shape replaced by Shape -> Gather(0) -> Unsqueeze -> Concat with -1, as
    torch.onnx exports ``x.view(x.size(0), -1)`` with a dynamic batch axis."""
    for node in [n for n in model.graph.node if n.op_type == "Reshape"]:
        x, tag = node.input[0], node.name
        consts = {f"{tag}_zero": np.array(0, np.int64), f"{tag}_axes": np.array([0], np.int64),
                  f"{tag}_rest": np.array([-1], np.int64)}
        for name, value in consts.items():
            model.graph.initializer.append(numpy_helper.from_array(value, name))
        index = list(model.graph.node).index(node)
        for offset, new in enumerate([
            helper.make_node("Shape", [x], [f"{tag}_shape"]),
            helper.make_node("Gather", [f"{tag}_shape", f"{tag}_zero"], [f"{tag}_batch"], axis=0),
            helper.make_node("Unsqueeze", [f"{tag}_batch", f"{tag}_axes"], [f"{tag}_batch1"]),
            helper.make_node("Concat", [f"{tag}_batch1", f"{tag}_rest"], [f"{tag}_target"], axis=0),
        ]):
            model.graph.node.insert(index + offset, new)
        node.input[1] = f"{tag}_target"
    return model


def to_hw_and_fold(pattern: str, seed: int = 0):
    """The pattern's network through to_hw (bit-exact, every layer in hardware) and folded on the
    Pynq-Z1: (folded graph, input shape)."""
    net, input_shape = PATTERNS[pattern]()
    hw = assert_exact_through_hw(_randomized(net, seed), input_shape, seed, head_ops=HEAD_OPS_OF.get(pattern, HEAD_OPS),
                                 tail_ops=TAIL_OPS_OF.get(pattern, TAIL_OPS))
    folded, report = fold(hw, BOARD)
    assert report.within_budget()
    return folded, input_shape


def ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def test_max_pool_right_after_a_linear_layer():
    folded, _ = to_hw_and_fold("pool_after_linear")
    assert ops(folded).count("StreamingMaxPool") == 1


def test_xnor_conv_then_pool_then_sign_compares_popcounts():
    folded, _ = to_hw_and_fold("xnor_conv_pool_sign")
    kinds = ops(folded)
    assert kinds.index("StreamingMaxPool") < kinds.index("Thresholding")
    assert {"Mul", "Add"} & set(kinds[: kinds.index("Thresholding")]) == set()


def test_an_xnor_input_channel_with_every_weight_minus_one_is_not_dead():
    """Found by the random networks: the dead-channel pass read the XNOR MVAU's 0/1 weights as values,
    dropped a channel whose weights were all -1 (stored 0), and the outputs moved by up to 2."""
    pointwise = QuantConv2d(3, 3, 1, bias=False, **weight_kwargs(1))
    net = _randomized(nn.Sequential(
        _input_quant(4), QuantConv2d(2, 3, 3, padding=1, bias=False, **weight_kwargs(4)), activation("sign", 1),
        pointwise, activation("relu", 4), nn.Flatten()))
    with torch.no_grad():
        pointwise.weight[:, 1] = -1.0  # input channel 1: -1 in every output
    hw = assert_exact_through_hw(net, (1, 2, 4, 4), tail_ops=TAIL_OPS | {"Transpose", "Flatten"})
    xnor = [getCustomOp(n) for n in hw.graph.node if n.op_type == "MVAU"][-1]
    assert xnor.get_nodeattr("binaryXnorMode") == 1 and xnor.get_nodeattr("MW") == 3


@pytest.mark.parametrize("shape", ["constant", "computed"])
def test_view_flatten_leaves_no_transpose_in_the_region(shape):
    net, input_shape = view_flatten()
    edit = shape_computed_by_graph if shape == "computed" else None
    hw = assert_exact_through_hw(_randomized(net), input_shape, edit=edit)
    assert "Transpose" not in ops(hw)[ops(hw).index("MVAU"):]


def raw_float_input():
    """Bug 7: with no input quantizer the first conv stays in the float head on the host, and
    cppsim crashed ("Multiple ValueInfoProto found") running that head in Python."""
    return nn.Sequential(
        QuantConv2d(2, 4, 3, bias=False, **weight_kwargs(4)), activation("relu", 4), nn.Flatten(),
        QuantLinear(4 * 4 * 4, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 6, 6)


def test_a_first_conv_reading_the_raw_float_input_simulates_in_cpp(tmp_path):
    folded, input_shape = to_hw_and_fold("raw_float_input")
    result = cppsim(folded, seeded_inputs(input_shape, 3, 0, (-1.0, 1.0)), BOARD, tmp_path, native=True)
    assert result.bit_exact, result.mismatch


def batch_norm(kind, channels):
    """A batch-norm with random statistics and some negative gammas."""
    bn = kind(channels)
    with torch.no_grad():
        bn.running_mean.normal_(0, 2)
        bn.running_var.uniform_(1, 4)
        bn.weight.uniform_(0.5, 1.5).mul_(torch.tensor([(-1.0) ** i for i in range(channels)]))
        bn.bias.normal_(0, 0.3)
    return bn


def conv1d():
    """Bug 6: QuantConv1d crashed (streamline assumed 4-D weights); it builds as a height-1 2-D
    network: sliding window with a 1xK kernel, max-pool, MVAU."""
    return nn.Sequential(
        _input_quant(), QuantConv1d(2, 4, 3, padding=1, bias=True, **weight_kwargs(4)), batch_norm(nn.BatchNorm1d, 4),
        activation("relu", 4), nn.MaxPool1d(2), QuantConv1d(4, 3, 3, stride=2, bias=False, **weight_kwargs(4)),
        activation("relu", 3), nn.Flatten(), QuantLinear(3 * 3, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 16)


def depthwise_conv1d():
    """A depthwise QuantConv1d (groups = channels): the VVAU reads its windows from the 2-D sliding window
    in depthwise mode, since the 1-D window has no depthwise word order."""
    return nn.Sequential(
        _input_quant(), QuantConv1d(3, 3, 3, padding=1, groups=3, bias=False, **weight_kwargs(4)),
        activation("relu", 4), nn.Flatten(), QuantLinear(3 * 12, 4, bias=False, **weight_kwargs(4)),
    ), (1, 3, 12)


def bn_negative_gamma_after_pool():
    """Bug 4: a batch-norm with some negative gammas after a max-pool: its scale cannot pass the pool
    and no threshold absorbs a negative scale. The sign becomes an integer +-1 ChannelwiseOp."""
    return nn.Sequential(
        _input_quant(), QuantConv2d(2, 4, 3, bias=False, **weight_kwargs(4)), nn.MaxPool2d(2),
        batch_norm(nn.BatchNorm2d, 4), activation("relu", 4), nn.Flatten(),
        QuantLinear(4 * 2 * 2, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 6, 6)


def test_negative_batch_norm_gamma_after_a_pool_becomes_a_sign_multiply():
    folded, _ = to_hw_and_fold("bn_negative_gamma_after_pool")
    kinds = ops(folded)
    assert kinds[kinds.index("StreamingMaxPool") + 1:][:2] == ["ChannelwiseOp", "Thresholding"]
    (op,) = [n for n in folded.graph.node if n.op_type == "ChannelwiseOp"]
    multipliers = folded.get_initializer(op.input[1])[:, 0]
    assert set(multipliers) == {-1.0, 1.0}  # batch_norm() negates every other channel's gamma


def global_average_pool():
    """AdaptiveAvgPool2d(1) between a quantized activation and the classifier: a GlobalAccPool (sum)
    whose 1/(H*W) scale moves into the float tail."""
    return nn.Sequential(
        _input_quant(), QuantConv2d(2, 4, 3, bias=False, **weight_kwargs(4)), activation("relu", 4),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), QuantLinear(4, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 6, 6)


def test_global_average_pool_becomes_a_sum_pool():
    folded, _ = to_hw_and_fold("global_average_pool")
    assert ops(folded)[ops(folded).index("MVAU"):][:3] == ["MVAU", "GlobalAccPool", "MVAU"]


def average_pool():
    """nn.AvgPool2d(3, stride 2, overlapping) between two quantized activations: an integer window sum
    (SumPool) whose 1/9 goes into the next thresholds."""
    return nn.Sequential(
        _input_quant(), QuantConv2d(2, 4, 3, padding=1, bias=False, **weight_kwargs(4)), activation("hardtanh", 4),
        nn.AvgPool2d(3, stride=2), activation("relu", 3), nn.Flatten(),
        QuantLinear(4 * 3 * 3, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 7, 7)


def trunc_average_pool():
    """Brevitas's TruncAvgPool2d (AveragePool + Trunc): the window sum, and the truncation to 3 bits as
    thresholds on it."""
    return nn.Sequential(
        _input_quant(), QuantConv2d(2, 4, 3, padding=1, bias=False, **weight_kwargs(4)),
        QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=4, return_quant_tensor=True),
        TruncAvgPool2d(2, bit_width=3), nn.Flatten(), QuantLinear(4 * 3 * 3, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 6, 6)


@pytest.mark.parametrize("pattern", ["average_pool", "trunc_average_pool"])
def test_average_pool_between_quantized_layers_becomes_a_window_sum(pattern):
    folded, _ = to_hw_and_fold(pattern)
    kinds = ops(folded)
    assert kinds[kinds.index("SumPool") - 1:][:3] == ["MVAU", "SumPool", "Thresholding"]
    assert "Mul" not in kinds[:kinds.index("MVAU", kinds.index("SumPool"))]


def upsample():
    """nn.Upsample(scale_factor=2, mode='nearest') between quantized layers (an ONNX Resize): the
    activation's scale moves past it and it becomes an UpsampleNearestNeighbour."""
    return nn.Sequential(
        _input_quant(), QuantConv2d(2, 4, 3, padding=1, bias=False, **weight_kwargs(4)), activation("relu", 4),
        nn.Upsample(scale_factor=2), QuantConv2d(4, 2, 3, bias=False, **weight_kwargs(4)), activation("relu", 4),
        nn.Flatten(), QuantLinear(2 * 6 * 6, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 4, 4)


def test_nearest_upsample_repeats_pixels_in_hardware():
    folded, _ = to_hw_and_fold("upsample")
    kinds = ops(folded)
    assert kinds[kinds.index("UpsampleNearestNeighbour") - 1] == "MVAU"
    (node,) = [n for n in folded.graph.node if n.op_type == "UpsampleNearestNeighbour"]
    assert getCustomOp(node).normal_output_shape() == (1, 8, 8, 4)


def transposed_conv():
    """QuantConvTranspose2d (kernel 3, stride 2, padding 1, output_padding 1, with bias, per-channel
    scales): pixel padding (FMPaddingPixel), border padding, sliding window and an MVAU with the
    kernel flipped."""
    return nn.Sequential(
        _input_quant(), QuantConv2d(2, 4, 3, padding=1, bias=False, **weight_kwargs(4)), activation("relu", 4),
        QuantConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, bias=True,
                             weight_quant=PerChannelWeightPow2, weight_bit_width=4),
        activation("relu", 4), nn.Flatten(), QuantLinear(3 * 8 * 8, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 4, 4)


def test_transposed_convolution_is_pixel_padding_then_a_convolution():
    folded, _ = to_hw_and_fold("transposed_conv")
    kinds = ops(folded)
    start = kinds.index("FMPaddingPixel")
    assert [k for k in kinds[start:] if k != "StreamingDataWidthConverter"][:4] == [
        "FMPaddingPixel", "FMPadding", "ConvolutionInputGenerator", "MVAU"]
    (pixel,) = [n for n in folded.graph.node if n.op_type == "FMPaddingPixel"]
    assert list(getCustomOp(pixel).get_nodeattr("Stride")) == [2, 2]


def two_linear_float_channel_scale():
    """Bug 5 (the trailing case): per-channel float weight scales on the first of two linear layers
    with no activation between them: no threshold absorbs the scale, so the last layer runs as a
    float MatMul in the host tail (listed in the to_hw step's notes); the first is an MVAU."""
    return nn.Sequential(
        _input_quant(), nn.Flatten(), QuantLinear(12, 8, bias=True, weight_quant=Int8WeightPerChannelFloat,
                                                  weight_bit_width=4),
        QuantLinear(8, 4, bias=False, weight_quant=Int8WeightPerChannelFloat, weight_bit_width=4),
    ), (1, 3, 2, 2)


def bn_after_last_activation():
    """Bug 5 (the trailing case): a float batch-norm after the last activation has no exact integer form
    in front of the classifier; the classifier runs as a float MatMul in the host tail, the rest in
    hardware."""
    return nn.Sequential(
        _input_quant(), QuantConv2d(2, 4, 3, bias=False, **weight_kwargs(4)), activation("relu", 4),
        batch_norm(nn.BatchNorm2d, 4), nn.Flatten(), QuantLinear(4 * 4 * 4, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 6, 6)


@pytest.mark.parametrize("pattern", ["two_linear_float_channel_scale", "bn_after_last_activation"])
def test_an_unabsorbable_channel_scale_before_the_last_layer_keeps_it_on_the_host(pattern):
    folded, _ = to_hw_and_fold(pattern)
    kinds = ops(folded)
    assert kinds.count("MVAU") == 1 and kinds.index("MVAU") < kinds.index("MatMul")


def test_conv1d_builds_as_height_one_conv2d():
    folded, _ = to_hw_and_fold("conv1d")
    windows = [n for n in folded.graph.node if n.op_type == "ConvolutionInputGenerator1D"]
    assert [list(getCustomOp(n).get_nodeattr("ConvKernelDim")) for n in windows] == [[1, 3], [1, 3]]


def test_depthwise_conv1d_takes_the_two_dimensional_window():
    folded, _ = to_hw_and_fold("depthwise_conv1d")
    windows = [n for n in folded.graph.node if n.op_type.startswith("ConvolutionInputGenerator")]
    assert [(n.op_type, getCustomOp(n).get_nodeattr("depthwise")) for n in windows] == [("ConvolutionInputGenerator", 1)]
    assert ops(folded).count("VVAU") == 1


def bn_after_activation():
    """Bug 5: a batch-norm after the activation (some gammas negative), then a max-pool and a quantizer:
    the sign stays in front of the pool as an integer +-1 multiply (a ChannelwiseOp), the magnitude
    and the offset move past the pool into the quantizer's thresholds."""
    return nn.Sequential(
        _input_quant(), QuantConv2d(2, 4, 3, padding=1, bias=False, **weight_kwargs(4)), activation("relu", 4),
        batch_norm(nn.BatchNorm2d, 4), nn.MaxPool2d(2), activation("identity", 4),
        QuantConv2d(4, 4, 3, padding=1, bias=False, **weight_kwargs(4)), activation("relu", 4), nn.Flatten(),
        QuantLinear(4 * 3 * 3, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 6, 6)


def per_channel_relu(ranges=(1.0, 2.0, 0.5, 4.0)):
    """Bug 5: QuantReLU with learned per-channel scales (powers of two), read by a padded conv: the
    scales become an integer per-channel multiply (a ChannelwiseOp, 2^k) and one scalar that moves into
    the next thresholds. This crashed threshold refinement (a (1, C, 1, 1) scale)."""
    relu = QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=4, scaling_per_output_channel=True,
                     per_channel_broadcastable_shape=(1, 4, 1, 1), scaling_stats_permute_dims=(1, 0, 2, 3))
    # The scales are learned from statistics in the first training steps: channels of different
    # ranges get different scales.
    scaling = relu.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl
    x = torch.rand(8, 4, 3, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor(ranges).reshape(1, 4, 1, 1)
    with torch.no_grad():
        for _ in range(scaling.collect_stats_steps + 1):
            relu(x)
    return nn.Sequential(
        _input_quant(), QuantConv2d(2, 4, 3, padding=1, bias=False, **weight_kwargs(4)), relu,
        QuantConv2d(4, 3, 3, padding=1, bias=False, **weight_kwargs(4)), activation("relu", 4), nn.Flatten(),
        QuantLinear(3 * 6 * 6, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 6, 6)


def test_batch_norm_after_the_activation_keeps_its_sign_before_the_pool():
    folded, _ = to_hw_and_fold("bn_after_activation")
    kinds = ops(folded)
    assert kinds[kinds.index("MVAU") + 1:][:3] == ["ChannelwiseOp", "StreamingMaxPool", "Thresholding"]
    (op,) = [n for n in folded.graph.node if n.op_type == "ChannelwiseOp"]
    assert set(folded.get_initializer(op.input[1])[:, 0]) == {-1.0, 1.0}  # batch_norm() negates every other gamma


def test_per_channel_power_of_two_activation_scales_become_an_integer_multiply():
    folded, _ = to_hw_and_fold("per_channel_relu")
    kinds = [k for k in ops(folded) if k != "StreamingDataWidthConverter"]
    assert kinds[kinds.index("MVAU") + 1:][:3] == ["ChannelwiseOp", "FMPadding", "ConvolutionInputGenerator"]
    (op,) = [n for n in folded.graph.node if n.op_type == "ChannelwiseOp"]
    params = folded.get_initializer(op.input[1])
    assert list(params[:, 0]) == [2.0, 4.0, 1.0, 8.0] and not params[:, 1].any()  # each scale over the smallest


PATTERNS = {f.__name__: f for f in (pool_after_linear, xnor_conv_pool_sign, view_flatten, conv1d, depthwise_conv1d,
                                    raw_float_input,
                                    bn_negative_gamma_after_pool, global_average_pool, bn_after_activation,
                                    per_channel_relu, two_linear_float_channel_scale, bn_after_last_activation,
                                    average_pool, trunc_average_pool, upsample, transposed_conv)}
# What stays on the host besides HEAD_OPS and TAIL_OPS, where a pattern keeps more there.
HEAD_OPS_OF = {"conv1d": {*HEAD_OPS, "Unsqueeze"}, "depthwise_conv1d": {*HEAD_OPS, "Unsqueeze"}, "raw_float_input": {*HEAD_OPS, "Conv", "Mul", "Relu"}}
TAIL_OPS_OF = {"two_linear_float_channel_scale": {*TAIL_OPS, "MatMul"},
               "bn_after_last_activation": {*TAIL_OPS, "MatMul", "Flatten", "Transpose"}}


@pytest.mark.slow
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_pattern_simulates_bit_exact_in_cpp(pattern, tmp_path_factory):
    folded, input_shape = to_hw_and_fold(pattern)
    cache = tmp_path_factory.getbasetemp() / "cppsim-patterns"
    result = cppsim(folded, seeded_inputs(input_shape, 3, 0, (-1.0, 1.0)), BOARD, cache, precompiled_header=True)
    assert result.bit_exact, result.mismatch
