"""CNV: the BNN-PYNQ CIFAR-10 convolutional network, any weight/activation bit width.

Six unpadded 3x3 convolutions (64, 64, pool, 128, 128, pool, 256, 256) take a
32x32 image down to 1x1: 32-30-28-14-12-10-5-3-1. Two 512-wide fully connected
layers and a 10-way classifier with a TensorNorm follow. Every conv/linear is
bias-free and followed by batch norm and a quantized activation, so the flow
can fold each BN + activation pair into integer thresholds.
"""

from brevitas.nn import QuantConv2d
from torch import nn

from .quant import quant_act, quant_input, weight_quant
from .dense import BN_EPS, dense_classifier
from .norms import AffineBatchNorm2d

# (out_channels, max-pool after this layer's activation)
CONV_LAYERS = ((64, False), (64, True), (128, False), (128, True), (256, False), (256, False))
FC_LAYERS = (512, 512)


class CNV(nn.Module):
    """CNV with `weight_bits`/`act_bits` everywhere and an `in_bits` input quantizer.

    Input: float (N, 3, 32, 32) in [0, 1]; output: (N, num_classes) logits.
    """

    def __init__(self, weight_bits, act_bits, in_bits=8, num_classes=10, in_channels=3):
        super().__init__()
        self.weight_bits, self.act_bits, self.in_bits = weight_bits, act_bits, in_bits
        self.input_quant = quant_input(in_bits)
        features = []
        channels = in_channels
        for out_channels, pool in CONV_LAYERS:
            features += [
                QuantConv2d(channels, out_channels, kernel_size=3, stride=1, padding=0,
                            bias=False, weight_quant=weight_quant(weight_bits)),
                AffineBatchNorm2d(out_channels, eps=BN_EPS),
                quant_act(act_bits),
            ]
            if pool:
                features.append(nn.MaxPool2d(kernel_size=2))
            channels = out_channels
        self.features = nn.Sequential(*features)
        self.flatten = nn.Flatten()
        # the last conv leaves 1x1 spatial
        self.classifier = dense_classifier(channels, FC_LAYERS, num_classes, weight_bits, lambda: quant_act(act_bits))

    def forward(self, x):
        x = 2.0 * x - 1.0  # [0, 1] pixels to [-1, 1], the input quantizer's range
        x = self.input_quant(x)
        x = self.features(x)
        x = self.flatten(x)
        return self.classifier(x)
