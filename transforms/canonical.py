"""Canonical form before streamlining: 1-D as 2-D, explicit padding, transposed convolutions as
pixel padding + Conv (``deconv``), biases as Adds, Gemm as MatMul.

Brevitas exports a padded convolution with ``auto_pad`` or ``pads``, a biased QuantConv2d
as a three-input Conv and a biased QuantLinear as a Gemm with transposed weights.  The
rewrites that follow (streamline, binary encoding, lowering) read only ``pads`` and expect
linear layers as bias-free Conv/MatMul with the bias in an Add after them, so these run
first (``CANONICAL``, in order); the bias rewrites leave the float head alone.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes

from qnnflow.base.errors import QnnflowError
from qnnflow.transforms.deconv import ConvTransposeToConv
from qnnflow.transforms.graph import auto_pad, fresh_name, head_nodes, insert_after


def _explicit_pads(model, node) -> list[int] | None:
    """``pads`` [top, left, bottom, right] for a Conv/MaxPool's ``auto_pad``; None when it has none."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    mode = auto_pad(node)
    if mode == "NOTSET":
        return None
    if mode == "VALID":
        return [0, 0, 0, 0]
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise QnnflowError(f"node '{node.name}' ({node.op_type}): auto_pad={mode} is not an ONNX padding mode; "
                           f"use NOTSET with explicit pads, VALID, SAME_UPPER or SAME_LOWER")
    shape = model.get_tensor_shape(node.input[0])
    if not shape or len(shape) != 4:
        raise QnnflowError(f"node '{node.name}' ({node.op_type}): auto_pad={mode} needs the input's 4D shape, "
                           f"which is unknown; run the tidy step (shape inference) first")
    size = np.array(shape[2:])
    if "kernel_shape" in attrs:
        kernel = np.array(attrs["kernel_shape"])
    else:  # a Conv may leave it to its weights' shape
        kernel = np.array(model.get_tensor_shape(node.input[1])[2:])
    stride = np.array(attrs.get("strides", [1] * len(size)))
    dilation = np.array(attrs.get("dilations", [1] * len(size)))
    total = np.maximum((-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    begin = total // 2 if mode == "SAME_UPPER" else total - total // 2
    return [int(v) for v in (*begin, *(total - begin))]


class MakePadsExplicit(Transformation):
    """Conv/MaxPool ``auto_pad`` (SAME_UPPER, SAME_LOWER, VALID) -> the equivalent explicit ``pads``."""

    def apply(self, model):
        for node in model.graph.node:
            if node.op_type not in ("Conv", "MaxPool"):
                continue
            pads = _explicit_pads(model, node)
            if pads is None:
                continue
            keep = [a for a in node.attribute if a.name not in ("auto_pad", "pads")]
            del node.attribute[:]
            node.attribute.extend([*keep, helper.make_attribute("pads", pads)])
        return model, False


def _constant_source(model, tensor):
    """"init" for an initializer, the quantizer for a quantizer of constants, else None."""
    if model.get_initializer(tensor) is not None:
        return "init"
    producer = model.find_producer(tensor)
    if (
        producer is not None
        and producer.op_type in ("Quant", "BipolarQuant")
        and all(model.get_initializer(i) is not None for i in producer.input)
    ):
        return producer
    return None


class ExtractConvBias(Transformation):
    """Conv(x, W, b) -> Add(Conv(x, W), b reshaped to (1, C, 1, 1)), outside the float head.

    Must run before ``FoldWeightQuantizers``: that puts the weight scale in a Mul right after
    the Conv, which would otherwise scale the bias too.  qonnx's ExtractBiasFromConv does the
    same for a float bias, but fails on Brevitas's Int8Bias (its scalar zero point cannot take
    the per-channel shape) and leaves a bias it cannot extract with only a warning. The bias is a constant or a quantizer
    of constants (Brevitas ``bias_quant``); the quantizer's per-channel parameters are
    reshaped with it and it is folded like any other quantized constant.
    """

    def apply(self, model):
        head = head_nodes(model)
        for node in model.graph.node:
            if node.op_type != "Conv" or len(node.input) < 3 or node.name in head:
                continue
            bias = node.input[2]
            source = _constant_source(model, bias) if bias else None
            if bias and source is None:
                raise QnnflowError(f"node '{node.name}' (Conv): its bias '{bias}' is computed, not a constant or a "
                                   f"quantized constant; give the layer a fixed (trained) bias")
            del node.input[2]
            if not bias:
                continue
            shape = [1, model.get_tensor_shape(node.output[0])[1], 1, 1]
            if source == "init":
                model.set_initializer(bias, model.get_initializer(bias).reshape(shape))
            else:
                for i, name in enumerate(source.input[:3]):  # value, scale, zero point
                    param = model.get_initializer(name)
                    if i == 0 or param.size > 1:
                        model.set_initializer(name, param.reshape(shape))
                model.set_tensor_shape(bias, shape)
            insert_after(model, node, "Add", bias)
        return model, False


class GemmToMatMul(Transformation):
    """Gemm(x, W, b) (how a QuantLinear with bias exports) -> Add(MatMul(x, W^T), b), outside the float head.

    Like ``ExtractConvBias``, before the weight scale is split off.  Unlike qonnx's
    GemmToMatMul, ``transB`` is applied to the weight constant (or to the parameters of the
    quantizer producing it) instead of by a Transpose node, so the MatMul reads integer weights
    after ``FoldWeightQuantizers``; ``alpha`` becomes a Mul.
    """

    def apply(self, model):
        head = head_nodes(model)
        for node in model.graph.node:
            if node.op_type != "Gemm" or node.name in head:
                continue
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            what = f"node '{node.name}' (Gemm)"
            if attrs.get("transA", 0):
                raise QnnflowError(f"{what}: transA=1 (a transposed input) is not supported; export the layer as "
                                   f"a plain Linear (torch.nn.functional.linear)")
            source = _constant_source(model, node.input[1])
            if source is None:
                raise QnnflowError(f"{what}: its weights are computed, not a constant or a quantized constant; "
                                   f"use a layer with fixed (trained) weights")
            bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
            beta = float(attrs.get("beta", 1.0))
            if bias is not None and beta != 1.0:
                if model.get_initializer(bias) is None:
                    raise QnnflowError(f"{what}: beta={beta} with a computed bias is not supported; use beta=1 or a "
                                       f"constant bias")
                model.set_initializer(bias, (model.get_initializer(bias) * np.float32(beta)).astype(np.float32))
            if attrs.get("transB", 0):
                weights = node.input[1]
                if source == "init":
                    model.set_initializer(weights, model.get_initializer(weights).T.copy())
                else:
                    for name in source.input[:3]:  # value, scale, zero point: per-row parameters become per-column
                        param = model.get_initializer(name)
                        if param.ndim == 2:
                            model.set_initializer(name, param.T.copy())
                    model.set_tensor_shape(weights, model.get_tensor_shape(weights)[::-1])
            del node.input[2:]
            del node.attribute[:]
            node.op_type = "MatMul"
            alpha = float(attrs.get("alpha", 1.0))
            if bias is not None:
                insert_after(model, node, "Add", bias)
            if alpha != 1.0:
                insert_after(model, node, "Mul", np.float32(alpha))
        return model, False


def _spatial_1d(node) -> bool:
    """A Conv/MaxPool over one spatial axis (its kernel_shape has one entry, or its weights are 3-D)."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return node.op_type in ("Conv", "MaxPool") and len(attrs.get("kernel_shape", [0, 0])) == 1


class Conv1dAs2d(Transformation):
    """A 1-D network (Conv1d, MaxPool1d) as the 2-D one it equals with height 1.

    Every rank-3 tensor (N, C, L) becomes (N, C, 1, L), initializers included: Conv1d weights
    (O, I, K) become (O, I, 1, K), per-channel parameters (1, C, 1) and weight scales (O, 1, 1) gain
    the same axis. Kernel, stride, dilation and padding attributes get the height entry (1, or 0
    padding), and the graph input is unsqueezed on the host. The 2-D machinery (sliding window
    with a 1xK kernel, max-pool, MVAU) then does the rest. Runs first, before padding is made
    explicit.
    """

    SIZE_ONE = {"kernel_shape": 1, "strides": 1, "dilations": 1}

    def apply(self, model):
        convs = [n for n in model.graph.node if n.op_type == "Conv" and model.get_tensor_shape(n.input[1]) is not None
                 and len(model.get_tensor_shape(n.input[1])) == 3]
        if not convs and not any(_spatial_1d(n) for n in model.graph.node):
            return model, False
        for node in model.graph.node:
            if node.op_type in ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Concat", "Split") and any(
                len(model.get_tensor_shape(t) or []) == 3 for t in node.input if t
            ):
                raise QnnflowError(f"node '{node.name}' ({node.op_type}) rearranges a 1-D feature map (N, C, L); "
                                   f"qnnflow builds 1-D networks as height-1 2-D ones and cannot move this node; "
                                   f"flatten with nn.Flatten instead")
            if node.op_type in ("Conv", "MaxPool"):
                self._attributes(node)
        for init in model.graph.initializer:
            value = numpy_helper.to_array(init)
            if value.ndim == 3:
                init.CopyFrom(numpy_helper.from_array(np.expand_dims(value, 2), init.name))
        for info in model.graph.value_info:
            dims = info.type.tensor_type.shape.dim
            if len(dims) == 3:
                dims.insert(2, onnx.TensorShapeProto.Dimension(dim_value=1))
        source = model.graph.input[0].name
        shape = model.get_tensor_shape(source)
        if len(shape) == 3:
            unsqueezed = fresh_name(model, f"{source}_2d")
            model.set_tensor_shape(unsqueezed, [shape[0], shape[1], 1, shape[2]])
            for node in model.find_consumers(source) or []:
                node.input[list(node.input).index(source)] = unsqueezed
            axes = fresh_name(model, "height_axis")
            model.set_initializer(axes, np.array([2], dtype=np.int64))
            model.graph.node.insert(0, helper.make_node("Unsqueeze", [source, axes], [unsqueezed],
                                                        name=fresh_name(model, "Unsqueeze")))
        return model.transform(InferShapes()), False

    def _attributes(self, node):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        new = {name: [one, *attrs[name]] for name, one in self.SIZE_ONE.items() if len(attrs.get(name, [])) == 1}
        if len(attrs.get("pads", [])) == 2:
            new["pads"] = [0, attrs["pads"][0], 0, attrs["pads"][1]]
        keep = [a for a in node.attribute if a.name not in new]
        del node.attribute[:]
        node.attribute.extend([*keep, *(helper.make_attribute(name, value) for name, value in new.items())])


CANONICAL = (Conv1dAs2d, MakePadsExplicit, ConvTransposeToConv, ExtractConvBias, GemmToMatMul)
