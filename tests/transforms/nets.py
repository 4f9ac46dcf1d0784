"""Hypothesis strategy: small random feed-forward Brevitas networks (not shaped like the zoo)."""

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


@st.composite
def layer_plans(draw):
    """A description of a network: input shape and a list of layers."""
    channels, size = draw(st.integers(1, 3)), draw(st.integers(5, 10))
    plan = {"input": (1, channels, size, size), "in_bits": draw(st.integers(2, 8)), "convs": [], "fcs": []}
    for _ in range(draw(st.integers(0, 2))):
        k = draw(st.integers(1, 3))
        pad = draw(st.integers(0, 1))
        stride = draw(st.integers(1, 2))
        out = (size + 2 * pad - k) // stride + 1
        if out < 1:
            break
        pool = out >= 2 and draw(st.booleans())
        conv = dict(
            out=draw(st.integers(1, 6)), k=k, stride=stride, pad=pad, w=draw(st.integers(1, 8)),
            a=draw(st.integers(1, 8)), act=draw(st.sampled_from(["identity", "relu", "hardtanh"])),
            bn=draw(st.booleans()), pool=pool,
        )
        plan["convs"].append(conv)
        size = out // 2 if pool else out
    for i in range(draw(st.integers(1, 2))):
        plan["fcs"].append(dict(
            out=draw(st.integers(2, 12)), w=draw(st.integers(1, 8)), a=draw(st.integers(1, 8)),
            act=draw(st.sampled_from(["identity", "relu", "hardtanh"])), bn=draw(st.booleans()),
        ))
    plan["seed"] = draw(st.integers(0, 2**16))
    return plan


class PlannedNet(nn.Module):
    def __init__(self, plan):
        super().__init__()
        torch.manual_seed(plan["seed"])
        layers = [QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=plan["in_bits"])]
        channels, size = plan["input"][1], plan["input"][2]
        for c in plan["convs"]:
            layers.append(QuantConv2d(channels, c["out"], c["k"], stride=c["stride"], padding=c["pad"], bias=False, **weight_kwargs(c["w"])))
            if c["bn"]:
                layers.append(nn.BatchNorm2d(c["out"]))
            layers.append(activation(c["act"], c["a"]))
            size = (size + 2 * c["pad"] - c["k"]) // c["stride"] + 1
            if c["pool"]:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            channels = c["out"]
        layers.append(nn.Flatten())
        features = channels * size * size
        for i, f in enumerate(plan["fcs"]):
            last = i == len(plan["fcs"]) - 1
            layers.append(QuantLinear(features, f["out"], bias=False, **weight_kwargs(f["w"])))
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
                elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    fan = 4.0
                    m.running_mean.normal_(0, fan)
                    m.running_var.uniform_(fan, 4 * fan)
                    m.weight.uniform_(0.5, 1.5).mul_(torch.where(torch.rand(m.weight.shape) < 0.2, -1.0, 1.0))
                    m.bias.normal_(0, 0.3)

    def forward(self, x):
        return self.layers(x)
