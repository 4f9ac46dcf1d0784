"""Binary activations: bits for XNOR-popcount layers, or 2-bit integers where zero padding must stay exact."""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_datatypes import InferDataTypes

from qnnflow.hls.partition import STREAM_TRANSPARENT
from qnnflow.transforms.to_hw.common import LINEAR, node_attr, tensor_dtype

PASS_THROUGH = ("MaxPool", "MaxPoolNHWC", "Im2Col", *STREAM_TRANSPARENT)


def _reachable(model, tensor):
    """The nodes that read ``tensor`` through pass-through nodes, and whether any zero padding is crossed."""
    readers, padded, stack = [], False, [tensor]
    while stack:
        current = stack.pop()
        for node in model.find_consumers(current) or []:
            if node.op_type in PASS_THROUGH:
                padded |= node.op_type == "Im2Col" and any(node_attr(node, "pad_amount", [0]))
                stack.append(node.output[0])
            else:
                padded |= node.op_type == "Conv" and any(node_attr(node, "pads", [0]))
                readers.append(node)
        if any(o.name == current for o in model.graph.output):
            readers.append(None)
    return readers, padded


def _is_bipolar_linear(model, node) -> bool:
    return (
        node is not None
        and node.op_type in LINEAR
        and node.input[0] != ""
        and model.get_initializer(node.input[1]) is not None
        and tensor_dtype(model, node.input[1]) == DataType["BIPOLAR"]
        and node_attr(node, "group", 1) == 1  # a depthwise VVAU multiplies integers; it has no XNOR mode
    )


class EncodeBipolarActivations(Transformation):
    """Choose bits (XNOR) or 2-bit integers for every bipolar MultiThreshold output."""

    def apply(self, model: ModelWrapper):
        for mt in model.graph.node:
            if mt.op_type != "MultiThreshold" or tensor_dtype(model, mt.output[0]) != DataType["BIPOLAR"]:
                continue
            inst = getCustomOp(mt)
            readers, padded = _reachable(model, mt.output[0])
            thresholds = model.get_initializer(mt.input[1])
            if not padded and readers and all(_is_bipolar_linear(model, r) for r in readers):
                inst.set_nodeattr("out_dtype", "BINARY")
                inst.set_nodeattr("out_scale", 1.0)
                inst.set_nodeattr("out_bias", 0.0)
            else:  # -1 + [x >= T] + [x >= T] is -1 or +1, with zero padding still meaning 0
                model.set_initializer(mt.input[1], np.repeat(thresholds, 2, axis=1))
                inst.set_nodeattr("out_dtype", "INT2")
                inst.set_nodeattr("out_scale", 1.0)
                inst.set_nodeattr("out_bias", -1.0)
        return model.transform(InferDataTypes()), False
