"""QONNX quantizers to integer form.

- Weight quantizers (Quant/BipolarQuant on an initializer) become integer initializers,
  annotated INTk/UINTk/BIPOLAR, with the scale moved to a Mul after the consuming
  MatMul/Conv.
- Activation quantizers are split into Div(scale) -> quantizer with scale 1 -> Mul(scale),
  so the quantizer outputs integers. This is exact: the quantizer computes x/scale first.
- Integer activation quantizers (except the input quantizer, whose integers the host
  feeds to the accelerator) become MultiThreshold nodes with one threshold per output
  step, honouring the rounding mode, ties included.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.bipolar_quant import binary_quant
from qonnx.custom_op.general.intquant import int_quant, max_int, min_int
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from qnnflow.base.errors import QnnflowError
from qnnflow.transforms.graph import broadcast_channelwise, fresh_name, head_nodes, insert_after, insert_before

QUANTIZERS = ("Quant", "BipolarQuant")


def _quant_params(model: ModelWrapper, node):
    """(scale, zeropt, bitwidth, signed, narrow, rounding_mode) of a Quant node; initializers required."""
    values = [model.get_initializer(name) for name in node.input[1:]]
    if any(v is None for v in values):
        raise QnnflowError(f"node '{node.name}' ({node.op_type}): scale, zero point and bit width must be constants")
    inst = getCustomOp(node)
    scale, zeropt, bitwidth = values
    return scale, zeropt, bitwidth, inst.get_nodeattr("signed"), inst.get_nodeattr("narrow"), inst.get_nodeattr(
        "rounding_mode"
    )


def int_datatype(bits: int, signed: bool) -> DataType:
    if bits == 1 and not signed:
        return DataType["BINARY"]
    return DataType[f"{'INT' if signed else 'UINT'}{bits}"]


class FoldWeightQuantizers(Transformation):
    """Quantized float weights -> integer weights times a per-output-channel scale."""

    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            if node.op_type not in QUANTIZERS or model.get_initializer(node.input[0]) is None:
                continue
            weights = model.get_initializer(node.input[0])
            if node.op_type == "BipolarQuant":
                scale = model.get_initializer(node.input[1])
                codes, dtype = binary_quant(weights, np.float32(1.0)), DataType["BIPOLAR"]
            else:
                scale, zeropt, bits, signed, narrow, mode = _quant_params(model, node)
                if np.any(zeropt != 0):
                    raise QnnflowError(f"node '{node.name}': non-zero weight zero point is not supported")
                codes = int_quant(weights / scale, np.float32(1.0), zeropt, bits, signed, narrow, mode)
                dtype = int_datatype(int(bits), bool(signed))
            consumers = model.find_consumers(node.output[0]) or []
            if len(consumers) == 1 and consumers[0].op_type in ("MatMul", "Conv") and consumers[0].input[1] == node.output[0]:
                self._split_scale(model, node, consumers[0], codes, scale, dtype)
            else:  # a quantized constant used elsewhere (e.g. a bias): fold it to its float value
                model.set_initializer(node.output[0], (codes * scale).astype(np.float32))
            model.graph.node.remove(node)
            changed = True
        return model, changed

    @staticmethod
    def _split_scale(model, quant, linear, codes, scale, dtype):
        out_shape = model.get_tensor_shape(linear.output[0])
        if linear.op_type == "MatMul":  # weights (MW, MH): scale varies at most along MH
            per_out = broadcast_channelwise(scale, codes.shape, codes.ndim - 1)
            mul_shape = [1] * (len(out_shape) - 1) + [-1]
        else:  # Conv weights (Cout, Cin/g, kh, kw): scale varies at most along Cout
            per_out = broadcast_channelwise(scale, codes.shape, 0)
            mul_shape = [1, -1] + [1] * (len(out_shape) - 2)
        if per_out is None:
            raise QnnflowError(f"node '{quant.name}': weight scale must be per tensor or per output channel")
        model.set_initializer(quant.output[0], codes.astype(np.float32))
        model.set_tensor_datatype(quant.output[0], dtype)
        scale_const = per_out[:1].reshape([1] * len(out_shape)) if np.all(per_out == per_out[0]) else per_out.reshape(mul_shape)
        insert_after(model, linear, "Mul", scale_const)


class SplitActivationScales(Transformation):
    """Quantizer(x, s) -> Div(x, s) -> Quantizer(·, 1) -> Mul(·, s): the quantizer emits integers."""

    def apply(self, model: ModelWrapper):
        changed = False
        for node in list(model.graph.node):
            if node.op_type not in QUANTIZERS or model.get_initializer(node.input[0]) is not None:
                continue
            scale = model.get_initializer(node.input[1])
            if scale is None or np.any(scale <= 0):
                raise QnnflowError(f"node '{node.name}': activation scale must be a positive constant")
            if node.op_type == "Quant" and np.any(model.get_initializer(node.input[2]) != 0):
                raise QnnflowError(f"node '{node.name}': non-zero activation zero point is not supported")
            if np.all(scale == 1.0):
                continue
            if node.op_type == "Quant":  # sign(x / s) == sign(x): BipolarQuant needs no Div
                insert_before(model, node, "Div", scale)
            insert_after(model, node, "Mul", scale)
            model.set_initializer(node.input[1], np.ones_like(scale, dtype=np.float32))
            changed = True
        return model, changed


def step_thresholds(lo: int, hi: int, mode: str) -> np.ndarray:
    """Thresholds t_m (m = lo+1..hi) with quant(x) >= m  <=>  x >= t_m, for a scale-1 quantizer.

    ROUND is round-half-to-even (numpy and torch): at x = m - 0.5 the result reaches m only
    for even m, so odd steps get the next float above m - 0.5 (a strict comparison).
    """
    m = np.arange(lo + 1, hi + 1, dtype=np.float32)
    up = lambda v: np.nextafter(v, np.float32(np.inf))  # noqa: E731
    if mode == "ROUND":
        half = m - np.float32(0.5)
        return np.where(m % 2 == 0, half, up(half)).astype(np.float32)
    if mode == "FLOOR":
        return m
    if mode == "CEIL":
        return up(m - 1).astype(np.float32)
    raise ValueError(mode)


class QuantToMultiThreshold(Transformation):
    """Scale-1 activation quantizers after the input quantizer -> MultiThreshold."""

    def apply(self, model: ModelWrapper):
        head = head_nodes(model)
        changed = False
        for node in list(model.graph.node):
            if node.op_type not in QUANTIZERS or node.name in head:
                continue
            if model.get_initializer(node.input[0]) is not None or not np.all(model.get_initializer(node.input[1]) == 1):
                continue
            if node.op_type == "BipolarQuant":
                thresholds, attrs = np.zeros((1, 1), np.float32), dict(out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0)
            else:
                _, _, bits, signed, narrow, mode = _quant_params(model, node)
                if mode not in ("ROUND", "FLOOR", "CEIL"):
                    raise QnnflowError(f"node '{node.name}': rounding mode {mode} is not supported (ROUND, FLOOR, CEIL)")
                bits, signed, narrow = int(bits), bool(signed), bool(narrow)
                lo, hi = min_int(signed, narrow, bits), max_int(signed, narrow, bits)
                thresholds = step_thresholds(int(lo), int(hi), mode)[None, :]
                attrs = dict(out_dtype=int_datatype(bits, signed).name, out_scale=1.0, out_bias=float(lo))
            shape = model.get_tensor_shape(node.input[0])
            layout = "NCHW" if len(shape) == 4 else "NC"
            tname = fresh_name(model, f"{node.name}_thresholds")
            model.set_initializer(tname, thresholds)
            mt = helper.make_node(
                "MultiThreshold", [node.input[0], tname], [node.output[0]],
                domain="qonnx.custom_op.general", name=node.name.replace(node.op_type, "MultiThreshold"),
                data_layout=layout, **attrs,
            )
            index = list(model.graph.node).index(node)
            model.graph.node.remove(node)
            model.graph.node.insert(index, mt)
            model.set_tensor_datatype(node.output[0], DataType[attrs["out_dtype"]])
            changed = True
        return model, changed
