"""Small graph-editing helpers shared by the transforms."""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

ELEMENTWISE_CONST_OPS = ("Mul", "Add", "Sub", "Div")


def const_operand(model: ModelWrapper, node) -> tuple[int, np.ndarray] | None:
    """(index of the dynamic input, constant value) for a binary op with one initializer input."""
    if len(node.input) != 2:
        return None
    consts = [model.get_initializer(name) for name in node.input]
    if consts[0] is None and consts[1] is not None:
        return 0, consts[1]
    if consts[1] is None and consts[0] is not None:
        return 1, consts[0]
    return None


def single_consumer(model: ModelWrapper, tensor: str):
    """The only node reading ``tensor``, or None when there are zero or several (or it is a graph output)."""
    if tensor in [o.name for o in model.graph.output]:
        return None
    consumers = model.find_consumers(tensor)
    return consumers[0] if consumers is not None and len(consumers) == 1 else None


def fresh_name(model: ModelWrapper, base: str) -> str:
    """``base_N`` with the smallest N not yet taken: deterministic, so the same input gives the same graph."""
    base = base or "t"
    taken = set(model.get_all_tensor_names()) | {n.name for n in model.graph.node}
    index = 0
    while f"{base}_{index}" in taken:
        index += 1
    return f"{base}_{index}"


def add_const(model: ModelWrapper, value: np.ndarray, base: str) -> str:
    name = fresh_name(model, base)
    model.set_initializer(name, np.asarray(value, dtype=np.float32))
    return name


def auto_pad(node) -> str:
    """A Conv/MaxPool's ``auto_pad`` mode as a string ('NOTSET' when absent)."""
    for a in node.attribute:
        if a.name == "auto_pad":
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return "NOTSET"


def insert_after(model: ModelWrapper, node, op_type: str, const: np.ndarray | str, **attrs):
    """Insert ``op_type(node.output[0], const)`` right after ``node``; consumers then read the new node.

    ``const`` is a value (added as a new initializer) or the name of an existing tensor."""
    old_out = node.output[0]
    mid = fresh_name(model, node.name)
    model.set_tensor_shape(mid, model.get_tensor_shape(old_out))
    node.output[0] = mid
    const_name = const if isinstance(const, str) else add_const(model, const, node.name + "_" + op_type.lower())
    new = helper.make_node(op_type, [mid, const_name], [old_out], name=fresh_name(model, op_type), **attrs)
    model.graph.node.insert(list(model.graph.node).index(node) + 1, new)
    return new


def insert_before(model: ModelWrapper, node, op_type: str, const: np.ndarray, index: int = 0):
    """Insert ``op_type(x, const)`` on input ``index`` of ``node``."""
    old_in = node.input[index]
    mid = fresh_name(model, node.name)
    model.set_tensor_shape(mid, model.get_tensor_shape(old_in))
    const_name = add_const(model, const, node.name + "_" + op_type.lower())
    new = helper.make_node(op_type, [old_in, const_name], [mid], name=fresh_name(model, op_type))
    node.input[index] = mid
    model.graph.node.insert(list(model.graph.node).index(node), new)
    return new


def remove_node(model: ModelWrapper, node) -> None:
    """Remove a single-input pass-through node, wiring its consumers to its input."""
    src, dst = node.input[0], node.output[0]
    outputs = [o.name for o in model.graph.output]
    if dst in outputs:
        producer = model.find_producer(src)
        producer.output[list(producer.output).index(src)] = dst
    else:
        for consumer in model.find_consumers(dst) or []:
            for i, name in enumerate(consumer.input):
                if name == dst:
                    consumer.input[i] = src
    model.graph.node.remove(node)


def head_nodes(model: ModelWrapper) -> set[str]:
    """Names of the nodes before the input quantizer: they only prepare the float input.

    A node belongs to the head while none of its ancestors is a quantizer or a
    thresholding node. The head runs on the host, unchanged, so its float arithmetic
    stays exactly as the exported model computes it.
    """
    quantizing = {"Quant", "BipolarQuant", "MultiThreshold"}
    downstream: set[str] = set()
    head: set[str] = set()
    for node in model.graph.node:
        dynamic = [i for i in node.input if i and model.get_initializer(i) is None]
        after_quant = any(i in downstream for i in dynamic)
        if after_quant or (node.op_type in quantizing and dynamic):
            downstream.update(node.output)
        if dynamic and not after_quant:
            head.add(node.name)
    return head


def broadcast_channelwise(value: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """``value`` as a vector over ``axis`` of ``shape`` when it is constant along every other axis."""
    full = np.broadcast_to(np.asarray(value, dtype=np.float64), shape)
    moved = np.moveaxis(full, axis, -1).reshape(-1, shape[axis])
    if not np.all(moved == moved[:1]):
        return None
    return moved[0]


def smallest_int_type(lo: float, hi: float) -> DataType:
    """The narrowest integer DataType (BINARY, then UINTb/INTb) holding every value in [lo, hi]."""
    for bits in range(1, 33):
        for dtype in (DataType[f"UINT{bits}"], DataType[f"INT{bits}"]) if bits > 1 else (DataType["BINARY"],):
            if dtype.min() <= lo and hi <= dtype.max():
                return dtype
    return DataType["INT64"]
