"""The dataflow partition: hardware nodes must form one contiguous region.

Nodes before it (the float head that prepares the input) and after it (a float tail,
e.g. the classifier's scale and bias) run on the host. A node with hardware both
upstream and downstream that is not a hardware node is an error naming it: the stream
would have to leave the accelerator in the middle.  That includes a Flatten/Reshape:
``to_hw`` removes those between dataflow nodes (the next MVAU reads the stream directly).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.nodes.base import DOMAIN

# Reshapes keep a stream's element order; to_hw leaves none inside the region.
STREAM_TRANSPARENT = ("Flatten", "Reshape")
LAYOUT_OPS = ("Transpose", *STREAM_TRANSPARENT)


@dataclass
class Partition:
    head: list[str]
    hardware: list[str]
    tail: list[str]


def is_hw(node) -> bool:
    return node.domain == DOMAIN


def _why_not(model: ModelWrapper, node) -> str:
    if node.op_type == "MultiThreshold":
        return "its input is not an integer tensor (was the graph streamlined?)"
    if node.op_type in ("Mul", "Add", "Sub", "Div"):
        return (
            "a float scale or bias could not be absorbed into thresholds (before a TopK, only a positive "
            "scalar scale and a scalar bias can be dropped)"
        )
    if node.op_type in STREAM_TRANSPARENT:
        return ("to_hw removes a reshape between dataflow nodes only where the next one reads its input as a "
                "flat stream (an MVAU) or the tensor keeps its shape; move the reshape after that node or remove it")
    return f"qnnflow has no dataflow node for {node.op_type}; move it before or after the network, or remove it"


def _nearest_hw_producer(model: ModelWrapper, node) -> str:
    stack = list(node.input)
    while stack:
        producer = model.find_producer(stack.pop())
        if producer is not None:
            if is_hw(producer):
                return producer.name
            stack.extend(producer.input)
    return "?"


def find_partition(model: ModelWrapper) -> Partition:
    nodes = list(model.graph.node)
    if not any(is_hw(n) for n in nodes):
        raise QnnflowError("no node could be converted to hardware; does the model have quantized MatMul/Conv layers?")
    below_hw: set[str] = set()  # tensors computed from some hardware node's output
    for node in nodes:
        if is_hw(node) or any(i in below_hw for i in node.input):
            below_hw.update(node.output)
    above_hw: set[str] = set()  # tensors that some hardware node reads, directly or not
    for node in reversed(nodes):
        if is_hw(node) or any(o in above_hw for o in node.output):
            above_hw.update(i for i in node.input if model.get_initializer(i) is None)
    head, hardware, tail, inside = [], [], [], []
    for node in nodes:
        after = any(i in below_hw for i in node.input)
        before = any(o in above_hw for o in node.output)
        if is_hw(node):
            hardware.append(node.name)
        elif after and before:
            inside.append(node)
        elif after:
            tail.append(node.name)
        else:
            head.append(node.name)
    if inside:
        # name the layer at fault, not a layout change that lowering put next to it
        node = next((n for n in inside if n.op_type not in LAYOUT_OPS), inside[0])
        raise QnnflowError(
            f"node '{node.name}' ({node.op_type}) sits inside the dataflow region (after "
            f"'{_nearest_hw_producer(model, node)}') "
            f"and cannot become hardware: {_why_not(model, node)}"
        )
    return Partition(head, hardware, tail)


@dataclass
class Region:
    """The hardware region as a chain: its nodes in stream order, the tensor entering and leaving."""

    nodes: list
    input: str
    output: str


def hardware_region(model: ModelWrapper) -> Region:
    """The hardware region of a to_hw graph as a single chain of nodes; QnnflowError naming the node otherwise."""
    names = set(find_partition(model).hardware)
    nodes = [n for n in model.graph.node if n.name in names]
    produced_inside = {o for n in nodes for o in n.output}
    current = None
    for node in nodes:
        # input 0 is the stream; the others are parameters
        dynamic = [i for i in node.input if i and model.get_initializer(i) is None][:1]
        if current is None:
            if len(dynamic) != 1 or dynamic[0] in produced_inside:
                raise QnnflowError(f"node '{node.name}' ({node.op_type}): the hardware region must start with a "
                                   f"node reading one stream, but it reads {dynamic}")
            region_input = dynamic[0]
        elif dynamic != [current]:
            raise QnnflowError(f"node '{node.name}' ({node.op_type}) reads {dynamic}, not only '{current}' from the "
                               f"node before it; the dataflow region must be a single chain of layers (no branches)")
        if len(node.output) != 1:
            raise QnnflowError(f"node '{node.name}' ({node.op_type}) has {len(node.output)} outputs; hardware "
                               f"nodes stream one output")
        if current is not None:
            outside = [c.name for c in model.find_consumers(current) or [] if c.name not in names]
            if outside or any(o.name == current for o in model.graph.output):
                raise QnnflowError(f"tensor '{current}' inside the hardware region is also read by "
                                   f"{outside or 'the graph output'}; the accelerator has one output stream")
        current = node.output[0]
    return Region(nodes, region_input, current)


def host_graph(model: ModelWrapper, names, input_name: str | None = None,
               output_name: str | None = None) -> ModelWrapper:
    """A copy of ``model`` holding only the nodes ``names`` (the host head or tail), with ``input_name``
    as its input or ``output_name`` as its output instead of the model's own."""
    part = ModelWrapper(copy.deepcopy(model.model))
    for node in [n for n in part.graph.node if n.name not in set(names)]:
        part.graph.node.remove(node)
    for new, ports in ((input_name, part.graph.input), (output_name, part.graph.output)):
        if new is None:
            continue
        del ports[:]
        # a graph input or output has no value_info entry of its own (one entry per tensor)
        for info in [v for v in part.graph.value_info if v.name == new]:
            part.graph.value_info.remove(info)
        ports.append(helper.make_tensor_value_info(new, TensorProto.FLOAT, model.get_tensor_shape(new)))
    return part
