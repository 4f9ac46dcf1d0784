"""Graphs the flow cannot map fail with one line naming the node and the reason."""

import pytest
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from qonnx.custom_op.registry import getCustomOp
from torch import nn

from qnnflow.base.errors import QnnflowError
from qnnflow.base.execute import execute_batch
from qnnflow.models.export import export_brevitas, export_source, seeded_inputs
from qnnflow.models.quant import act_quant, input_quant, weight_quant
from qnnflow.models.source import parse_model_source
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw


def hw_graph(net, shape):
    return to_hw(streamline(tidy(export_brevitas(net.eval(), shape))))


class SoftmaxInTheMiddle(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = QuantIdentity(act_quant=input_quant(8))
        self.fc1 = QuantLinear(16, 8, bias=False, weight_quant=weight_quant(2))
        self.act1 = QuantIdentity(act_quant=act_quant(2))
        self.act2 = QuantIdentity(act_quant=act_quant(2))
        self.fc2 = QuantLinear(8, 4, bias=False, weight_quant=weight_quant(2))

    def forward(self, x):
        return self.fc2(self.act2(torch.softmax(self.act1(self.fc1(self.inp(x))), dim=-1)))


def conv_net(**conv_kwargs):
    return nn.Sequential(
        QuantIdentity(act_quant=input_quant(8)),
        QuantConv2d(4, 4, 3, bias=False, weight_quant=weight_quant(2), **conv_kwargs),
        QuantIdentity(act_quant=act_quant(2)),
        nn.Flatten(),
        QuantLinear(4 * 4 * 4 if conv_kwargs.get("dilation") != 2 else 4 * 2 * 2, 3, bias=False, weight_quant=weight_quant(2)),
    )


def test_softmax_between_layers_is_named():
    with pytest.raises(QnnflowError) as info:
        hw_graph(SoftmaxInTheMiddle(), (1, 16))
    message = str(info.value)
    assert message.startswith("node 'Softmax_0' (Softmax) sits between quantized layers")
    assert "no dataflow node for Softmax" in message and "\n" not in message


@pytest.mark.parametrize(
    "kwargs, expected",
    [({"dilation": 2}, r"dilation \[2, 2\] is not supported"), ({"groups": 2}, r"grouped convolution \(group=2,")],
)
def test_unsupported_convolutions_are_named(kwargs, expected):
    with pytest.raises(QnnflowError, match=r"node 'Conv_0' \(Conv\): " + expected):
        hw_graph(conv_net(**kwargs), (1, 4, 6, 6))


def test_simd_not_dividing_mw_is_an_error_not_a_wrong_result():
    model, golden = export_source(parse_model_source("tfc_w1a1"), "random", 2, 0)
    hw, _ = to_hw(streamline(tidy(model)))
    mvau = next(n for n in hw.graph.node if n.op_type == "MVAU")
    getCustomOp(mvau).set_nodeattr("SIMD", 5)
    with pytest.raises(QnnflowError, match=rf"node '{mvau.name}': SIMD=5 does not divide MW=784"):
        execute_batch(hw, golden.input)


def test_seeded_inputs_cover_the_range():
    x = seeded_inputs((1, 4), 100, 0, (-1.0, 1.0))
    assert x.min() < -0.9 and x.max() > 0.9


class LayerBetweenLayers(nn.Module):
    """conv -> activation -> ``layer`` -> linear, on a 6x6 input with 2 channels."""

    def __init__(self, layer: nn.Module, features: int, relu: bool):
        super().__init__()
        self.inp = QuantIdentity(act_quant=input_quant(8))
        self.conv = QuantConv2d(2, 3, 1, bias=False, weight_quant=weight_quant(2))
        self.act = QuantReLU(bit_width=3) if relu else QuantIdentity(act_quant=act_quant(2))
        self.layer = layer
        self.fc = QuantLinear(features, 4, bias=False, weight_quant=weight_quant(2))

    def forward(self, x):
        return self.fc(self.layer(self.act(self.conv(self.inp(x)))).flatten(1))


@pytest.mark.parametrize("layer, features, node", [(nn.ZeroPad2d((1, 0, 2, 0)), 3 * 8 * 7, "Pad_0 (Pad)"),
                                                   (nn.AvgPool2d(2), 3 * 3 * 3, "AveragePool_0 (AveragePool)")])
@pytest.mark.parametrize("relu", [False, True])  # with a ReLU's scale in front, the layer also blocks its absorption
def test_a_layer_without_a_dataflow_node_between_layers_is_named(layer, features, node, relu):
    name, op = node.split()
    with pytest.raises(QnnflowError) as info:
        hw_graph(LayerBetweenLayers(layer, features, relu), (1, 2, 6, 6))
    message = str(info.value)
    assert message.startswith(f"node '{name}' {op} ") and f"no dataflow node for {op[1:-1]}" in message, message
    assert "\n" not in message


class ChannelGainBeforeLinear(nn.Module):
    """A per-channel float gain between an activation and a linear layer inside the network (before the
    last layer it would leave that layer on the host): no threshold can absorb it."""

    def __init__(self):
        super().__init__()
        self.inp = QuantIdentity(act_quant=input_quant(8))
        self.fc1 = QuantLinear(16, 8, bias=False, weight_quant=weight_quant(2))
        self.act1 = QuantIdentity(act_quant=act_quant(2))
        self.fc2 = QuantLinear(8, 4, bias=False, weight_quant=weight_quant(2))
        self.act2 = QuantIdentity(act_quant=act_quant(2))
        self.fc3 = QuantLinear(4, 4, bias=False, weight_quant=weight_quant(2))
        self.register_buffer("gain", torch.linspace(0.5, 2.0, 8))

    def forward(self, x):
        return self.fc3(self.act2(self.fc2(self.act1(self.fc1(self.inp(x))) * self.gain)))


def test_a_scale_that_cannot_be_absorbed_is_named_as_such():
    with pytest.raises(QnnflowError) as info:
        hw_graph(ChannelGainBeforeLinear(), (1, 16))
    message = str(info.value)
    assert message.startswith("node 'Mul_") and "(Mul): a float scale in front of 'MatMul_" in message, message
    assert "could not be absorbed into thresholds" in message and "\n" not in message
