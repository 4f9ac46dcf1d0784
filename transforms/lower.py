"""Lowering and layout: convolutions to Im2Col + MatMul, and the whole 4D region to NHWC.

Streaming hardware consumes pixels one after another with their channels side by side,
so every 4D tensor after the float head becomes NHWC in one walk over the graph:

- a Transpose to NHWC is inserted where a 4D tensor leaves the float head;
- Conv becomes Im2Col (NHWC, patch order ky, kx, c) + MatMul with the weights
  reordered to match; a depthwise Conv (group = input = output channels) the same with a
  ``depthwise=1`` Im2Col and block-sparse weights (column c reads only channel c), which
  to_hw turns into the depthwise sliding window and a VVAU; other grouped or dilated
  convolutions are rejected by name;
- MaxPool becomes MaxPoolNHWC, MultiThreshold, a global sum (ReduceSum), an average pool's window
  sum (QuantAvgPool2d) and a nearest upsample (Resize) switch to NHWC, a transposed convolution's
  pixel padding becomes the FMPaddingPixel dataflow node, per-channel
  constants of Mul/Add are transposed;
- a Flatten (or a Reshape to (N, C*H*W)) feeding a MatMul stays (flattening NHWC keeps the stream order) and the
  MatMul's weight rows are permuted from (c, h, w) to (h, w, c) order: no transpose
  survives between the convolutions and the classifier;
- anything else reading an NHWC tensor gets a Transpose back to NCHW in front.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.nodes.base import DOMAIN as HW_DOMAIN
from qnnflow.transforms.deconv import pixel_pad_strides
from qnnflow.transforms.graph import auto_pad, const_operand, fresh_name, head_nodes
from qnnflow.transforms.upsample import nearest_factors, set_nearest_factors

TO_NHWC, TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]
QONNX_DOMAIN = "qonnx.custom_op.general"


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _no_auto_pad(node) -> None:
    """Streamlining turns ``auto_pad`` into explicit ``pads``; lowering reads only ``pads``."""
    mode = auto_pad(node)
    if mode not in ("NOTSET", "VALID"):
        raise QnnflowError(
            f"node '{node.name}' ({node.op_type}): auto_pad={mode} must be made explicit pads before lowering "
            "(streamline does this)"
        )


def _nhwc(shape):
    n, c, h, w = shape
    return [n, h, w, c]


def depthwise_dense(weights: np.ndarray) -> np.ndarray:
    """Depthwise Conv weights (C, 1, kh, kw) as the (C, C, kh, kw) dense weights of the same convolution."""
    channels = weights.shape[0]
    dense = np.zeros((channels, channels, *weights.shape[2:]), dtype=weights.dtype)
    dense[np.arange(channels), np.arange(channels)] = weights[:, 0]
    return dense


class LowerToNHWC(Transformation):
    """The rewrite described in the module docstring, in one pass (it reaches a fixed point)."""

    def apply(self, model: ModelWrapper):
        head = head_nodes(model)
        nhwc: dict[str, str] = {}  # NCHW tensor name -> its NHWC replacement
        changed = False
        for node in list(model.graph.node):
            if node.name in head:
                continue
            four_d = [i for i in node.input if i in nhwc or self._enters_region(model, i, head)]
            if not four_d:
                continue
            for name in four_d:
                if name not in nhwc:
                    nhwc[name] = self._transpose(model, name, TO_NHWC, before=node, out_shape=_nhwc(model.get_tensor_shape(name)))
            self._rewrite(model, node, nhwc)
            changed = True
        for out in model.graph.output:
            if out.name in nhwc:  # hand the graph output back in its original layout
                back = helper.make_node("Transpose", [nhwc[out.name]], [out.name], perm=TO_NCHW, name=f"{out.name}_to_nchw")
                model.graph.node.append(back)
        if changed:
            model = model.transform(InferShapes()).transform(InferDataTypes())
        return model, False

    @staticmethod
    def _enters_region(model, tensor, head) -> bool:
        """A 4D activation produced in the float head (or the graph input) and read past it."""
        if model.get_initializer(tensor) is not None:
            return False
        shape = model.get_tensor_shape(tensor)
        if shape is None or len(shape) != 4:
            return False
        producer = model.find_producer(tensor)
        return producer is None or producer.name in head

    @staticmethod
    def _transpose(model, tensor, perm, before, out_shape) -> str:
        new = fresh_name(model, f"{tensor}_transposed")
        model.set_tensor_shape(new, out_shape)
        node = helper.make_node("Transpose", [tensor], [new], perm=perm, name=f"Transpose_{new}")
        model.graph.node.insert(list(model.graph.node).index(before), node)
        dtype = model.get_tensor_datatype(tensor)
        if dtype is not None:
            model.set_tensor_datatype(new, dtype)
        return new

    def _rewrite(self, model, node, nhwc):
        op = node.op_type
        x = node.input[0]
        if op == "Conv":
            self._conv(model, node, nhwc)
        elif op in ("MultiThreshold", "QuantAvgPool2d"):  # QuantAvgPool2d: an average pool's window sum
            getCustomOp(node).set_nodeattr("data_layout", "NHWC")
            self._follow(model, node, nhwc)
        elif op == "MaxPool":
            self._maxpool(model, node, nhwc)
        elif op in ("Mul", "Add") and const_operand(model, node) is not None:
            idx, c = const_operand(model, node)
            if c.ndim == 4:
                model.set_initializer(node.input[1 - idx], np.transpose(c, TO_NHWC))
            self._follow(model, node, nhwc)
        elif op in ("Relu", "Identity") or (op == "Add" and all(i in nhwc for i in node.input)):
            self._follow(model, node, nhwc)  # elementwise, or a residual add of two NHWC branches
        elif op == "Concat" and all(i in nhwc for i in node.input) and _attr(node, "axis") in (1, -3):
            self._follow(model, node, nhwc)  # a channel concat of two NHWC branches: channels are last now
            for a in node.attribute:
                if a.name == "axis":
                    a.i = 3
        elif pixel_pad_strides(model, node) is not None:  # a transposed convolution's zeros between pixels
            self._pixel_padding(model, node, nhwc)
        elif nearest_factors(model, node) is not None:  # a nearest upsample: the same factors in NHWC order
            factors = nearest_factors(model, node)
            set_nearest_factors(model, node, [factors[i] for i in TO_NHWC])
            self._follow(model, node, nhwc)
        elif op == "ReduceSum" and x in nhwc:  # the global sum pool: sum over H, W of the NHWC tensor
            model.set_initializer(node.input[1], np.array([1, 2], dtype=np.int64))
            self._follow(model, node, nhwc)
        elif self._flattens(model, node) and self._feeds_matmul(model, node):
            shape = model.get_tensor_shape(x)  # NCHW
            consumer = model.find_consumers(node.output[0])[0]
            weights = model.get_initializer(consumer.input[1])
            n, c, h, w = shape
            rows = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
            model.set_initializer(consumer.input[1], weights[rows])
            node.input[0] = nhwc[x]
        else:  # not layout-aware: give it NCHW back
            for i, name in enumerate(node.input):
                if name in nhwc:
                    shape = model.get_tensor_shape(name)
                    node.input[i] = self._transpose(model, nhwc[name], TO_NCHW, before=node, out_shape=shape)

    @staticmethod
    def _flattens(model, node) -> bool:
        """A Flatten (axis 1), or a Reshape to (N, C*H*W) such as ``x.view(x.size(0), -1)`` exports
        (tidy folds its Shape/Gather/Concat into a constant shape)."""
        if node.op_type == "Flatten":
            return _attr(node, "axis", 1) == 1
        if node.op_type != "Reshape":
            return False
        src, dst = model.get_tensor_shape(node.input[0]), model.get_tensor_shape(node.output[0])
        return bool(src and dst and len(dst) == 2 and dst[0] == src[0] and dst[1] == int(np.prod(src[1:])))

    @staticmethod
    def _feeds_matmul(model, node) -> bool:
        consumers = model.find_consumers(node.output[0]) or []
        return (
            len(consumers) == 1
            and consumers[0].op_type == "MatMul"
            and model.get_initializer(consumers[0].input[1]) is not None
        )

    @staticmethod
    def _follow(model, node, nhwc):
        """Make an elementwise node read and write NHWC."""
        for i, name in enumerate(node.input):
            if name in nhwc:
                node.input[i] = nhwc[name]
        out = node.output[0]
        new = fresh_name(model, f"{out}_nhwc")
        model.set_tensor_shape(new, _nhwc(model.get_tensor_shape(out)))
        node.output[0] = new
        nhwc[out] = new

    def _conv(self, model, node, nhwc):
        weights = model.get_initializer(node.input[1])
        if weights is None:
            raise QnnflowError(f"node '{node.name}' (Conv): weights must be constant to become a hardware layer")
        group = _attr(node, "group", 1)
        depthwise = group > 1 and weights.shape[0] == group and weights.shape[1] == 1
        if group != 1 and not depthwise:
            raise QnnflowError(
                f"node '{node.name}' (Conv): grouped convolution (group={group}, {weights.shape[1] * group} input and "
                f"{weights.shape[0]} output channels) has no dataflow node; use group=1, or a depthwise convolution "
                f"(groups = in_channels = out_channels)"
            )
        dilations = list(_attr(node, "dilations", [1, 1]))
        if any(d != 1 for d in dilations):
            raise QnnflowError(
                f"node '{node.name}' (Conv): dilation {dilations} is not supported by the sliding-window generator; "
                "use dilation 1"
            )
        if len(node.input) > 2:
            raise QnnflowError(f"node '{node.name}' (Conv): bias must be extracted before lowering")
        _no_auto_pad(node)
        cout, cin, kh, kw = weights.shape
        if depthwise:  # dense (kh*kw*C, C) weights, zero off each channel's own window
            weights = depthwise_dense(weights)
            cin = cout
        in_shape = model.get_tensor_shape(node.input[0])  # NCHW
        out_shape = model.get_tensor_shape(node.output[0])
        pads = list(_attr(node, "pads", [0, 0, 0, 0]))
        strides = list(_attr(node, "strides", [1, 1]))
        x = nhwc[node.input[0]]
        cols = fresh_name(model, f"{node.name}_im2col")
        n, _, oh, ow = out_shape
        model.set_tensor_shape(cols, [n, oh, ow, kh * kw * cin])
        im2col = helper.make_node(
            "Im2Col", [x], [cols], domain=QONNX_DOMAIN, name=node.name.replace("Conv", "Im2Col"),
            stride=strides, kernel_size=[kh, kw], pad_amount=pads,
            input_shape=str(tuple(_nhwc(in_shape))), pad_value=0, depthwise=int(depthwise),
        )
        matmul_w = fresh_name(model, f"{node.name}_weights")
        model.set_initializer(matmul_w, weights.transpose(2, 3, 1, 0).reshape(kh * kw * cin, cout))
        model.set_tensor_datatype(matmul_w, model.get_tensor_datatype(node.input[1]))
        out = fresh_name(model, f"{node.output[0]}_nhwc")
        model.set_tensor_shape(out, _nhwc(out_shape))
        matmul = helper.make_node("MatMul", [cols, matmul_w], [out], name=node.name.replace("Conv", "MatMul"))
        index = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        model.graph.node.insert(index, matmul)
        model.graph.node.insert(index, im2col)
        nhwc[node.output[0]] = out

    @staticmethod
    def _pixel_padding(model, node, nhwc):
        """The pixel padding (a ConvTranspose of ones, NCHW) -> the FMPaddingPixel dataflow node on NHWC."""
        x = nhwc[node.input[0]]
        dtype = model.get_tensor_datatype(node.input[0])  # the NHWC copy is typed when lowering ends
        if not dtype.is_integer() or not dtype.allowed(0):
            raise QnnflowError(f"node '{node.name}' (ConvTranspose): a transposed convolution builds only on integer "
                               f"activations that include 0 (it reads {dtype.name}); put a quantized activation "
                               f"other than a binary one before it")
        _, h, w, c = model.get_tensor_shape(x)
        out = fresh_name(model, f"{node.output[0]}_nhwc")
        model.set_tensor_shape(out, _nhwc(model.get_tensor_shape(node.output[0])))
        padding = helper.make_node("FMPaddingPixel", [x], [out], domain=HW_DOMAIN, name=node.name, ImgDim=[h, w],
                                   Stride=pixel_pad_strides(model, node), NumChannels=c, inputDataType=dtype.name)
        index = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        model.graph.node.insert(index, padding)
        nhwc[node.output[0]] = out

    def _maxpool(self, model, node, nhwc):
        _no_auto_pad(node)
        if _attr(node, "ceil_mode", 0) or any(_attr(node, "pads", [0, 0, 0, 0])):
            raise QnnflowError(f"node '{node.name}' (MaxPool): padding and ceil_mode are not supported; use unpadded pooling")
        dilations = list(_attr(node, "dilations", [1, 1]))
        if any(d != 1 for d in dilations):
            raise QnnflowError(
                f"node '{node.name}' (MaxPool): dilation {dilations} is not supported by the streaming max-pool; "
                "use dilation 1"
            )
        out = node.output[0]
        new = fresh_name(model, f"{out}_nhwc")
        model.set_tensor_shape(new, _nhwc(model.get_tensor_shape(out)))
        pool = helper.make_node(
            "MaxPoolNHWC", [nhwc[node.input[0]]], [new], domain=QONNX_DOMAIN, name=node.name,
            kernel_shape=list(_attr(node, "kernel_shape")), strides=list(_attr(node, "strides", _attr(node, "kernel_shape"))),
            pads=[0, 0, 0, 0],
        )
        index = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        model.graph.node.insert(index, pool)
        nhwc[out] = new
