"""ResNet-8: a small CIFAR-10 residual network (MLPerf Tiny's image-classification topology).

A 3x3 stem convolution to 16 channels, then three residual stages of 16, 32 and 64 channels.
Each stage is two 3x3 convolutions (the first strided by 2 in the later stages) beside a skip:
the identity in the first stage, a strided 1x1 convolution where the shape changes.  Then a
global average pool and a 10-way classifier with a TensorNorm.  32-32-16-8 pixels.

For the integer flow, both inputs of every add are quantized activations with the same
power-of-two scale (each branch ends in batch norm and the activation quantizer), so the
add sums integers exactly; the add is followed by the activation quantizer too.  Every
conv/linear is bias-free, as in CNV.
"""

from brevitas.nn import QuantConv2d
from torch import nn

from .dense import BN_EPS, dense_classifier
from .norms import AffineBatchNorm2d
from .quant import quant_act, quant_input, weight_quant

STAGES = (16, 32, 64)  # channels per residual stage; every stage after the first halves the pixels


def _conv_bn_act(cin, cout, kernel, stride, weight_bits, act_bits):
    return nn.Sequential(
        QuantConv2d(cin, cout, kernel_size=kernel, stride=stride, padding=kernel // 2, bias=False,
                    weight_quant=weight_quant(weight_bits)),
        AffineBatchNorm2d(cout, eps=BN_EPS),
        quant_act(act_bits),
    )


class ResidualStage(nn.Module):
    """act(branch(x) + skip(x)): two 3x3 convolutions beside the identity, or a strided 1x1 convolution
    when the stage changes the channels or the pixels."""

    def __init__(self, cin, cout, stride, weight_bits, act_bits):
        super().__init__()
        self.branch = nn.Sequential(_conv_bn_act(cin, cout, 3, stride, weight_bits, act_bits),
                                    _conv_bn_act(cout, cout, 3, 1, weight_bits, act_bits))
        self.skip = nn.Identity() if stride == 1 and cin == cout else \
            _conv_bn_act(cin, cout, 1, stride, weight_bits, act_bits)
        self.act = quant_act(act_bits)

    def forward(self, x):
        return self.act(self.branch(x) + self.skip(x))


class ResNet(nn.Module):
    """ResNet with `weight_bits`/`act_bits` everywhere and an `in_bits` input quantizer.

    Input: float (N, in_channels, H, W) in [0, 1]; output: (N, num_classes) logits.
    """

    def __init__(self, weight_bits, act_bits, stages=STAGES, in_bits=8, num_classes=10, in_channels=3):
        super().__init__()
        self.weight_bits, self.act_bits, self.in_bits = weight_bits, act_bits, in_bits
        self.input_quant = quant_input(in_bits)
        self.stem = _conv_bn_act(in_channels, stages[0], 3, 1, weight_bits, act_bits)
        layers, channels = [], stages[0]
        for i, width in enumerate(stages):
            layers.append(ResidualStage(channels, width, 1 if i == 0 else 2, weight_bits, act_bits))
            channels = width
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = dense_classifier(channels, (), num_classes, weight_bits, activation=None)

    def forward(self, x):
        x = 2.0 * x - 1.0  # [0, 1] pixels to [-1, 1], the input quantizer's range
        x = self.stages(self.stem(self.input_quant(x)))
        return self.classifier(self.flatten(self.pool(x)))
