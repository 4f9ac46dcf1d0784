"""VGG10-1D: the RadioML 2018 modulation classifier, a 1-D CNN on frames of I/Q samples.

The topology finn-examples builds (build/vgg10/README.md: seven 1-D convolution + max-pool
stages, two hidden dense layers, a 24-class dense classifier, on a frame of 1024 I/Q samples;
its ZCU104 folding gives the first MVAU SIMD 6 = 3 taps x 2 channels): each stage is a
bias-free QuantConv1d (kernel 3, padding 1), batch norm, QuantReLU and MaxPool1d(2), so 1024
samples shrink to 1024 / 2^7 = 8; then QuantLinear 128, 128 (each with batch norm and
QuantReLU) and the 24-way classifier with a TensorNorm.  Weights and activations use the zoo's
constant power-of-two quantizers (models/quant.py) and the input an 8-bit quantizer.
"""

from brevitas.nn import QuantConv1d
from torch import nn

from .dense import BN_EPS, dense_classifier
from .norms import AffineBatchNorm1d
from .quant import quant_input, quant_relu, weight_quant


class VGG10_1D(nn.Module):
    """VGG10-1D with `weight_bits`/`act_bits` everywhere and an `in_bits` input quantizer.

    Input: float (N, in_channels, length) I/Q samples in [-1, 1]; output: (N, num_classes) logits.
    `stages`, `channels` and `length` shrink it for tests (length must be divisible by 2^stages).
    """

    def __init__(self, weight_bits, act_bits, in_bits=8, stages=7, channels=64, dense=(128, 128),
                 num_classes=24, in_channels=2, length=1024):
        super().__init__()
        if length % 2**stages:
            raise ValueError(f"length {length} is not divisible by 2^{stages}: every stage halves it")
        self.input_quant = quant_input(in_bits)
        features, width = [], in_channels
        for _ in range(stages):
            features += [
                QuantConv1d(width, channels, kernel_size=3, padding=1, bias=False,
                            weight_quant=weight_quant(weight_bits)),
                AffineBatchNorm1d(channels, eps=BN_EPS),
                quant_relu(act_bits),
                nn.MaxPool1d(2),
            ]
            width = channels
        self.features = nn.Sequential(*features)
        self.flatten = nn.Flatten()
        self.classifier = dense_classifier(channels * (length >> stages), dense, num_classes, weight_bits,
                                           lambda: quant_relu(act_bits))

    def forward(self, x):
        x = self.input_quant(x)
        x = self.features(x)
        return self.classifier(self.flatten(x))
