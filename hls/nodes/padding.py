"""FMPadding: constant padding of an NHWC image stream, (N, H, W, C) -> (N, H+top+bottom, W+left+right, C)."""

from __future__ import annotations

import numpy as np

from qnnflow.base.streams import encode_elements
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, pixel_stream_kernel
from qnnflow.hls.codegen.rtl_unit import RtlUnit
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import HWNode, fold_problem

__all__ = ["FMPadding"]


class FMPadding(HWNode):
    """Feature-map padding (FINN's FMPadding attribute names); output DataType = inputDataType."""

    FINN_OP_TYPES = ("FMPadding_Batch",)
    KERNEL_HEADER = "padding.hpp"
    RTL_SOURCES = ("qnnflow_padding.v",)

    _output_dt_attr = "inputDataType"

    def get_nodeattr_types(self):
        return {
            "ImgDim": ("ints", True, []),
            "Padding": ("ints", True, []),  # [top, left, bottom, right]
            "NumChannels": ("i", True, 0),
            "SIMD": ("i", False, 1),
            "inputDataType": ("s", True, ""),
            "PadValue": ("i", False, 0),
        }

    def node_problems(self):
        found = []
        dim, pad = self.get_nodeattr("ImgDim"), self.get_nodeattr("Padding")
        if len(dim) != 2 or min(dim) < 1:
            found.append(f"ImgDim={dim} must be two positive ints [h, w]")
        if len(pad) != 4 or min(pad) < 0:
            found.append(f"Padding={pad} must be four non-negative ints [top, left, bottom, right]")
        if self.get_nodeattr("NumChannels") < 1:
            found.append(f"NumChannels={self.get_nodeattr('NumChannels')} must be at least 1")
        dt, value = self.input_datatype(), self.get_nodeattr("PadValue")
        if not dt.allowed(value):
            found.append(f"PadValue={value} is not a value of inputDataType={dt.name}")
        return found

    def folding_problems(self):
        p = fold_problem("SIMD", self.get_nodeattr("SIMD"), "NumChannels", self.get_nodeattr("NumChannels"))
        return [p] if p else []

    def parallel_knobs(self):
        return {"SIMD": "NumChannels"}

    def _out_hw(self) -> tuple[int, int]:
        (h, w), (top, left, bottom, right) = self.get_nodeattr("ImgDim"), self.get_nodeattr("Padding")
        return h + top + bottom, w + left + right

    def compute(self, x):
        (h, w), c = self.get_nodeattr("ImgDim"), self.get_nodeattr("NumChannels")
        self.check_shape(x, (h, w, c), " NHWC")
        xi = self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")
        top, left, bottom, right = self.get_nodeattr("Padding")
        widths = ((0, 0), (top, bottom), (left, right), (0, 0))
        return np.pad(xi, widths, constant_values=self.get_nodeattr("PadValue"))

    def make_shape_compatible_op(self, model):
        return self.make_const_shape_op((self.batch_of(model), *self.normal_output_shape()[1:]))

    def normal_input_shape(self):
        h, w = self.get_nodeattr("ImgDim")
        return (1, h, w, self.get_nodeattr("NumChannels"))

    def normal_output_shape(self):
        return (1, *self._out_hw(), self.get_nodeattr("NumChannels"))

    def folded_input_shape(self):
        simd = self.get_nodeattr("SIMD")
        return (*self.normal_input_shape()[:-1], self.get_nodeattr("NumChannels") // simd, simd)

    def folded_output_shape(self):
        simd = self.get_nodeattr("SIMD")
        return (*self.normal_output_shape()[:-1], self.get_nodeattr("NumChannels") // simd, simd)

    def cycles(self) -> int:
        """One SIMD-wide word out per cycle: (H+top+bottom)*(W+left+right)*C/SIMD."""
        self.check()
        oh, ow = self._out_hw()
        return oh * ow * self.get_nodeattr("NumChannels") // self.get_nodeattr("SIMD")

    def resources(self, board: dict) -> dict:
        """Own estimate: row/column counters plus a 2:1 mux (data or PadValue) per output bit; no memory."""
        self.check()
        cost.part_family(board)
        oh, ow = self._out_hw()
        counters = cost.counter_luts(oh) + cost.counter_luts(ow) + cost.counter_luts(self.get_nodeattr("NumChannels"))
        luts = cost.control_luts(board, cost.MOVER_LUTS) + counters + self.outstream_width()
        return {"LUT": int(luts), "BRAM18": 0, "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        g = self.get_nodeattr
        (h, w), (top, left, bottom, right), ch = g("ImgDim"), g("Padding"), g("NumChannels")
        constants = dict(H=h, W=w, CH=ch, SIMD=g("SIMD"), TOP=top, LEFT=left, BOTTOM=bottom, RIGHT=right,
                         PAD_VALUE=g("PadValue"))
        return pixel_stream_kernel(self, ident, "SIMD", constants, "fm_padding")

    def rtl_placement(self) -> dict:
        """qnnflow_padding's border, strides and pad element code: a border of PadValue, no strides."""
        top, left, bottom, right = self.get_nodeattr("Padding")
        code = int(encode_elements(np.array([self.get_nodeattr("PadValue")]), self.input_datatype().name)[0])
        return dict(TOP=top, LEFT=left, BOTTOM=bottom, RIGHT=right, SH=1, SW=1, PAD_CODE=code)

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        check_emittable(self, model)
        g = self.get_nodeattr
        (h, w), simd = g("ImgDim"), g("SIMD")
        params = dict(H=h, W=w, CF=g("NumChannels") // simd, LANES=simd, BITS=self.input_datatype().bitwidth(),
                      **self.rtl_placement())
        return RtlUnit(self.onnx_node.name, self.onnx_node.op_type, ident, "qnnflow_padding", params, *formats(self))
