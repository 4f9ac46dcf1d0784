"""The classifier the zoo's convolutional networks end in: dense layers with batch norm and an
activation, then a dense layer to the classes with a TensorNorm."""

from brevitas.nn import QuantLinear
from torch import nn

from .norms import AffineBatchNorm1d, TensorNorm
from .quant import weight_quant

BN_EPS = 1e-4


def dense_classifier(width, hidden, num_classes, weight_bits, activation):
    """nn.Sequential of, per entry of ``hidden``, a bias-free QuantLinear, AffineBatchNorm1d and
    ``activation()``; then a QuantLinear to ``num_classes`` and a TensorNorm."""
    layers = []
    for out_features in hidden:
        layers += [QuantLinear(width, out_features, bias=False, weight_quant=weight_quant(weight_bits)),
                   AffineBatchNorm1d(out_features, eps=BN_EPS), activation()]
        width = out_features
    layers += [QuantLinear(width, num_classes, bias=False, weight_quant=weight_quant(weight_bits)),
               TensorNorm(eps=BN_EPS)]
    return nn.Sequential(*layers)
