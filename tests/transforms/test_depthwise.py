"""Depthwise-separable convolutions (a QuantConv2d with groups = channels, then a pointwise conv) build:
export -> streamline -> to_hw bit-exact against PyTorch, the depthwise layer a sliding window in
depthwise mode + VVAU, folded and simulated in C++ bit-exact at several foldings; other grouped
convolutions are refused naming the node."""

from __future__ import annotations

import pytest
import torch
from brevitas.nn import QuantConv2d, QuantLinear
from qonnx.custom_op.registry import getCustomOp
from torch import nn

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.boards import load_board
from qnnflow.hls.cppsim import cppsim
from qnnflow.models.export import export_brevitas, seeded_inputs
from qnnflow.transforms.fold import fold
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw

from .nets import activation, weight_kwargs
from .test_generality import _input_quant, _randomized, assert_exact_through_hw

BOARD = load_board("pynq-z1")
INPUT = (1, 3, 8, 8)


def separable(padding: int = 1, stride: int = 1, bn: bool = True) -> nn.Sequential:
    """A stem conv, a depthwise 3x3 (groups = 4 channels) with batch norm, a pointwise 1x1, a classifier."""
    layers = [_input_quant(), QuantConv2d(3, 4, 3, bias=False, **weight_kwargs(4)), activation("relu", 4),
              QuantConv2d(4, 4, 3, groups=4, padding=padding, stride=stride, bias=False, **weight_kwargs(4))]
    layers += [nn.BatchNorm2d(4)] if bn else []
    layers += [activation("relu", 4), QuantConv2d(4, 6, 1, bias=False, **weight_kwargs(4)), activation("relu", 4),
               nn.Flatten()]
    net = nn.Sequential(*layers)
    with torch.no_grad():
        features = net.eval()(torch.zeros(INPUT)).shape[1]
    return _randomized(nn.Sequential(*net, QuantLinear(features, 5, bias=False, **weight_kwargs(4))))


def kinds(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("padding,stride,bn", [(1, 1, True), (0, 2, False)])
def test_depthwise_conv_becomes_a_depthwise_window_and_a_vvau(padding, stride, bn):
    net = separable(padding, stride, bn)
    if bn:  # batch-norm statistics that move the thresholds off zero
        with torch.no_grad():
            net[4].running_mean.uniform_(-0.5, 0.5)
            net[4].running_var.uniform_(0.5, 1.5)
    hw = assert_exact_through_hw(net, INPUT)
    ops = kinds(hw)
    vvau = ops.index("VVAU")
    window = getCustomOp(hw.graph.node[vvau - 1])
    assert ops[vvau - 1] == "ConvolutionInputGenerator" and window.get_nodeattr("depthwise") == 1
    assert ops.count("MVAU") == 3  # stem, pointwise and classifier
    assert getCustomOp(hw.graph.node[vvau]).has_activation()


FOLDINGS = {  # VVAU folding -> the depthwise window's SIMD
    "fold-1": ({"PE": 1, "SIMD": 1}, 1),
    "positions": ({"PE": 1, "SIMD": 3}, 2),
    "whole-windows": ({"PE": 4, "SIMD": 9}, 4),
}


@pytest.mark.parametrize("name", ["positions", *(pytest.param(n, marks=pytest.mark.slow)
                                                   for n in ("fold-1", "whole-windows"))])
def test_separable_network_simulates_bit_exact_in_cpp(name, tmp_path_factory):
    hw, _ = to_hw(streamline(tidy(export_brevitas(separable().eval(), INPUT))))
    vvau_folding, window_simd = FOLDINGS[name]
    vvau = next(n for n in hw.graph.node if n.op_type == "VVAU")
    window = hw.graph.node[list(hw.graph.node).index(vvau) - 1]
    folded, report = fold(hw, BOARD, folding={vvau.name: {**vvau_folding, "resType": "lut"},
                                              window.name: {"SIMD": window_simd}})
    assert report.within_budget()
    result = cppsim(folded, seeded_inputs(INPUT, 3, 0, (-1.0, 1.0)), BOARD,
                    tmp_path_factory.getbasetemp() / "cppsim-depthwise")
    assert result.bit_exact and not result.native, result.message()


def test_fold_searches_the_vvau_folding():
    hw, _ = to_hw(streamline(tidy(export_brevitas(separable().eval(), INPUT))))
    folded, report = fold(hw, BOARD)
    vvau = getCustomOp(next(n for n in folded.graph.node if n.op_type == "VVAU"))
    assert report.within_budget() and vvau.get_nodeattr("PE") * vvau.get_nodeattr("SIMD") > 1
    assert report.folding[vvau.onnx_node.name] == {a: vvau.get_nodeattr(a) for a in ("PE", "SIMD", "ram_style",
                                                                                   "resType")}


@pytest.mark.parametrize("groups,out", [(2, 4), (4, 8)], ids=["partial-groups", "channel-multiplier"])
def test_other_grouped_convolutions_are_refused_naming_the_node(groups, out):
    net = nn.Sequential(_input_quant(), QuantConv2d(4, out, 3, groups=groups, bias=False, **weight_kwargs(4)),
                        activation("relu", 4), nn.Flatten(), QuantLinear(out * 4, 3, bias=False, **weight_kwargs(4)))
    with pytest.raises(QnnflowError) as err:
        to_hw(streamline(tidy(export_brevitas(net.eval(), (1, 4, 4, 4)))))
    message = str(err.value)
    assert "'Conv_0'" in message and f"group={groups}" in message and "depthwise" in message and "\n" not in message
