"""DuplicateStreams: a fork, one channels-last stream copied to two output streams.

The two copies feed the branches of a residual block (or a concat) and meet again at a join
(AddStreams).  While the long branch fills (a sliding window gathering its first rows), the
other branch's words wait in its output stream: ``outFIFODepths`` holds each output stream's
depth, which hls/widths.py sizes from the branches' cycles after folding
(``size_branch_fifos``); a deeper stream is a memory this node declares and pays for.
"""

from __future__ import annotations

from onnx import helper

from qnnflow.base.values import to_carrier
from qnnflow.hls.codegen.cpp import config_struct, element_type
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header
from qnnflow.hls.codegen.rtl_unit import RtlUnit
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import STREAM_DEPTH, ChannelStreamNode, Memory

__all__ = ["DuplicateStreams"]

OUTPUTS = 2  # two branches per fork; more branches chain forks


def fifo_storage(depth: int) -> str:
    """Where a stream of ``depth`` words lives: shift registers up to 32, else where an 'auto' memory of that
    depth is bound (cost.bound_style: LUTRAM up to 128, block RAM beyond)."""
    if depth <= cost.SRL_DEPTH:
        return "srl"
    return "lutram" if cost.bound_style(depth, "auto") == "distributed" else "bram"


def fifo_cost(depth: int, width: int) -> dict:
    """{'LUT', 'BRAM18'} of a stream FIFO of ``depth`` words as ``fifo_storage`` places it."""
    if fifo_storage(depth) == "srl":
        return {"LUT": cost.stream_fifo_luts(depth, width), "BRAM18": 0}
    mem = cost.memory(depth, width, "auto")
    return {"LUT": mem["LUT"] + 2 * cost.counter_luts(depth), "BRAM18": mem["BRAM18"]}


class DuplicateStreams(ChannelStreamNode):
    """Fork of a channels-last stream into two identical streams (FINN's DuplicateStreams attribute names)."""

    FINN_OP_TYPES = ("DuplicateStreams_Batch",)
    KERNEL_HEADER = "duplicate_streams.hpp"
    RTL_SOURCES = ("qnnflow_duplicate_streams.v",)
    _output_dt_attr = "inputDataType"

    def get_nodeattr_types(self):
        return {
            "NumChannels": ("i", True, 0),
            "PE": ("i", False, 1),
            "NumOutputStreams": ("i", False, OUTPUTS),
            "inputDataType": ("s", True, ""),
            "numInputVectors": ("ints", True, []),  # [N] or [N, H, W]
            "outFIFODepths": ("ints", False, []),  # words per output stream; empty: the default depth
        }

    def node_problems(self):
        found = super().node_problems()
        if self.get_nodeattr("NumOutputStreams") != OUTPUTS or len(self.onnx_node.output) != OUTPUTS:
            found.append(f"NumOutputStreams={self.get_nodeattr('NumOutputStreams')} with "
                         f"{len(self.onnx_node.output)} outputs: a fork has exactly {OUTPUTS} (chain forks for more)")
        depths = self.get_nodeattr("outFIFODepths")
        if depths and (len(depths) != OUTPUTS or min(depths) < 1):
            found.append(f"outFIFODepths={depths} must be empty or {OUTPUTS} positive depths")
        return found

    def fifo_depths(self) -> list[int]:
        """The depth of each output stream (at least the region's default)."""
        return [max(d, STREAM_DEPTH) for d in self.get_nodeattr("outFIFODepths")] or [STREAM_DEPTH] * OUTPUTS

    def make_shape_compatible_op(self, model):
        # ONNX's one-input, two-output op whose outputs both have the input's shape (the mask's element
        # type is bool, but only the shape is taken)
        return helper.make_node("Dropout", [self.onnx_node.input[0]], list(self.onnx_node.output))

    def compute(self, x):
        self.check_shape(x, (*self._vectors(), self.get_nodeattr("NumChannels")))
        return self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")

    def execute_node(self, context, graph):
        self.check()
        copy = to_carrier(self.compute(self._fetch(context, graph, self.onnx_node.input[0])))
        for name in self.onnx_node.output:
            context[name] = copy

    def infer_node_datatype(self, model):
        super().infer_node_datatype(model)
        for name in self.onnx_node.output[1:]:
            model.set_tensor_datatype(name, self.output_datatype())

    def memories(self):
        """The output streams deeper than the default: the words a branch buffers while the other fills."""
        return [Memory(f"out{k}_fifo", 1, depth, self.outstream_width(), "auto")
                for k, depth in enumerate(self.fifo_depths()) if depth > STREAM_DEPTH]

    def resources(self, board: dict) -> dict:
        """Loop control (the copy is wiring), plus the deep output streams (``memories``)."""
        self.check()
        cost.part_family(board)
        luts = cost.control_luts(board, cost.STREAMING_CONTROL_LUTS)
        brams = 0
        for mem in self.memories():
            fifo = fifo_cost(mem.depth, mem.width)
            luts, brams = luts + fifo["LUT"], brams + fifo["BRAM18"]
        return {"LUT": int(luts), "BRAM18": brams, "DSP": 0}

    def stream_resources(self) -> dict:
        """The output streams at the default depth (a deeper one is in ``resources``)."""
        shallow = sum(1 for depth in self.fifo_depths() if depth <= STREAM_DEPTH)
        return {"LUT": shallow * cost.stream_fifo_luts(STREAM_DEPTH, self.outstream_width()), "BRAM18": 0, "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node, g = self.onnx_node, self.get_nodeattr
        constants = dict(WORDS=self.cycles(), PE=g("PE"))
        body = config_struct(f"{ident}_cfg", constants, dict(elem_t=element_type(self.input_datatype().name)))
        streams = [(depth, fifo_storage(depth)) if depth > STREAM_DEPTH else (None, None)
                   for depth in self.fifo_depths()]
        in_fmt, out_fmt = formats(self)
        return Kernel(node.name, node.op_type, ident, in_fmt, out_fmt,
                      f"qnnflow::duplicate_streams<{ident}_cfg>({{inp}}, {{out}}, {{out1}});",
                      header(ident, node, self.KERNEL_HEADER, body), out_depth=streams[0][0], out_impl=streams[0][1],
                      more_outputs=tuple(streams[1:]))

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        """qnnflow_duplicate_streams; each output stream's FIFO is as deep as ``fifo_depths`` says (the wrapper)."""
        check_emittable(self, model)
        in_fmt, out_fmt = formats(self)
        return RtlUnit(self.onnx_node.name, self.onnx_node.op_type, ident, "qnnflow_duplicate_streams",
                       dict(WIDTH=in_fmt.packed_bits), in_fmt, out_fmt, more_outputs=(self.output_format(1),),
                       out_depths=tuple(self.fifo_depths()))
