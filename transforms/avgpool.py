"""An average pool between quantized layers as an integer window sum and a scale moved downstream;
Brevitas's TruncAvgPool2d (AveragePool + Trunc) as the same with a quantizer after it.

``AveragePool(x) = WindowSum(x) * 1 / (k*k)``.  Once streamlining has moved the activation scale
past the pool (``MoveAffineDownstream``), the pool reads integers; this rewrite then makes it a
qonnx ``QuantAvgPool2d`` with no truncation (an exact integer window sum, which to_hw turns into a
``SumPool``) followed by ``Mul(1/(k*k))``, which moves on like any other scale.  It fires only when
that scale reaches a quantizer's thresholds (a MultiThreshold, through scales, biases, max-pools
and reshapes), the case the issue asks for: the 1/(k*k) disappears into the next activation.  A
pool whose output stays float up to a linear layer or the output is left alone, and to_hw refuses
it by name.

Brevitas exports ``TruncAvgPool2d`` as AveragePool followed by a qonnx ``Trunc``: the window sum
(the average over its input scale / (k*k)) shifted right to the output bit width with its rounding
mode, clipped, times the output scale.  ``TruncToQuant`` writes that Trunc as the Quant it equals
(scale = output scale, the same bit width, signedness, narrowness and rounding), which
streamlining turns into thresholds on the window sum like any activation: the truncation is
reproduced exactly, ties included.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.transformation.base import Transformation

from qnnflow.base.errors import QnnflowError
from qnnflow.transforms.graph import const_operand, fresh_name, head_nodes, single_consumer

QONNX_DOMAIN = "qonnx.custom_op.general"
MAX_SUM_BITS = 32  # QuantAvgPool2d's widest output type
# what the 1/(k*k) scale moves through on its way to the thresholds
SCALE_PASSES = ("Mul", "Add", "MaxPool", "Reshape", "Flatten", "Transpose")


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def square_unpadded_pool(node) -> tuple[int, int] | None:
    """(kernel, stride) of an AveragePool with a square kernel and stride, no padding, floor mode; else None."""
    attrs = _attrs(node)
    kernel = list(attrs.get("kernel_shape", []))
    stride = list(attrs.get("strides", kernel))
    if (len(kernel) != 2 or kernel[0] != kernel[1] or len(stride) != 2 or stride[0] != stride[1]
            or any(attrs.get("pads", [0])) or attrs.get("ceil_mode", 0) or attrs.get("auto_pad", b"NOTSET") not in
            (b"NOTSET", "NOTSET", b"VALID", "VALID")):
        return None
    return kernel[0], stride[0]


def _reaches_thresholds(model, tensor) -> bool:
    """The tensor flows, through single-consumer scale-passing nodes, into a MultiThreshold."""
    node = single_consumer(model, tensor)
    while node is not None and node.op_type in SCALE_PASSES:
        if node.op_type in ("Mul", "Add") and const_operand(model, node) is None:
            return False
        node = single_consumer(model, node.output[0])
    return node is not None and node.op_type == "MultiThreshold"


class AveragePoolToWindowSum(Transformation):
    """AveragePool of integers whose output reaches thresholds -> QuantAvgPool2d (exact sum) + Mul(1/k^2)."""

    def apply(self, model):
        head = head_nodes(model)
        for node in list(model.graph.node):
            if node.op_type != "AveragePool" or node.name in head:
                continue
            geometry = square_unpadded_pool(node)
            dtype = model.get_tensor_datatype(node.input[0])
            if geometry is None or not dtype.is_integer() or dtype.bitwidth() == 1:
                continue
            kernel, stride = geometry
            lo, hi = int(dtype.min()) * kernel**2, int(dtype.max()) * kernel**2
            # QuantAvgPool2d's accumulator (from 2^ibits - 1 per element) must hold the sums unshifted
            ibits = dtype.bitwidth()
            obits = ((2**ibits - 1) * kernel**2).bit_length()
            if obits > MAX_SUM_BITS or not _reaches_thresholds(model, node.output[0]):
                continue
            if dtype.signed() and not (-(2 ** (obits - 1)) <= lo and hi < 2 ** (obits - 1)):
                continue
            summed = fresh_name(model, f"{node.name}_sum")
            model.set_tensor_shape(summed, model.get_tensor_shape(node.output[0]))
            scale = fresh_name(model, f"{node.name}_scale")
            model.set_initializer(scale, np.array(1.0 / kernel**2, dtype=np.float32))
            index = list(model.graph.node).index(node)
            model.graph.node.remove(node)
            model.graph.node.insert(index, helper.make_node("Mul", [summed, scale], [node.output[0]],
                                                            name=fresh_name(model, "Mul")))
            model.graph.node.insert(index, helper.make_node(
                "QuantAvgPool2d", [node.input[0]], [summed], domain=QONNX_DOMAIN, name=node.name,
                kernel=kernel, stride=stride, ibits=ibits, obits=obits, signed=int(dtype.signed()),
                data_layout="NCHW"))
            return model, True
        return model, False


def _power_of_two(value: np.ndarray) -> bool:
    exponent = np.log2(value)
    return bool(np.all(value > 0) and np.all(exponent == np.round(exponent)))


class TruncToQuant(Transformation):
    """Trunc (qonnx, as Brevitas exports TruncAvgPool2d's truncation) -> the equivalent Quant, outside the
    float head.  Refused by name when its parameters are computed, or its scales are not powers of two or
    its zero point not zero (then float streamlining cannot reproduce the shift exactly)."""

    def apply(self, model):
        head = head_nodes(model)
        for node in list(model.graph.node):
            if node.op_type != "Trunc" or node.name in head:
                continue
            what = f"node '{node.name}' (Trunc)"
            params = [model.get_initializer(name) for name in node.input[1:]]
            if len(params) != 5 or any(p is None for p in params):
                raise QnnflowError(f"{what}: needs constant scale, zero point, bit widths and output scale (the "
                                   f"Trunc of Brevitas's TruncAvgPool2d); re-export the model with brevitas >= 0.10")
            scale, zeropt, _, out_scale, out_bits = (np.asarray(p, dtype=np.float64) for p in params)
            if np.any(zeropt != 0) or not (_power_of_two(scale) and _power_of_two(out_scale)):
                raise QnnflowError(f"{what}: scale {scale.ravel()[:4]}, output scale {out_scale.ravel()[:4]} and zero "
                                   f"point {zeropt.ravel()[:4]}: only power-of-two scales and a zero zero point "
                                   f"truncate exactly (with a kernel of k*k = 3*3 the scale is 1/9 of the input's); "
                                   f"use a power-of-two input scale and a 2x2 or 4x4 TruncAvgPool2d")
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            mode = attrs.get("rounding_mode", b"FLOOR")
            mode = (mode.decode() if isinstance(mode, bytes) else mode).upper()
            index = list(model.graph.node).index(node)
            model.graph.node.remove(node)
            model.graph.node.insert(index, helper.make_node(
                "Quant", [node.input[0], node.input[4], node.input[2], node.input[5]], [node.output[0]],
                domain=QONNX_DOMAIN, name=fresh_name(model, "Quant"), rounding_mode=mode,
                signed=int(attrs.get("signed", 1)), narrow=int(attrs.get("narrow", 0))))
        return model, False
