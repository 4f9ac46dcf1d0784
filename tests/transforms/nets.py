"""Hypothesis strategy: small random feed-forward Brevitas networks (not shaped like the zoo).

A plan is a plain dict (hypothesis prints it on failure): the input, a list of feature blocks, how
the features reach the classifier, 1-3 linear layers and a seed. Every geometry is drawn from
ranges that are valid for the current feature-map size, so no example is thrown away:

- input: 2-D (N, C, H, W) with non-square images, or 1-D (N, C, L) (then every block is Conv1d,
  BatchNorm1d, MaxPool1d); 1-3 channels; 2-8 bit input quantizer;
- 0-3 blocks, each a kind from ``BLOCKS`` (below) that is legal on the current map: conv,
  batch-norm after the activation, per-channel power-of-two scales, residual add (also 1-D), and,
  2-D only, channel concat, depthwise-separable, average pool and nearest upsample;
- the readout: a flatten, or a global average pool when the last block's activation has 2 or more
  bits and the map's area is a power of two (1/area is then exact in float32; other areas are exact
  in real arithmetic only, not always against the float32 reference);
- 1-3 linear layers with optional bias (batch-norm and activation between them);
- ReLU / HardTanh / identity activations, 1-8 bit weights and activations.

A block kind is a ``BlockKind``: where it is legal, a strategy drawing its parameters for the
current map (spatial size, channels) and a builder of its layers. Adding a kind is one function
pair and one entry in ``BLOCKS``.
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


def _always(size, channels):
    return True


@dataclass(frozen=True)
class BlockKind:
    """``draw(size, channels)``: a strategy for (the block's parameters, the spatial size after it, the
    channels after it) on a map of spatial ``size``; ``build(spec, channels)``: its layers and the
    channels after it; ``legal(size, channels)``: whether the kind may be drawn on that map;
    ``hardware``: the dataflow node each block of this kind must become (None: only MVAUs and the
    like, which every kind has)."""

    draw: Callable
    build: Callable
    legal: Callable = _always
    hardware: str | None = None


@st.composite
def _draw_conv_block(draw, size, channels):
    """Conv, optional batch-norm, activation, optional max-pool after the activation or between the
    batch-norm and the activation."""
    conv = draw(_conv(size))
    size = conv_out(size, conv)
    pool = draw(_pool(size))
    return dict(conv=conv, bn=draw(st.booleans()), act=draw(st.sampled_from(ACTIVATIONS)), a=draw(st.integers(1, 8)),
                pool=pool, pool_before_act=pool is not None and draw(st.integers(0, 3)) == 0), _pooled(size, pool), \
        conv["out"]


def _pooled(size, pool):
    return pool_out(size, pool) if pool is not None else size


def _build_conv_block(spec, channels):
    c, pool = spec["conv"], spec["pool"]
    layers = [_conv_layer(channels, c)] + ([_batch_norm(c["out"], c)] if spec["bn"] else [])
    act = [activation(spec["act"], spec["a"])]
    pooling = [_max_pool(pool)] if pool is not None else []
    return layers + (pooling + act if spec["pool_before_act"] else act + pooling), c["out"]


@st.composite
def _draw_bn_after_activation(draw, size, channels):
    """Conv, activation (2-8 bits), batch-norm, optional max-pool, then a quantizer that absorbs the
    batch-norm (a negative gamma's sign stays in front of the pool as a ChannelwiseOp)."""
    conv = draw(_conv(size))
    size = conv_out(size, conv)
    pool = draw(_pool(size))
    return dict(conv=conv, act=draw(st.sampled_from(ACTIVATIONS)), a=draw(st.integers(2, 8)), pool=pool,
                quant=draw(st.sampled_from(ACTIVATIONS)), q=draw(st.integers(1, 8))), _pooled(size, pool), conv["out"]


def _build_bn_after_activation(spec, channels):
    c, pool = spec["conv"], spec["pool"]
    layers = [_conv_layer(channels, c), activation(spec["act"], spec["a"]), _batch_norm(c["out"], c)]
    pooling = [_max_pool(pool)] if pool is not None else []
    return layers + pooling + [activation(spec["quant"], spec["q"])], c["out"]


@st.composite
def _draw_per_channel_scale(draw, size, channels):
    """Conv, optional batch-norm, QuantReLU with a power-of-two scale per channel (an integer
    ChannelwiseOp in hardware when a linear layer reads it)."""
    conv = draw(_conv(size))
    log2_ranges = draw(st.lists(st.integers(-2, 2), min_size=conv["out"], max_size=conv["out"]))
    return dict(conv=conv, bn=draw(st.booleans()), a=draw(st.integers(2, 8)), log2_ranges=log2_ranges), \
        conv_out(size, conv), conv["out"]


def _build_per_channel_scale(spec, channels):
    c = spec["conv"]
    layers = [_conv_layer(channels, c)] + ([_batch_norm(c["out"], c)] if spec["bn"] else [])
    return layers + [per_channel_relu(spec["a"], spec["log2_ranges"], len(c["k"]))], c["out"]


@st.composite
def _same_conv(draw, size, out):
    """A stride-1 convolution with an odd kernel padded to keep the map's size, ``out`` channels."""
    k = tuple(draw(st.sampled_from([1, 3])) for _ in size)
    return dict(k=k, stride=tuple(1 for _ in size), pad=tuple(n // 2 for n in k), bias=draw(st.booleans()), out=out,
                w=draw(st.integers(1, 8)))


@st.composite
def _conv_act(draw, size, out):
    """A same-size convolution and its activation: one branch step."""
    return dict(conv=draw(_same_conv(size, out)), act=draw(st.sampled_from(ACTIVATIONS)), a=draw(st.integers(1, 8)))


def _build_conv_act(step, channels):
    return [_conv_layer(channels, step["conv"]), activation(step["act"], step["a"])]


class Residual(nn.Module):
    """``join(x + body(x))``: an identity skip around ``body``."""

    def __init__(self, body, join):
        super().__init__()
        self.body, self.join = nn.Sequential(*body), join

    def forward(self, x):
        return self.join(x + self.body(x))


@st.composite
def _draw_residual(draw, size, channels):
    """conv -> activation -> conv -> activation (same size and channels) plus the identity skip, then a
    quantized activation. Every scale it adds is a power of two, so the branches' integers line up."""
    return dict(steps=[draw(_conv_act(size, channels)) for _ in range(2)], act=draw(st.sampled_from(ACTIVATIONS)),
                a=draw(st.integers(1, 8))), size, channels


def _build_residual(spec, channels):
    body = [layer for step in spec["steps"] for layer in _build_conv_act(step, channels)]
    return [Residual(body, activation(spec["act"], spec["a"]))], channels


class Concat(nn.Module):
    """The channels of ``first(x)`` then those of ``second(x)``."""

    def __init__(self, first, second):
        super().__init__()
        self.first, self.second = first, second

    def forward(self, x):
        return torch.cat([self.first(x), self.second(x)], 1)


@st.composite
def _draw_concat(draw, size, channels):
    """Two branches of the same map joined along channels: conv -> activation, and either another
    conv -> activation or the input itself."""
    # 2-8 bit branches: qonnx annotates a Concat with its first input's type, and a binary (BIPOLAR) first
    # input makes the exported graph's execution refuse the other branch's values
    first = dict(draw(_conv_act(size, draw(st.integers(1, 4)))), a=draw(st.integers(2, 8)))
    second = dict(draw(_conv_act(size, draw(st.integers(1, 4)))), a=draw(st.integers(2, 8))) \
        if draw(st.booleans()) else None
    out = first["conv"]["out"] + (second["conv"]["out"] if second else channels)
    return dict(first=first, second=second), size, out


def _build_concat(spec, channels):
    first, second = spec["first"], spec["second"]
    branch = nn.Sequential(*_build_conv_act(first, channels))
    other = nn.Sequential(*_build_conv_act(second, channels)) if second else nn.Identity()
    out = first["conv"]["out"] + (second["conv"]["out"] if second else channels)
    return [Concat(branch, other)], out


@st.composite
def _draw_depthwise(draw, size, channels):
    """A depthwise convolution (groups = channels), optional batch-norm, activation, then a pointwise
    1x1 convolution and activation."""
    depthwise = dict(draw(_conv(size)), out=channels)
    pointwise = dict(k=(1, 1), stride=(1, 1), pad=(0, 0), bias=draw(st.booleans()), out=draw(st.integers(1, 6)),
                     w=draw(st.integers(1, 8)))
    return dict(depthwise=depthwise, bn=draw(st.booleans()), act=draw(st.sampled_from(ACTIVATIONS)),
                dw_a=draw(st.integers(1, 8)), pointwise=pointwise, pw_act=draw(st.sampled_from(ACTIVATIONS)),
                a=draw(st.integers(1, 8))), conv_out(size, depthwise), pointwise["out"]


def _build_depthwise(spec, channels):
    d = spec["depthwise"]
    layers = [QuantConv2d(channels, channels, d["k"], stride=d["stride"], padding=d["pad"], groups=channels,
                          bias=d["bias"], **weight_kwargs(d["w"]))]
    layers += [nn.BatchNorm2d(channels)] if spec["bn"] else []
    layers += [activation(spec["act"], spec["dw_a"]), _conv_layer(channels, spec["pointwise"]),
               activation(spec["pw_act"], spec["a"])]
    return layers, spec["pointwise"]["out"]


@st.composite
def _draw_average_pool(draw, size, channels):
    """conv -> activation -> AvgPool2d(2, stride 1 or 2) -> quantized activation (a window sum whose
    1/4 goes into the thresholds after it)."""
    # 2-8 bits into the pool: after a binary (+-1) activation to_hw refuses the AveragePool
    step = dict(draw(_conv_act(size, draw(st.integers(1, 6)))), a=draw(st.integers(2, 8)))
    stride = draw(st.integers(1, 2))
    return dict(step=step, stride=stride, quant=draw(st.sampled_from(ACTIVATIONS)), q=draw(st.integers(1, 8))), \
        pool_out(size, dict(k=(2, 2), stride=(stride, stride))), step["conv"]["out"]


def _build_average_pool(spec, channels):
    return _build_conv_act(spec["step"], channels) + [nn.AvgPool2d(2, spec["stride"]),
                                                      activation(spec["quant"], spec["q"])], spec["step"]["conv"]["out"]


def _average_pool_legal(size, channels):
    # a longer side of 4 or more: a 2x2 pool whose output is 1x1 is a global pool (GlobalAccPool, not SumPool)
    return len(size) == 2 and min(size) >= 2 and max(size) >= 4


@st.composite
def _draw_upsample(draw, size, channels):
    """conv -> activation -> nearest upsample by 2 (the activation's scale moves past it)."""
    step = draw(_conv_act(size, draw(st.integers(1, 4))))
    return dict(step=step, a=step["a"]), tuple(2 * n for n in size), step["conv"]["out"]


def _build_upsample(spec, channels):
    return _build_conv_act(spec["step"], channels) + [nn.Upsample(scale_factor=2)], spec["step"]["conv"]["out"]


def _upsample_legal(size, channels):
    return len(size) == 2 and max(size) <= 6  # keeps the maps after it tiny


BLOCKS = {
    "conv": BlockKind(_draw_conv_block, _build_conv_block),
    "bn_after_activation": BlockKind(_draw_bn_after_activation, _build_bn_after_activation),
    "per_channel_scale": BlockKind(_draw_per_channel_scale, _build_per_channel_scale),
    "residual": BlockKind(_draw_residual, _build_residual, hardware="AddStreams"),
    # 2-D only: Conv1dAs2d refuses any Concat on a rank-3 map ("rearranges a 1-D feature map"), even
    # one along channels, which the height-1 unsqueeze does not move
    "concat": BlockKind(_draw_concat, _build_concat, lambda size, channels: len(size) == 2,
                        hardware="StreamingConcat"),
    "depthwise": BlockKind(_draw_depthwise, _build_depthwise, lambda size, channels: len(size) == 2 and channels >= 2,
                           hardware="VVAU"),
    "average_pool": BlockKind(_draw_average_pool, _build_average_pool, _average_pool_legal, hardware="SumPool"),
    "upsample": BlockKind(_draw_upsample, _build_upsample, _upsample_legal, hardware="UpsampleNearestNeighbour"),
}


def _out_bits(block) -> int:
    """The bit width of a block's last activation (0 for a concat, whose branches may differ)."""
    return block.get("q", block.get("a", 0))


@st.composite
def layer_plans(draw):
    """A description of a network: input, blocks, readout, linear layers, seed."""
    channels = draw(st.integers(1, 3))
    one_d = draw(st.integers(0, 3)) == 0
    size = (draw(st.integers(4, 16)),) if one_d else (draw(st.integers(4, 11)), draw(st.integers(4, 11)))
    plan = {"input": (1, channels, *size), "in_bits": draw(st.integers(2, 8)), "blocks": [], "fcs": []}
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(sorted(k for k, b in BLOCKS.items() if b.legal(size, channels))))
        spec, size, channels = draw(BLOCKS[kind].draw(size, channels))
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
