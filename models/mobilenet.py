"""MobileNet: a MobileNet-v1-style CIFAR-10 network of depthwise-separable blocks, any bit width.

A 3x3 stem convolution, then blocks of a depthwise 3x3 convolution (groups = channels, padding 1,
stride 1 or 2) and a pointwise 1x1 convolution, each followed by batch norm and a quantized ReLU;
a global average pool and a linear classifier with a TensorNorm.  The default is MobileNet-v1 at
width 0.5 for 32x32 inputs: the stem keeps 32x32 (no stride), and four stride-2 blocks take it
to 2x2 (32-16-8-4-2).  Convolutions are bias-free, so the flow folds each batch norm and
activation into integer thresholds.
"""

from brevitas.nn import QuantConv2d
from torch import nn

from .dense import BN_EPS, dense_classifier
from .norms import AffineBatchNorm2d
from .quant import quant_input, quant_relu, weight_quant

STEM_CHANNELS = 16
# (output channels of the pointwise conv, stride of the depthwise conv): MobileNet-v1's 13 blocks at width 0.5
BLOCKS = ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2),
          (256, 1), (256, 1), (256, 1), (256, 1), (256, 1), (512, 2), (512, 1))


class MobileNet(nn.Module):
    """MobileNet with `weight_bits`/`act_bits` everywhere and an `in_bits` input quantizer.

    Input: float (N, 3, 32, 32) in [0, 1]; output: (N, num_classes) logits.  ``stem`` and ``blocks``
    set the widths (a smaller network for tests).
    """

    def __init__(self, weight_bits, act_bits, in_bits=8, num_classes=10, in_channels=3, stem=STEM_CHANNELS,
                 blocks=BLOCKS):
        super().__init__()
        self.weight_bits, self.act_bits, self.in_bits = weight_bits, act_bits, in_bits
        self.input_quant = quant_input(in_bits)
        layers = self._conv_bn_relu(in_channels, stem, 3, 1, 1, weight_bits, act_bits)
        channels = stem
        for out_channels, stride in blocks:
            layers += self._conv_bn_relu(channels, channels, 3, stride, channels, weight_bits, act_bits)
            layers += self._conv_bn_relu(channels, out_channels, 1, 1, 1, weight_bits, act_bits)
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = dense_classifier(channels, (), num_classes, weight_bits, activation=None)

    @staticmethod
    def _conv_bn_relu(cin, cout, kernel, stride, groups, weight_bits, act_bits):
        return [
            QuantConv2d(cin, cout, kernel_size=kernel, stride=stride, padding=kernel // 2, groups=groups,
                        bias=False, weight_quant=weight_quant(weight_bits)),
            AffineBatchNorm2d(cout, eps=BN_EPS),
            quant_relu(act_bits),
        ]

    def forward(self, x):
        x = 2.0 * x - 1.0  # [0, 1] pixels to [-1, 1], the input quantizer's range
        x = self.input_quant(x)
        x = self.features(x)
        return self.classifier(self.flatten(self.pool(x)))
