"""StreamingFIFO: a stream buffer of ``depth`` words between two nodes; the identity on data."""

from __future__ import annotations

import math

from onnx import helper

from qnnflow.base.streams import StreamFormat
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header
from qnnflow.hls.codegen.rtl_unit import RtlUnit
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import HWNode

__all__ = ["StreamingFIFO"]

SRL_MAX_DEPTH = 32  # "auto": one SRLC32E per bit up to here (Vivado's shift-register FIFO)


class StreamingFIFO(HWNode):
    """FIFO of ``depth`` words of ``folded_shape[-1]`` elements (FINN's StreamingFIFO names)."""

    KERNEL_HEADER = "fifo.hpp"
    RTL_SOURCES = ("qnnflow_fifo.v",)
    DERIVED = True

    _input_dt_attr = "dataType"
    _output_dt_attr = "dataType"

    def get_nodeattr_types(self):
        return {
            "depth": ("i", True, 0),
            "folded_shape": ("ints", True, []),  # per image, batch 1 first: (1, ..., words, lanes)
            "dataType": ("s", True, ""),
            "ram_style": ("s", False, "auto", {"auto", "block", "distributed", "ultra"}),
        }

    def node_problems(self):
        found = []
        if self.get_nodeattr("depth") < 1:
            found.append(f"depth={self.get_nodeattr('depth')} must be at least 1")
        shape = self.get_nodeattr("folded_shape")
        if len(shape) < 2 or min(shape) < 1:
            found.append(f"folded_shape={shape} must be at least two positive ints (..., words, lanes)")
        return found

    def compute(self, x):
        per_image = math.prod(self.get_nodeattr("folded_shape")[1:])
        if x.ndim < 1 or x.size != x.shape[0] * per_image:
            raise self.error(f"input '{self.onnx_node.input[0]}' has shape {x.shape}, but folded_shape="
                             f"{self.get_nodeattr('folded_shape')} gives {per_image} elements per image")
        return self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")

    def make_shape_compatible_op(self, model):
        return helper.make_node("Identity", [self.onnx_node.input[0]], [self.onnx_node.output[0]])

    def folded_input_shape(self):
        return tuple(self.get_nodeattr("folded_shape"))

    folded_output_shape = folded_input_shape

    def normal_input_shape(self):
        shape = self.get_nodeattr("folded_shape")
        return (*shape[:-2], shape[-2] * shape[-1])

    normal_output_shape = normal_input_shape

    def cycles(self) -> int:
        """One word per cycle: the words of one image."""
        self.check()
        return math.prod(self.get_nodeattr("folded_shape")[:-1])

    def storage(self) -> str:
        """Where the words live: 'srl', 'lutram' or 'bram' (auto: SRL up to 32 deep, LUTRAM up to 128)."""
        style, depth = self.get_nodeattr("ram_style"), self.get_nodeattr("depth")
        if style in ("block", "ultra"):
            return "bram"
        if depth <= SRL_MAX_DEPTH:
            return "srl"
        return "lutram" if cost.bound_style(depth, style) == "distributed" else "bram"

    def resources(self, board: dict) -> dict:
        """depth x width words in SRLs (32 per LUT), LUTRAM (64 per LUT) or RAMB18s, plus read/write
        address counters (cost.counter_luts each, after FINN's StreamingFIFO lut_estimation)."""
        self.check()
        cost.part_family(board)
        cost.uram_check(self.get_nodeattr("ram_style"), board, self.name)
        depth, width = self.get_nodeattr("depth"), self.instream_width()
        where = self.storage()
        if where == "srl":
            return {"LUT": cost.stream_fifo_luts(depth, width), "BRAM18": 0, "DSP": 0}
        luts, brams = 2 * cost.counter_luts(depth), 0
        if where == "lutram":
            luts += cost.lutram_luts(depth, width)
        else:
            brams = cost.bram18_count(depth, width)
        return {"LUT": int(luts), "BRAM18": brams, "DSP": 0}

    def stream_resources(self) -> dict:
        """Nothing beyond ``resources``: this node's buffer is the stream it writes (depth words)."""
        return {"LUT": 0, "BRAM18": 0, "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node = self.onnx_node
        fmt = StreamFormat(self.normal_input_shape()[1:], self.get_nodeattr("folded_shape")[-1],
                           self.input_datatype().name)
        return Kernel(node.name, node.op_type, ident, fmt, fmt,
                      f"qnnflow::fifo<{fmt.packed_bits}, {fmt.words}>({{inp}}, {{out}});",
                      header(ident, node, self.KERNEL_HEADER, ""), out_depth=self.get_nodeattr("depth"),
                      out_impl=self.storage())

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        """qnnflow_fifo of ``depth`` words: the unit is its output stream's buffer."""
        check_emittable(self, model)
        in_fmt, out_fmt = formats(self)
        params = dict(WIDTH=in_fmt.packed_bits, DEPTH=self.get_nodeattr("depth"))
        return RtlUnit(self.onnx_node.name, self.onnx_node.op_type, ident, "qnnflow_fifo", params, in_fmt, out_fmt,
                       buffers_output=True)
