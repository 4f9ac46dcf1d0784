"""The dataflow partition: hardware nodes must form one contiguous region, a DAG of streams.

Nodes before it (the float head that prepares the input) and after it (a float tail,
e.g. the classifier's scale and bias) run on the host. A node with hardware both
upstream and downstream that is not a hardware node is an error naming it: the stream
would have to leave the accelerator in the middle.  That includes a Flatten/Reshape:
``to_hw`` removes those between dataflow nodes (the next MVAU reads the stream directly).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.nodes import node_kinds
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


@dataclass(frozen=True)
class Link:
    """A stream inside the region: output ``out_port`` of ``nodes[producer]`` read as stream input
    ``in_port`` of ``nodes[consumer]``."""

    producer: int
    out_port: int
    consumer: int
    in_port: int
    tensor: str


@dataclass
class Region:
    """The hardware region as a DAG: its nodes in topological (graph) order, the tensor entering and
    leaving, and the streams between the nodes (a chain has one per consecutive pair)."""

    nodes: list
    input: str
    output: str
    links: list[Link] = field(default_factory=list)


def stream_input_count(node) -> int:
    """How many of a dataflow node's first dynamic inputs are streams (a join reads several)."""
    kind = node_kinds().get(node.op_type)
    return kind.STREAM_INPUTS if kind is not None else 1


def _fork_error(tensor: str, readers: list[str]) -> QnnflowError:
    return QnnflowError(f"node '{readers[1]}' reads '{tensor}', which '{readers[0]}' reads too: a stream has one "
                        f"reader, a fork needs a DuplicateStreams node (to_hw inserts one where a tensor feeds "
                        f"two branches)")


def hardware_region(model: ModelWrapper) -> Region:
    """The hardware region of a to_hw graph as a DAG of streams (one input, one output, each stream read
    once: forks are DuplicateStreams nodes); QnnflowError naming the node otherwise."""
    names = set(find_partition(model).hardware)
    nodes = [n for n in model.graph.node if n.name in names]
    produced: dict[str, tuple[int, int]] = {}  # tensor -> (node index, output port)
    for i, node in enumerate(nodes):
        for k, tensor in enumerate(node.output):
            produced[tensor] = (i, k)
    links, region_input, input_reader, read_by = [], None, None, {}
    for i, node in enumerate(nodes):
        want = stream_input_count(node)
        # the first ``want`` dynamic inputs are streams; the others (initializers) are parameters
        streams = [t for t in node.input if t and model.get_initializer(t) is None][:want]
        if len(streams) != want:
            raise QnnflowError(f"node '{node.name}' ({node.op_type}) reads {streams}, but it needs {want} input "
                               f"stream(s)")
        for port, tensor in enumerate(streams):
            if tensor in read_by:
                raise _fork_error(tensor, [read_by[tensor], node.name])
            read_by[tensor] = node.name
            if tensor in produced:
                p, k = produced[tensor]
                if p >= i:
                    raise QnnflowError(f"node '{node.name}' ({node.op_type}) reads '{tensor}' before "
                                       f"'{nodes[p].name}' writes it; sort the graph topologically")
                links.append(Link(p, k, i, port, tensor))
            elif region_input is None:
                region_input, input_reader = tensor, node
            else:
                raise QnnflowError(f"node '{node.name}' ({node.op_type}) reads '{tensor}' from outside the hardware "
                                   f"region, besides '{region_input}' read by '{input_reader.name}': the accelerator "
                                   f"has one input stream")
    graph_outputs = {o.name for o in model.graph.output}
    unread = [t for t in produced if t not in read_by]
    for tensor in produced:
        outside = [c.name for c in model.find_consumers(tensor) or [] if c.name not in names]
        if tensor in read_by and (outside or tensor in graph_outputs):
            raise QnnflowError(f"tensor '{tensor}' inside the hardware region is also read by "
                               f"{outside or 'the graph output'}; the accelerator has one output stream")
    if len(unread) != 1:
        writers = [nodes[produced[t][0]].name for t in unread]
        raise QnnflowError(f"the hardware region must end in one stream, but {unread} (written by {writers}) "
                           f"leave it; every other output must be read by a node of the region")
    return Region(nodes, region_input, unread[0], links)


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
