"""Small Brevitas networks for the HLS back-end tests (model factories: ``package.module:function``)."""

import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from torch import nn


class BinaryWeightPow2(SignedBinaryWeightPerTensorConst):
    """Binary weights with a power-of-two scale (exact float sums)."""

    scaling_const = 0.25


class BinaryConvBlock(nn.Module):
    """A CNV-style block: 8-bit input, a padded and strided binary 3x3 conv, batch norm, binary activation,
    2x2 max pool, binary classifier."""

    def __init__(self):
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv = QuantConv2d(3, 16, kernel_size=3, padding=1, stride=2, bias=False, weight_quant=BinaryWeightPow2)
        self.bn = nn.BatchNorm2d(16)
        self.act = QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.pool = nn.MaxPool2d(2)
        self.fc = QuantLinear(16 * 4 * 4, 10, bias=False, weight_quant=BinaryWeightPow2)

    def forward(self, x):
        x = self.pool(self.act(self.bn(self.conv(self.inp(x)))))
        return self.fc(x.flatten(1))


def binary_conv_block():
    torch.manual_seed(7)
    net = BinaryConvBlock()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 1.5)
        net.bn.weight.uniform_(0.5, 1.5)
        net.bn.bias.uniform_(-0.5, 0.5)
    return net.eval(), (1, 3, 16, 16), (-1.0, 1.0)
