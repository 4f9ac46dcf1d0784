"""Stream widths, decided in one place: width converters between nodes and the accelerator's ports.

Every stream of the dataflow region is written in its producer's words and read in its
consumer's words.  Where the two widths differ a StreamingDataWidthConverter node carries
the stream across (``insert_converters``); fold searches with the same placement and the
converter node's own cost model (``converter_cost``), so every converter the generated C++
holds is one the estimate counted.  Code generation inserts none: it refuses a graph whose
widths disagree (``width_problem``).

The accelerator's two AXI-Stream ports are the board's ``axi_width`` bits wide
(``port_formats``): an image crosses the bus as its elements' bits back to back
(``base.streams.PortFormat``), so a DMA feeds the accelerator directly.  Between a port
and the first or last kernel a port adapter re-packs the bits: the shift-register converter
of ``streams.hpp``'s ``repack``, costed like the converter node (``port_adapters``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.base.streams import PortFormat
from qnnflow.hls.nodes import cost, derived_kinds, yosys_fit
from qnnflow.hls.nodes.base import DOMAIN, STREAM_DEPTH
from qnnflow.hls.nodes.views import op_view
from qnnflow.hls.partition import Link, Region, hardware_region, is_hw

CONVERTER = "StreamingDataWidthConverter"


@dataclass
class Edge:
    """The stream ``tensor`` of ``link`` (a producer's output port to a consumer's input port).

    The two nodes may group its elements differently (an MVAU reads a (1, H, W, C) tensor as
    (1, H*W*C)): a converter works on the consumer's view, else on the producer's.
    """

    link: Link
    tensor: str
    shape: list[int]  # the consumer's per-image view, batch 1 first
    producer_shape: list[int]  # the producer's
    datatype: str
    costs: dict = field(default_factory=dict)  # (in width, out width) -> ConverterCost or None (illegal)


@dataclass(frozen=True)
class ConverterCost:
    res: tuple[int, int, int]  # cost.RESOURCES
    cycles: int
    at_producer: bool  # the converter works on the producer's view of the stream


def _batch_one(shape) -> list[int]:
    return [1, *[int(d) for d in shape[1:]]]


def stream_edges(model: ModelWrapper, region: Region) -> list[Edge]:
    """The streams between the nodes of ``region`` (its links, in order); a stream whose element type
    changes is an error."""
    edges = []
    for link in region.links:
        producer, consumer = region.nodes[link.producer], region.nodes[link.consumer]
        wrote = getCustomOp(producer).output_format(link.out_port)
        reads = getCustomOp(consumer).input_format(link.in_port)
        if wrote.datatype != reads.datatype:
            raise QnnflowError(
                f"node '{consumer.name}': reads {reads.datatype} elements but '{producer.name}' writes "
                f"{wrote.datatype}; set its input datatype to {wrote.datatype} (to_hw does) before folding")
        annotated = model.get_tensor_datatype(link.tensor)
        edges.append(Edge(link, link.tensor, [1, *reads.shape], [1, *wrote.shape],
                          annotated.name if annotated is not None else wrote.datatype))
    return edges


def edge_widths(region: Region, link: Link) -> tuple[int, int]:
    """(bits per word the producer writes, bits per word the consumer reads) on ``link``."""
    return (getCustomOp(region.nodes[link.producer]).output_format(link.out_port).packed_bits,
            getCustomOp(region.nodes[link.consumer]).input_format(link.in_port).packed_bits)


def converter_node(name: str, src: str, dst: str, in_width: int, out_width: int, shape, datatype: str):
    return helper.make_node(CONVERTER, [src], [dst], domain=DOMAIN, name=name, inWidth=int(in_width),
                            outWidth=int(out_width), shape=[int(d) for d in shape], dataType=datatype)


def converter_cost(edge: Edge, in_width: int, out_width: int, board: dict) -> ConverterCost | None:
    """The converter joining ``in_width``-bit to ``out_width``-bit words on ``edge``, costed by the converter
    node itself: on the consumer's view of the stream, else the producer's; None when neither is legal."""
    if in_width == out_width:
        return ConverterCost((0, 0, 0), 0, False)
    for shape, at_producer in ((edge.shape, False), (edge.producer_shape, True)):
        op = op_view(converter_node("probe", "x", "y", in_width, out_width, shape, edge.datatype))
        if not op.problems():
            res = op.resources_with_stream(board)
            return ConverterCost(tuple(int(res[r]) for r in cost.RESOURCES), int(op.cycles()), at_producer)
    return None


def strip_derived(model: ModelWrapper) -> int:
    """Remove width converters and FIFOs (the derived node kinds) from the region, in place; returns how many."""
    derived = derived_kinds()
    removed = 0
    for node in [n for n in model.graph.node if is_hw(n) and n.op_type in derived]:
        if any(out.name == node.output[0] for out in model.graph.output):
            raise QnnflowError(f"node '{node.name}': a {node.op_type} produces the graph output; it cannot be removed")
        for consumer in model.find_consumers(node.output[0]) or []:
            for i, name in enumerate(consumer.input):
                if name == node.output[0]:
                    consumer.input[i] = node.input[0]
        model.graph.node.remove(node)
        removed += 1
    return removed


def insert_converters(model: ModelWrapper, board: dict) -> list[str]:
    """Insert a converter wherever a producer's output width differs from its consumer's input width
    (in place); returns the new nodes' names."""
    region = hardware_region(model)
    taken = {n.name for n in model.graph.node}
    names = []
    for edge in stream_edges(model, region):
        producer, consumer = region.nodes[edge.link.producer], region.nodes[edge.link.consumer]
        a, c = edge_widths(region, edge.link)
        if a == c:
            continue
        placed = converter_cost(edge, a, c, board)
        if placed is None:
            raise QnnflowError(
                f"node '{consumer.name}': its {c}-bit input words cannot be converted from the {a}-bit output words "
                f"of '{producer.name}'; choose PE/SIMD so that one width divides the tensor's last axis")
        k = len(names)
        while f"{CONVERTER}_{k}" in taken:
            k += 1
        name = f"{CONVERTER}_{k}"
        taken.add(name)
        src, dst = edge.tensor, f"{name}_out"
        model.set_tensor_shape(dst, model.get_tensor_shape(src))
        model.set_tensor_datatype(dst, model.get_tensor_datatype(src))
        for i, tensor in enumerate(consumer.input):  # a stream has one reader (forks are DuplicateStreams)
            if tensor == src:
                consumer.input[i] = dst
        shape = edge.producer_shape if placed.at_producer else edge.shape
        model.graph.node.insert(list(model.graph.node).index(consumer),
                                converter_node(name, src, dst, a, c, shape, edge.datatype))
        names.append(name)
    return names


def width_problem(model: ModelWrapper, region: Region) -> str | None:
    """Why the region's streams cannot be connected as they are (widths that differ), or None."""
    for link in region.links:
        a, c = edge_widths(region, link)
        if a != c:
            return (f"node '{region.nodes[link.consumer].name}' reads {c}-bit words but "
                    f"'{region.nodes[link.producer].name}' writes {a}-bit words; run the fold step "
                    f"(or hls.widths.insert_converters) to insert the width converter")
    return None


# ----- the AXI-Stream ports ----------------------------------------------------------------------


def axi_width(board: dict) -> int:
    """The board's AXI data width for the accelerator's ports (builds/boards/*.yaml ``axi_width``)."""
    width = board.get("axi_width")
    if not isinstance(width, int) or isinstance(width, bool) or width < 8 or width % 8:
        raise QnnflowError(f"board '{board.get('name')}': axi_width={width!r} must be a positive multiple of 8 "
                           f"(64 on Zynq-7000 HP ports, 128 on Zynq UltraScale+)")
    return width


def port_formats(region: Region, board: dict) -> tuple[PortFormat, PortFormat]:
    """The input and output port formats of the accelerator of ``region`` on ``board``."""
    first, last = getCustomOp(region.nodes[0]), getCustomOp(region.nodes[-1])
    bits = axi_width(board)
    return (PortFormat(first.normal_input_shape()[1:], first.input_datatype().name, bits),
            PortFormat(last.normal_output_shape()[1:], last.output_datatype().name, bits))


@dataclass(frozen=True)
class PortAdapter:
    """A port adapter: ``in_words`` words of ``in_bits`` -> ``out_words`` words of ``out_bits`` per image."""

    name: str  # "input port" or "output port"
    in_bits: int
    out_bits: int
    in_words: int
    out_words: int
    writes_stream: bool  # it writes a stream inside the region (the input adapter), which it pays for

    def cycles(self) -> int:
        return cost.repack_cycles(self.in_words, self.out_words)

    def resources(self, board: dict | None = None) -> dict:
        """The repack logic and, for the input adapter, its stream; on a board costed with the Yosys-fitted
        model (hls/nodes/yosys_fit.py), that model's LUTs."""
        formula = {"LUT": self.lut_terms()["logic"] + self.stream_resources()["LUT"], "BRAM18": 0, "DSP": 0}
        return yosys_fit.refit_resources(self, board, formula) if yosys_fit.uses_yosys_fit(board) else formula

    def lut_terms(self, board: dict | None = None) -> dict:
        return {"logic": cost.repack_luts(self.in_bits, self.out_bits, max(self.in_words, self.out_words))}

    def stream_resources(self) -> dict:
        luts = cost.stream_fifo_luts(STREAM_DEPTH, self.out_bits) if self.writes_stream else 0
        return {"LUT": luts, "BRAM18": 0, "DSP": 0}


def input_adapter(port: PortFormat, kernel_bits: int) -> PortAdapter:
    return PortAdapter("input port", port.axi_bits, kernel_bits, port.words, port.image_bits // kernel_bits, True)


def output_adapter(port: PortFormat, kernel_bits: int) -> PortAdapter:
    return PortAdapter("output port", kernel_bits, port.axi_bits, port.image_bits // kernel_bits, port.words, False)


def port_adapters(region: Region, board: dict) -> tuple[PortAdapter, PortAdapter]:
    """The adapters of ``region``'s accelerator on ``board``, at the first and last node's current folding."""
    port_in, port_out = port_formats(region, board)
    first, last = getCustomOp(region.nodes[0]), getCustomOp(region.nodes[-1])
    return input_adapter(port_in, first.instream_width()), output_adapter(port_out, last.outstream_width())

