"""Small models for the pruning tests, referenced from test builds as ``tests.transforms.prune_nets:<function>``.

SmallCNV has CNV's layer kinds at a fraction of its size: unpadded 3x3 convolutions with batch
norm and quantized activations, a max-pool, convolutions down to 1x1 pixels, then fully
connected layers; 14x14 images.
"""

from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from torch import nn

from qnnflow.models.norms import AffineBatchNorm1d, AffineBatchNorm2d, TensorNorm
from qnnflow.models.quant import quant_act, quant_input, weight_quant
from qnnflow.models.zoo import randomize

SHAPE = (1, 3, 14, 14)  # 14-12-10-pool 5-3-1


class SmallCNV(nn.Module):
    def __init__(self, weight_bits, act_bits):
        super().__init__()
        layers = [quant_input(8)]
        channels = 3
        for out_channels, pool in ((16, False), (16, True), (32, False), (32, False)):
            layers += [QuantConv2d(channels, out_channels, 3, bias=False, weight_quant=weight_quant(weight_bits)),
                       AffineBatchNorm2d(out_channels, eps=1e-4), quant_act(act_bits)]
            layers += [nn.MaxPool2d(2)] if pool else []
            channels = out_channels
        layers += [nn.Flatten(), QuantLinear(32, 32, bias=False, weight_quant=weight_quant(weight_bits)),
                   AffineBatchNorm1d(32, eps=1e-4), quant_act(act_bits),
                   QuantLinear(32, 10, bias=False, weight_quant=weight_quant(weight_bits)), TensorNorm(eps=1e-4)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(2.0 * x - 1.0)


def _small_cnv(weight_bits, act_bits):
    net = SmallCNV(weight_bits, act_bits)
    randomize(net, seed=1, input_shape=SHAPE)
    return net.eval(), SHAPE, (0.0, 1.0)


def small_cnv_w1a1():
    return _small_cnv(1, 1)


def small_cnv_w2a2():
    return _small_cnv(2, 2)


def input_layer_only():
    """A fully connected layer on the network's input: nothing to prune."""
    net = nn.Sequential(QuantIdentity(bit_width=8, return_quant_tensor=True),
                        QuantLinear(16, 4, bias=False, weight_bit_width=4))
    return net.eval(), (1, 16), (-1.0, 1.0)
