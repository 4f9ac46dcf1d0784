"""Transposed convolution (ConvTranspose, Brevitas's QuantConvTranspose2d) as pixel padding and a convolution.

ConvTranspose(x, W) with stride S, pads p and output_padding o equals a stride-1 convolution of
``z`` with W' (W's input and output channels swapped and its kernel flipped), where ``z`` is x with
S-1 zeros between neighbouring pixels (pixel padding) and K-1-p zero rows/columns around it (plus o at
the bottom/right).  ``ConvTransposeToConv`` writes it so, the pixel padding as a ConvTranspose with a
1x1 kernel of ones per channel (which ONNX executes and ``pixel_pad_strides`` recognises) and the
border as the Conv's pads; lowering makes the first an FMPaddingPixel node, the Conv becomes the
usual FMPadding + sliding window + MVAU.  FINN's deconvolution is built the same way.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.transformation.base import Transformation

from qnnflow.base.errors import QnnflowError
from qnnflow.transforms.graph import fresh_name, head_nodes


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def pixel_pad_strides(model, node) -> list[int] | None:
    """[sh, sw] of a pixel padding (a ConvTranspose of a 1x1 kernel of ones, one per channel), else None."""
    if node.op_type != "ConvTranspose" or len(node.input) != 2:
        return None
    weights = model.get_initializer(node.input[1])
    attrs = _attrs(node)
    if (weights is None or weights.shape[1:] != (1, 1, 1) or attrs.get("group", 1) != weights.shape[0]
            or not np.all(weights == 1) or any(attrs.get("pads", [0])) or any(attrs.get("output_padding", [0]))):
        return None
    return list(attrs.get("strides", [1, 1]))


def _swap_and_flip(value: np.ndarray) -> np.ndarray:
    """(I, O, KH, KW) ConvTranspose weights -> (O, I, KH, KW) Conv weights with the kernel rotated 180 degrees."""
    return np.ascontiguousarray(value.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])


class ConvTransposeToConv(Transformation):
    """ConvTranspose outside the float head -> [pixel padding] + Conv (see the module docstring)."""

    def apply(self, model):
        head = head_nodes(model)
        for node in list(model.graph.node):
            if node.op_type != "ConvTranspose" or node.name in head or pixel_pad_strides(model, node) is not None:
                continue
            self._rewrite(model, node)
        return model, False

    @staticmethod
    def _rewrite(model, node):
        what = f"node '{node.name}' (ConvTranspose)"
        attrs = _attrs(node)
        weights = node.input[1]
        producer = model.find_producer(weights)
        is_quantized = producer is not None and producer.op_type in ("Quant", "BipolarQuant") and all(
            model.get_initializer(i) is not None for i in producer.input)
        if model.get_initializer(weights) is None and not is_quantized:
            raise QnnflowError(f"{what}: its weights are computed, not a constant or a quantized constant; use a "
                               f"layer with fixed (trained) weights")
        shape = model.get_tensor_shape(weights)
        k = list(shape[2:])
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        extra = list(attrs.get("output_padding", [0, 0]))
        if (attrs.get("group", 1) != 1 or any(d != 1 for d in attrs.get("dilations", [1, 1]))
                or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or "output_shape" in attrs
                or len(k) != 2 or any(p > kk - 1 for p, kk in zip(pads, k + k))):
            raise QnnflowError(f"{what}: only ungrouped, undilated 2-D transposed convolutions with explicit pads "
                               f"of at most kernel-1 build; use groups=1, dilation=1 and padding < kernel_size")
        if is_quantized:  # the quantizer's value and per-channel parameters are rearranged with it
            for i, name in enumerate(producer.input[:3]):  # value, scale, zero point
                param = model.get_initializer(name)
                if i == 0 or param.ndim == 4:
                    model.set_initializer(name, _swap_and_flip(param))
            model.set_tensor_shape(weights, [shape[1], shape[0], *k])
        else:
            model.set_initializer(weights, _swap_and_flip(model.get_initializer(weights)))
        strides = list(attrs.get("strides", [1, 1]))
        x = node.input[0]
        if strides != [1, 1]:
            n, c, h, w = model.get_tensor_shape(x)
            ones = fresh_name(model, f"{node.name}_pixel_ones")
            model.set_initializer(ones, np.ones((c, 1, 1, 1), dtype=np.float32))
            padded = fresh_name(model, f"{node.name}_pixel_padded")
            model.set_tensor_shape(padded, [n, c, (h - 1) * strides[0] + 1, (w - 1) * strides[1] + 1])
            model.graph.node.insert(list(model.graph.node).index(node), helper.make_node(
                "ConvTranspose", [x, ones], [padded], name=fresh_name(model, f"{node.name}_pixel_pad"),
                group=c, kernel_shape=[1, 1], strides=strides))
            x = padded
        (top, left, bottom, right) = pads
        conv_pads = [k[0] - 1 - top, k[1] - 1 - left, k[0] - 1 - bottom + extra[0], k[1] - 1 - right + extra[1]]
        conv = helper.make_node("Conv", [x, weights, *node.input[2:]], list(node.output),
                                name=node.name, kernel_shape=k, pads=conv_pads,
                                strides=[1, 1], dilations=[1, 1], group=1)
        index = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        model.graph.node.insert(index, conv)
