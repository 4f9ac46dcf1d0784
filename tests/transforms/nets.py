"""Hypothesis strategy: small random feed-forward Brevitas networks (not shaped like the zoo).

A plan is a plain dict (hypothesis prints it on failure). Every geometry is drawn from
ranges that are valid for the current feature-map size, so no example is thrown away:

- input: 1-3 channels, non-square images (height and width drawn separately);
- 0-3 convolutions: kernel 1-5 and stride 1-3 per axis (non-square allowed), padding 0-2 per
  axis, or ``"same"`` (stride 1; an even kernel pads bottom/right one more than top/left),
  optional bias, optional batch-norm;
- max-pool (optional, unpadded, floor mode): kernel 2-3 and stride 1-3 per axis, after
  the activation or between the convolution (batch-norm) and the activation;
- 1-3 linear layers with optional bias (batch-norm and activation between them);
- ReLU / HardTanh / identity activations, 1-8 bit weights and activations.
"""

import torch
from brevitas.nn import QuantConv2d, QuantHardTanh, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerTensorFixedPoint,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFixedPoint,
)
from hypothesis import strategies as st
from torch import nn

ACTIVATIONS = ["identity", "relu", "hardtanh"]


class BinaryWeightPow2(SignedBinaryWeightPerTensorConst):
    """Brevitas's binary weights with a power-of-two scale (its default 0.1 makes float sums inexact)."""

    scaling_const = 0.25


def weight_kwargs(bits):
    if bits == 1:
        return dict(weight_quant=BinaryWeightPow2)
    return dict(weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=bits)


def activation(kind, bits):
    if bits == 1:
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
    if kind == "relu":
        return QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=bits)
    if kind == "hardtanh":
        return QuantHardTanh(act_quant=Int8ActPerTensorFixedPoint, bit_width=bits, min_val=-1.0, max_val=1.0)
    return QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=bits)


def conv_out(size, conv):
    """(h, w) after a planned convolution."""
    if conv["pad"] == "same":
        return size
    return tuple((n + 2 * p - k) // s + 1 for n, p, k, s in zip(size, conv["pad"], conv["k"], conv["stride"]))


def pool_out(size, pool):
    return tuple((n - k) // s + 1 for n, k, s in zip(size, pool["k"], pool["stride"]))


@st.composite
def _conv(draw, size):
    """A convolution valid on a ``size`` (h, w) feature map."""
    stride = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in size)
    if stride == (1, 1) and draw(st.integers(0, 2)) == 0:
        pad = "same"
        k = tuple(draw(st.integers(1, 5)) for _ in size)
    else:
        pad = tuple(draw(st.integers(0, 2)) for _ in size)
        k = tuple(draw(st.integers(1, min(5, n + 2 * p))) for n, p in zip(size, pad))
    return dict(k=k, stride=stride, pad=pad, bias=draw(st.booleans()))


@st.composite
def _pool(draw, size):
    """A max-pool valid on ``size`` (h, w), or None when the map is too small (or by chance)."""
    if min(size) < 2 or not draw(st.booleans()):
        return None
    k = tuple(draw(st.integers(2, min(3, n))) for n in size)
    stride = tuple(draw(st.integers(1, 3)) for _ in size)
    return dict(k=k, stride=stride, before_act=draw(st.integers(0, 3)) == 0)


@st.composite
def layer_plans(draw):
    """A description of a network: input shape and a list of layers."""
    channels = draw(st.integers(1, 3))
    size = (draw(st.integers(4, 11)), draw(st.integers(4, 11)))
    plan = {"input": (1, channels, *size), "in_bits": draw(st.integers(2, 8)), "convs": [], "fcs": []}
    for _ in range(draw(st.integers(0, 3))):
        conv = draw(_conv(size))
        size = conv_out(size, conv)
        conv.update(
            out=draw(st.integers(1, 6)), w=draw(st.integers(1, 8)), a=draw(st.integers(1, 8)),
            act=draw(st.sampled_from(ACTIVATIONS)), bn=draw(st.booleans()), pool=draw(_pool(size)),
        )
        if conv["pool"] is not None:
            size = pool_out(size, conv["pool"])
        plan["convs"].append(conv)
    for _ in range(draw(st.integers(1, 3))):
        plan["fcs"].append(dict(
            out=draw(st.integers(2, 12)), w=draw(st.integers(1, 8)), a=draw(st.integers(1, 8)),
            act=draw(st.sampled_from(ACTIVATIONS)), bn=draw(st.booleans()), bias=draw(st.booleans()),
        ))
    plan["seed"] = draw(st.integers(0, 2**16))
    return plan


class PlannedNet(nn.Module):
    def __init__(self, plan):
        super().__init__()
        torch.manual_seed(plan["seed"])
        layers = [QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=plan["in_bits"])]
        channels, size = plan["input"][1], tuple(plan["input"][2:])
        for c in plan["convs"]:
            layers.append(QuantConv2d(
                channels, c["out"], c["k"], stride=c["stride"], padding=c["pad"], bias=c["bias"],
                **weight_kwargs(c["w"]),
            ))
            if c["bn"]:
                layers.append(nn.BatchNorm2d(c["out"]))
            size = conv_out(size, c)
            pool = c["pool"]
            if pool is not None and pool["before_act"]:
                layers.append(nn.MaxPool2d(pool["k"], pool["stride"]))
            layers.append(activation(c["act"], c["a"]))
            if pool is not None and not pool["before_act"]:
                layers.append(nn.MaxPool2d(pool["k"], pool["stride"]))
            if pool is not None:
                size = pool_out(size, pool)
            channels = c["out"]
        layers.append(nn.Flatten())
        features = channels * size[0] * size[1]
        for i, f in enumerate(plan["fcs"]):
            last = i == len(plan["fcs"]) - 1
            layers.append(QuantLinear(features, f["out"], bias=f["bias"], **weight_kwargs(f["w"])))
            if not last:
                if f["bn"]:
                    layers.append(nn.BatchNorm1d(f["out"]))
                layers.append(activation(f["act"], f["a"]))
            features = f["out"]
        self.layers = nn.Sequential(*layers)
        self._randomize()

    def _randomize(self):
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    m.weight.uniform_(-1, 1)
                    if m.bias is not None:
                        m.bias.uniform_(-2, 2)
                elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    fan = 4.0
                    m.running_mean.normal_(0, fan)
                    m.running_var.uniform_(fan, 4 * fan)
                    m.weight.uniform_(0.5, 1.5).mul_(torch.where(torch.rand(m.weight.shape) < 0.2, -1.0, 1.0))
                    m.bias.normal_(0, 0.3)

    def forward(self, x):
        return self.layers(x)
