"""StreamingConcat: a join, two channels-last streams concatenated along the channels.

Per pixel, the C0 channels of input 0 then the C1 channels of input 1, PE channels a word (PE
divides both).  Each input keeps its own element type; the output type holds both ranges.
Streamlining has moved each branch's scale past the concat as one per-channel scale, so the
integers need no lining up (unlike AddStreams).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import helper

from qnnflow.base.streams import StreamFormat
from qnnflow.hls.codegen.cpp import config_struct
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header
from qnnflow.hls.codegen.rtl_unit import RtlUnit, element_params
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import TwoStreamJoin, fold_problem

__all__ = ["StreamingConcat"]


class StreamingConcat(TwoStreamJoin):
    """Channel concat of two streams (FINN's StreamingConcat; ``ChannelsPerStream`` are C0, C1)."""

    FINN_OP_TYPES = ("StreamingConcat_Batch",)
    KERNEL_HEADER = "streaming_concat.hpp"
    RTL_SOURCES = ("qnnflow_streaming_concat.v", "qnnflow_lane.v")

    def get_nodeattr_types(self):
        return {
            "ChannelsPerStream": ("ints", True, []),
            "PE": ("i", False, 1),
            "inputDataType": ("s", True, ""),
            "input1DataType": ("s", True, ""),
            "outputDataType": ("s", True, ""),
            "numInputVectors": ("ints", True, []),  # [N] or [N, H, W]
            "NumChannels": ("i", False, 0),  # C0 + C1 (the dimension PE is searched over)
        }

    def _channels(self) -> list[int]:
        return list(self.get_nodeattr("ChannelsPerStream"))

    def node_problems(self):
        found = super().node_problems()
        channels = self._channels()
        if len(channels) != 2 or min(channels, default=0) < 1 or sum(channels) != self.get_nodeattr("NumChannels"):
            return found + [f"ChannelsPerStream={channels} must be two positive channel counts summing to "
                            f"NumChannels={self.get_nodeattr('NumChannels')}"]
        out = self.output_datatype()
        for attr in ("inputDataType", "input1DataType"):
            dt = self.datatype(attr)
            if dt.min() < out.min() or dt.max() > out.max():
                found.append(f"outputDataType={out.name} cannot hold {attr}={dt.name}")
        return found

    def folding_problems(self):
        pe = self.get_nodeattr("PE")
        return [p for p in (fold_problem("PE", pe, f"ChannelsPerStream[{k}]", c)
                            for k, c in enumerate(self._channels())) if p]

    def compute(self, a, b):
        c0, c1 = self._channels()
        self.check_shape(a, (*self._vectors(), c0))
        self.check_shape(b, (*self._vectors(), c1))
        return np.concatenate(self.join_inputs(a, b), axis=-1)

    def make_shape_compatible_op(self, model):
        return helper.make_node("Concat", list(self.onnx_node.input[:2]), [self.onnx_node.output[0]], axis=-1)

    def normal_input_shape(self):
        return (1, *self._vectors(), self._channels()[0])

    def folded_input_shape(self):
        pe = self.get_nodeattr("PE")
        return (1, *self._vectors(), self._channels()[0] // pe, pe)

    def normal_output_shape(self):
        return (1, *self._vectors(), sum(self._channels()))

    def folded_output_shape(self):
        pe = self.get_nodeattr("PE")
        return (1, *self._vectors(), sum(self._channels()) // pe, pe)

    def input_format(self, port: int = 0) -> StreamFormat:
        if port == 0:
            return super().input_format(0)
        return StreamFormat((*self._vectors(), self._channels()[1]), self.get_nodeattr("PE"),
                            self.datatype("input1DataType").name)

    def cycles(self) -> int:
        """One output word per cycle: (C0 + C1) / PE words per pixel."""
        self.check()
        return sum(self._channels()) // self.get_nodeattr("PE") * math.prod(self._vectors())

    def resources(self, board: dict) -> dict:
        """Loop control and a PE-lane multiplexer of the output width choosing the input."""
        self.check()
        cost.part_family(board)
        luts = cost.control_luts(board, cost.STREAMING_CONTROL_LUTS) + self.get_nodeattr("PE") * \
            self.output_datatype().bitwidth() * cost.mux_luts(2)
        return {"LUT": int(luts), "BRAM18": 0, "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node, pe = self.onnx_node, self.get_nodeattr("PE")
        c0, c1 = self._channels()
        constants = dict(PIXELS=math.prod(self._vectors()), WORDS0=c0 // pe, WORDS1=c1 // pe, PE=pe)
        types = self.join_types()
        in_fmt, out_fmt = formats(self)
        return Kernel(node.name, node.op_type, ident, in_fmt, out_fmt,
                      f"qnnflow::streaming_concat<{ident}_cfg>({{inp}}, {{inp1}}, {{out}});",
                      header(ident, node, self.KERNEL_HEADER, config_struct(f"{ident}_cfg", constants, types)))

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        check_emittable(self, model)
        pe, (c0, c1), out = self.get_nodeattr("PE"), self._channels(), self.output_datatype()
        params = dict(PE=pe, WORDS0=c0 // pe, WORDS1=c1 // pe, **element_params("IN0", self.input_datatype()),
                      **element_params("IN1", self.datatype("input1DataType")), OUT_BITS=out.bitwidth(),
                      OUT_BIPOLAR=int(out.name == "BIPOLAR"))
        in_fmt, out_fmt = formats(self)
        return RtlUnit(self.onnx_node.name, self.onnx_node.op_type, ident, "qnnflow_streaming_concat", params,
                       in_fmt, out_fmt, more_inputs=(self.input_format(1),))
