"""Hypothesis strategy: small random feed-forward Brevitas networks (not shaped like the zoo).

A plan is a plain dict (hypothesis prints it on failure): the input, a list of feature blocks, how
the features reach the classifier, 1-3 linear layers and a seed. Every geometry is drawn from
ranges that are valid for the current feature-map size, so no example is thrown away:

- input: 2-D (N, C, H, W) with non-square images, or 1-D (N, C, L) (then every block is Conv1d,
  BatchNorm1d, MaxPool1d); 1-3 channels; 2-8 bit input quantizer;
- 0-3 blocks, each a kind from ``BLOCKS`` (below);
- the readout: a flatten, or a global average pool when the last block's activation has 2 or more
  bits and the map's area is a power of two (1/area is then exact in float32; other areas are exact
  in real arithmetic only, not always against the float32 reference);
- 1-3 linear layers with optional bias (batch-norm and activation between them);
- ReLU / HardTanh / identity activations, 1-8 bit weights and activations.

A block kind is a ``BlockKind``: a strategy drawing its parameters for the current map (channels,
spatial size) and a builder of its layers. Adding a kind (residual, depthwise, upsample, ...) is
one function pair and one entry in ``BLOCKS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from brevitas.nn import QuantConv1d, QuantConv2d, QuantHardTanh, QuantIdentity, QuantLinear, QuantReLU
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


def per_channel_relu(bits, log2_ranges, spatial_axes=2):
    """QuantReLU with a power-of-two scale per channel, as its statistics after training set them
    (channel c's range 2^log2_ranges[c])."""
    shape = (1, len(log2_ranges), *([1] * spatial_axes))
    relu = QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=bits, scaling_per_output_channel=True,
                     per_channel_broadcastable_shape=shape, scaling_stats_permute_dims=(1, 0, *range(2, len(shape))))
    scaling = relu.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl
    with torch.no_grad():
        scaling.buffer.copy_(torch.tensor([2.0**r for r in log2_ranges]).reshape(shape))
    return relu


def _layer(size, two_d, one_d):
    """The 1-D or the 2-D layer class, for a map of spatial ``size``."""
    return one_d if len(size) == 1 else two_d


def conv_out(size, conv):
    """Spatial size after a planned convolution."""
    if conv["pad"] == "same":
        return size
    return tuple((n + 2 * p - k) // s + 1 for n, p, k, s in zip(size, conv["pad"], conv["k"], conv["stride"]))


def pool_out(size, pool):
    return tuple((n - k) // s + 1 for n, k, s in zip(size, pool["k"], pool["stride"]))


@st.composite
def _conv(draw, size):
    """A convolution valid on a ``size`` feature map (one entry per spatial axis)."""
    stride = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in size)
    if all(s == 1 for s in stride) and draw(st.integers(0, 2)) == 0:
        pad = "same"
        k = tuple(draw(st.integers(1, 5)) for _ in size)
    else:
        pad = tuple(draw(st.integers(0, 2)) for _ in size)
        k = tuple(draw(st.integers(1, min(5, n + 2 * p))) for n, p in zip(size, pad))
    return dict(k=k, stride=stride, pad=pad, bias=draw(st.booleans()), out=draw(st.integers(1, 6)),
                w=draw(st.integers(1, 8)))


@st.composite
def _pool(draw, size):
    """A max-pool valid on ``size``, or None when the map is too small (or by chance)."""
    if min(size) < 2 or not draw(st.booleans()):
        return None
    k = tuple(draw(st.integers(2, min(3, n))) for n in size)
    stride = tuple(draw(st.integers(1, 3)) for _ in size)
    return dict(k=k, stride=stride)


def _conv_layer(channels, c):
    return _layer(c["k"], QuantConv2d, QuantConv1d)(channels, c["out"], c["k"], stride=c["stride"], padding=c["pad"],
                                                    bias=c["bias"], **weight_kwargs(c["w"]))


def _batch_norm(channels, c):
    return _layer(c["k"], nn.BatchNorm2d, nn.BatchNorm1d)(channels)


def _max_pool(pool):
    return _layer(pool["k"], nn.MaxPool2d, nn.MaxPool1d)(pool["k"], pool["stride"])


@dataclass(frozen=True)
class BlockKind:
    """``draw(size)``: a strategy for (the block's parameters, the spatial size after it) on a map of
    spatial ``size``; ``build(spec, channels)``: its layers and the channels after it."""

    draw: Callable
    build: Callable


@st.composite
def _draw_conv_block(draw, size):
    """Conv, optional batch-norm, activation, optional max-pool after the activation or between the
    batch-norm and the activation."""
    conv = draw(_conv(size))
    size = conv_out(size, conv)
    pool = draw(_pool(size))
    return dict(conv=conv, bn=draw(st.booleans()), act=draw(st.sampled_from(ACTIVATIONS)), a=draw(st.integers(1, 8)),
                pool=pool, pool_before_act=pool is not None and draw(st.integers(0, 3)) == 0), _pooled(size, pool)


def _pooled(size, pool):
    return pool_out(size, pool) if pool is not None else size


def _build_conv_block(spec, channels):
    c, pool = spec["conv"], spec["pool"]
    layers = [_conv_layer(channels, c)] + ([_batch_norm(c["out"], c)] if spec["bn"] else [])
    act = [activation(spec["act"], spec["a"])]
    pooling = [_max_pool(pool)] if pool is not None else []
    return layers + (pooling + act if spec["pool_before_act"] else act + pooling), c["out"]


@st.composite
def _draw_bn_after_activation(draw, size):
    """Conv, activation (2-8 bits), batch-norm, optional max-pool, then a quantizer that absorbs the
    batch-norm (a negative gamma's sign stays in front of the pool as a ChannelwiseOp)."""
    conv = draw(_conv(size))
    size = conv_out(size, conv)
    pool = draw(_pool(size))
    return dict(conv=conv, act=draw(st.sampled_from(ACTIVATIONS)), a=draw(st.integers(2, 8)), pool=pool,
                quant=draw(st.sampled_from(ACTIVATIONS)), q=draw(st.integers(1, 8))), _pooled(size, pool)


def _build_bn_after_activation(spec, channels):
    c, pool = spec["conv"], spec["pool"]
    layers = [_conv_layer(channels, c), activation(spec["act"], spec["a"]), _batch_norm(c["out"], c)]
    pooling = [_max_pool(pool)] if pool is not None else []
    return layers + pooling + [activation(spec["quant"], spec["q"])], c["out"]


@st.composite
def _draw_per_channel_scale(draw, size):
    """Conv, optional batch-norm, QuantReLU with a power-of-two scale per channel (an integer
    ChannelwiseOp in hardware when a linear layer reads it)."""
    conv = draw(_conv(size))
    log2_ranges = draw(st.lists(st.integers(-2, 2), min_size=conv["out"], max_size=conv["out"]))
    return dict(conv=conv, bn=draw(st.booleans()), a=draw(st.integers(2, 8)), log2_ranges=log2_ranges), \
        conv_out(size, conv)


def _build_per_channel_scale(spec, channels):
    c = spec["conv"]
    layers = [_conv_layer(channels, c)] + ([_batch_norm(c["out"], c)] if spec["bn"] else [])
    return layers + [per_channel_relu(spec["a"], spec["log2_ranges"], len(c["k"]))], c["out"]


BLOCKS = {
    "conv": BlockKind(_draw_conv_block, _build_conv_block),
    "bn_after_activation": BlockKind(_draw_bn_after_activation, _build_bn_after_activation),
    "per_channel_scale": BlockKind(_draw_per_channel_scale, _build_per_channel_scale),
}


def _out_bits(block) -> int:
    """The bit width of a block's last activation."""
    return block.get("q", block.get("a"))


@st.composite
def layer_plans(draw):
    """A description of a network: input, blocks, readout, linear layers, seed."""
    channels = draw(st.integers(1, 3))
    one_d = draw(st.integers(0, 3)) == 0
    size = (draw(st.integers(4, 16)),) if one_d else (draw(st.integers(4, 11)), draw(st.integers(4, 11)))
    plan = {"input": (1, channels, *size), "in_bits": draw(st.integers(2, 8)), "blocks": [], "fcs": []}
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(sorted(BLOCKS)))
        spec, size = draw(BLOCKS[kind].draw(size))
        plan["blocks"].append(dict(kind=kind, **spec))
    area = math.prod(size)
    pooled_ok = plan["blocks"] and _out_bits(plan["blocks"][-1]) >= 2 and area & (area - 1) == 0
    plan["readout"] = "global_average_pool" if pooled_ok and draw(st.booleans()) else "flatten"
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
        channels, size = plan["input"][1], tuple(plan["input"][2:])
        layers = [QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=plan["in_bits"])]
        for block in plan["blocks"]:
            built, channels = BLOCKS[block["kind"]].build(block, channels)
            layers += built
        if plan.get("readout") == "global_average_pool":
            layers.append(_layer(size, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool1d)(1))
        layers.append(nn.Flatten())
        with torch.no_grad():  # eval: batch-norm and scale statistics stay as set
            features = nn.Sequential(*layers).eval()(torch.zeros(plan["input"])).shape[1]
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
                if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
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
