"""What the to_hw converters share: node attributes, tensor types, and replacing nodes in place."""

from __future__ import annotations

from onnx import helper
from qonnx.core.datatype import DataType

from qnnflow.hls.nodes.base import DOMAIN

HW_DOMAIN = DOMAIN  # the domain of the nodes the converters make
LINEAR = ("MatMul", "Conv")


def node_attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def tensor_dtype(model, tensor) -> DataType:
    dtype = model.get_tensor_datatype(tensor)
    return dtype if dtype is not None else DataType["FLOAT32"]


def replace_node(model, old_nodes, new_node):
    """Put ``new_node`` where the first of ``old_nodes`` was and remove them; the node as stored."""
    index = list(model.graph.node).index(old_nodes[0])
    for old in old_nodes:
        model.graph.node.remove(old)
    model.graph.node.insert(index, new_node)
    return model.graph.node[index]  # protobuf inserted a copy
