"""A layer with no hardware form inside the network is refused by name, in one line, with what to
change (issue 13): not as a leftover scale next to it, nor as an Im2Col that lowering built."""

from __future__ import annotations

import pytest
import torch
from brevitas.nn import QuantConv2d, QuantConvTranspose2d, QuantLinear, QuantReLU, TruncAvgPool2d
from brevitas.quant import Uint8ActPerTensorFixedPoint, Uint8ActPerTensorFloat
from torch import nn

from qnnflow.base.errors import QnnflowError
from qnnflow.models.export import export_brevitas
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw

from .nets import activation, weight_kwargs
from .test_generality import _input_quant, _randomized
from .test_generality_patterns import batch_norm


def conv(cin, cout, k=3, **kwargs):
    return QuantConv2d(cin, cout, k, bias=False, **kwargs, **weight_kwargs(4))


def around(*middle, features, act=None):
    """Input quantizer, a 4-channel conv and activation (``act``, default a ReLU), ``middle``, then a
    quantized classifier."""
    return nn.Sequential(_input_quant(), conv(2, 4, padding=1), act or activation("relu", 4), *middle, nn.Flatten(),
                         QuantLinear(features, 4, bias=False, **weight_kwargs(4)))


def float_per_channel_relu():
    """Brevitas's default QuantReLU with per-channel scales, learned (from statistics) to differ."""
    relu = QuantReLU(bit_width=4, scaling_per_output_channel=True, per_channel_broadcastable_shape=(1, 4, 1, 1),
                     scaling_stats_permute_dims=(1, 0, 2, 3))
    x = torch.rand(8, 4, 3, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 1.7, 0.6, 3.1]).reshape(1, 4, 1, 1)
    with torch.no_grad():
        for _ in range(relu.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl.collect_stats_steps + 1):
            relu(x)
    return relu


class TwoBranches(nn.Module):
    """conv -> conv, joined with the first conv's output by an add (residual) or a concat; ``float_scale``
    gives the second activation a float scale (1/15), which no integer ratio lines up with the first's 1/16."""

    def __init__(self, join, float_scale=False):
        super().__init__()
        self.join = join
        self.inp, self.conv1, self.act1 = _input_quant(), conv(2, 4, padding=1), activation("relu", 4)
        self.conv2 = conv(4, 4, padding=1)
        self.act2 = QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=4, max_val=3.0) if float_scale else \
            activation("relu", 4)
        self.fc = QuantLinear((8 if join == "concat" else 4) * 16, 4, bias=False, **weight_kwargs(4))

    def forward(self, x):
        y = self.act1(self.conv1(self.inp(x)))
        z = self.act2(self.conv2(y))
        return self.fc((torch.cat([y, z], 1) if self.join == "concat" else y + z).flatten(1))


CASES = {  # name: (network on a (1, 2, 4, 4) input, the node named, a word of the fix)
    # an average pool whose output meets no quantizer before the classifier (one that does builds: patterns)
    "float-average-pool": (lambda: around(nn.AvgPool2d(2), features=16), "AveragePool_0", "MaxPool"),
    # a nearest upsample by an integer factor builds (patterns); a bilinear one has no hardware form
    "bilinear-upsample": (lambda: around(nn.Upsample(scale_factor=2, mode="bilinear"), conv(4, 2), activation("relu", 4),
                                         features=72), "Resize_0", "mode='nearest'"),
    "softmax-inside": (lambda: around(nn.Softmax(dim=1), activation("relu", 4), features=64), "Softmax_0",
                       "after the last layer"),
    "float-conv": (lambda: around(nn.Conv2d(4, 4, 3, padding=1, bias=False), activation("relu", 4), features=64),
                   "Conv_1", "quantize"),
    # per-channel float scales with no exact integer form (issue 13, bug 5)
    "batch-norm-after-activation": (lambda: around(batch_norm(nn.BatchNorm2d, 4), conv(4, 4, padding=1),
                                                   activation("relu", 4), features=64), "Mul_0", "QuantIdentity"),
    "batch-norm-after-input-quantizer": (lambda: nn.Sequential(
        _input_quant(), batch_norm(nn.BatchNorm2d, 2), conv(2, 4, padding=1), activation("relu", 4), nn.Flatten(),
        QuantLinear(64, 4, bias=False, **weight_kwargs(4))), "Mul_0", "before the activation (or the input quantizer)"),
    "per-channel-float-activation-scales": (lambda: around(conv(4, 4, padding=1), activation("relu", 4), features=64,
                                                           act=float_per_channel_relu()), "Mul_0", "power-of-two"),
    "residual-add-float-scales": (lambda: TwoBranches("add", float_scale=True), "Add_0", "power-of-two scales"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_layer_with_no_hardware_form_is_named(case):
    make, node, fix = CASES[case]
    model = streamline(tidy(export_brevitas(_randomized(make()).eval(), (1, 2, 4, 4))))
    with pytest.raises(QnnflowError) as err:
        to_hw(model)
    message = str(err.value)
    op_type = next(n.op_type for n in model.graph.node if n.name == node)
    assert message.startswith(f"node '{node}' ({op_type})") and fix in message and "\n" not in message


def test_a_truncating_average_pool_it_cannot_reproduce_is_named():
    """TruncAvgPool2d(3): its Trunc's scale is 1/9 of the input's, which no power-of-two shift of the
    integer window sum reproduces exactly in the float graph: refused by name while streamlining."""
    net = nn.Sequential(_input_quant(), conv(2, 4, padding=1),
                        QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=4, return_quant_tensor=True),
                        TruncAvgPool2d(3, bit_width=4), nn.Flatten(), QuantLinear(4, 4, bias=False, **weight_kwargs(4)))
    with pytest.raises(QnnflowError) as err:
        streamline(tidy(export_brevitas(_randomized(net).eval(), (1, 2, 3, 3))))
    assert str(err.value).startswith("node 'Trunc_0' (Trunc)") and "2x2" in str(err.value)


def test_a_grouped_transposed_convolution_is_named():
    """An ungrouped transposed convolution builds (patterns); a grouped one has no hardware form yet."""
    net = around(QuantConvTranspose2d(4, 4, 2, stride=2, groups=2, bias=False, **weight_kwargs(4)),
                 activation("relu", 4), features=256)
    with pytest.raises(QnnflowError) as err:
        streamline(tidy(export_brevitas(_randomized(net).eval(), (1, 2, 4, 4))))
    assert str(err.value).startswith("node 'ConvTranspose_0' (ConvTranspose)") and "groups=1" in str(err.value)


def test_a_residual_add_with_float_scales_names_both_scales():
    model = streamline(tidy(export_brevitas(_randomized(TwoBranches("add", float_scale=True)).eval(), (1, 2, 4, 4))))
    with pytest.raises(QnnflowError, match=r"^node 'Add_0' \(Add\).*: scale 0\.0625 from 'Mul_\d+' and scale 0\.0666667 from 'Mul_\d+'"):
        to_hw(model)


@pytest.mark.parametrize("join, kind", [("add", "AddStreams"), ("concat", "StreamingConcat")])
def test_a_residual_add_and_a_concat_build(join, kind):
    """The two cases this file used to refuse: they become hardware (tests/hls/backend/test_residual.py
    simulates them)."""
    model = streamline(tidy(export_brevitas(_randomized(TwoBranches(join)).eval(), (1, 2, 4, 4))))
    hw, partition = to_hw(model)
    kinds = {n.op_type for n in hw.graph.node if n.name in partition.hardware}
    assert {"DuplicateStreams", kind} <= kinds
