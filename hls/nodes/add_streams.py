"""AddStreams: a join, the elementwise integer sum of two channels-last streams of the same shape.

It ends a residual block: streamlining has lined up the integers of both branches (one scale
for both, an exact integer multiply on a branch where the scales differ by an integer ratio),
so the sum is exact.  PE channels of each input are read and added per cycle.
"""

from __future__ import annotations

from onnx import helper

from qnnflow.base.streams import StreamFormat
from qnnflow.hls.codegen.cpp import config_struct
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header
from qnnflow.hls.codegen.rtl_unit import RtlUnit, element_params
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import TwoStreamJoin

__all__ = ["AddStreams"]


class AddStreams(TwoStreamJoin):
    """Sum of two streams (FINN's AddStreams; ``input1DataType`` is the second input's type)."""

    FINN_OP_TYPES = ("AddStreams_Batch",)
    KERNEL_HEADER = "add_streams.hpp"
    RTL_SOURCES = ("qnnflow_add_streams.v", "qnnflow_lane.v")

    def get_nodeattr_types(self):
        return {
            "NumChannels": ("i", True, 0),
            "PE": ("i", False, 1),
            "inputDataType": ("s", True, ""),
            "input1DataType": ("s", True, ""),
            "outputDataType": ("s", True, ""),
            "numInputVectors": ("ints", True, []),  # [N] or [N, H, W]
        }

    def node_problems(self):
        found = super().node_problems()
        if found:
            return found
        a, b, out = self.input_datatype(), self.datatype("input1DataType"), self.output_datatype()
        lo, hi = int(a.min()) + int(b.min()), int(a.max()) + int(b.max())
        if lo < out.min() or hi > out.max():
            found.append(f"sums of {a.name} and {b.name} span [{lo}, {hi}], which outputDataType={out.name} "
                         f"cannot hold")
        return found

    def compute(self, a, b):
        shape = (*self._vectors(), self.get_nodeattr("NumChannels"))
        self.check_shape(a, shape)
        if b.shape != a.shape:
            raise self.error(f"input '{self.onnx_node.input[1]}' has shape {b.shape}, expected {a.shape} "
                             f"(the shape of '{self.onnx_node.input[0]}')")
        first, second = self.join_inputs(a, b)
        return first + second

    def make_shape_compatible_op(self, model):
        return helper.make_node("Add", list(self.onnx_node.input[:2]), [self.onnx_node.output[0]])

    def input_format(self, port: int = 0) -> StreamFormat:
        fmt = super().input_format(0)
        return fmt if port == 0 else StreamFormat(fmt.shape, fmt.lanes, self.datatype("input1DataType").name)

    def resources(self, board: dict) -> dict:
        """PE adders of the output width and loop control."""
        self.check()
        cost.part_family(board)
        luts = cost.control_luts(board, cost.STREAMING_CONTROL_LUTS) + self.get_nodeattr("PE") * \
            self.output_datatype().bitwidth()
        return {"LUT": int(luts), "BRAM18": 0, "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node, g = self.onnx_node, self.get_nodeattr
        constants = dict(WORDS=self.cycles(), PE=g("PE"))
        types = self.join_types()
        in_fmt, out_fmt = formats(self)
        return Kernel(node.name, node.op_type, ident, in_fmt, out_fmt,
                      f"qnnflow::add_streams<{ident}_cfg>({{inp}}, {{inp1}}, {{out}});",
                      header(ident, node, self.KERNEL_HEADER, config_struct(f"{ident}_cfg", constants, types)))

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        check_emittable(self, model)
        params = dict(PE=self.get_nodeattr("PE"), **element_params("IN0", self.input_datatype()),
                      **element_params("IN1", self.datatype("input1DataType")),
                      OUT_BITS=self.output_datatype().bitwidth())
        in_fmt, out_fmt = formats(self)
        return RtlUnit(self.onnx_node.name, self.onnx_node.op_type, ident, "qnnflow_add_streams", params, in_fmt,
                       out_fmt, more_inputs=(self.input_format(1),))
