"""FC: the BNN-PYNQ MNIST multilayer perceptrons (LFC, TFC, ...), any bit width.

LFC is hidden=(1024, 1024, 1024) and TFC is hidden=(64, 64, 64). Each hidden
layer is a bias-free QuantLinear, batch norm and a quantized activation; the
classifier is a bias-free QuantLinear followed by a TensorNorm. In training mode the
quantized input and every hidden activation go through dropout (0.2, as Brevitas's
bnn_pynq FC); in eval mode dropout is the identity, so inference and export are unchanged.
"""

from brevitas.nn import QuantLinear
from torch import nn

from .quant import quant_act, quant_input, weight_quant
from .dropout import BatchDropout
from .norms import AffineBatchNorm1d, TensorNorm

BN_EPS = 1e-4
DROPOUT = 0.2


class FC(nn.Module):
    """A fully connected network with `weight_bits`/`act_bits` everywhere, `in_bits` input.

    Input: float (N, 1, 28, 28) in [0, 1]; output: (N, num_classes) logits. `in_bits=1`
    binarises the input by sign, as BNN-PYNQ's LFC overlays read it.
    """

    def __init__(self, hidden, weight_bits, act_bits, in_bits=8, num_classes=10,
                 in_features=28 * 28, dropout=DROPOUT):
        super().__init__()
        self.hidden = tuple(hidden)
        self.weight_bits, self.act_bits, self.in_bits = weight_bits, act_bits, in_bits
        self.flatten = nn.Flatten()
        # 1 bit: the sign of 2p - 1, i.e. pixel >= 128 is +1 (BNN-PYNQ's own LFC input); else fixed point
        self.input_quant = quant_act(1) if in_bits == 1 else quant_input(in_bits)
        # Modules without state: the state_dict keys stay those of the network without dropout.
        self.dropouts = nn.ModuleList(BatchDropout(dropout) for _ in range(len(self.hidden) + 1))
        features = []
        width = in_features
        for out_features in self.hidden:
            features += [
                QuantLinear(width, out_features, bias=False, weight_quant=weight_quant(weight_bits)),
                AffineBatchNorm1d(out_features, eps=BN_EPS),
                quant_act(act_bits),
            ]
            width = out_features
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(
            QuantLinear(width, num_classes, bias=False, weight_quant=weight_quant(weight_bits)),
            TensorNorm(eps=BN_EPS),
        )

    def forward(self, x):
        x = 2.0 * x - 1.0  # [0, 1] pixels to [-1, 1], the input quantizer's range
        x = self.flatten(x)
        x = self.dropouts[0](self.input_quant(x))
        for i in range(len(self.hidden)):
            x = self.features[3 * i: 3 * i + 3](x)  # linear, batch norm, activation
            x = self.dropouts[i + 1](x)
        return self.classifier(x)
