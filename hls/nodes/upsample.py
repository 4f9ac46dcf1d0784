"""UpsampleNearestNeighbour: nearest-neighbour upsampling of an NHWC stream by integer factors.

(N, H, W, C) -> (N, H*SH, W*SW, C), ``out[n, y, x, c] = in[n, y // SH, x // SW, c]``: what
nn.Upsample(scale_factor=k, mode='nearest') and ONNX Resize (nearest, asymmetric, floor) compute for
integer factors.  The kernel keeps one input row and writes it SH times, each pixel SW times.
"""

from __future__ import annotations

import numpy as np

from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, pixel_stream_kernel, storage_pragma
from qnnflow.hls.codegen.rtl_unit import RtlUnit
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import Memory
from qnnflow.hls.nodes.padding import FMPadding
from qnnflow.hls.nodes.sliding_window import _pairs_problem

__all__ = ["UpsampleNearestNeighbour"]


class UpsampleNearestNeighbour(FMPadding):
    """Nearest-neighbour upsampling (FINN's UpsampleNearestNeighbour); output DataType = inputDataType.
    Folding, shapes and cycles are FMPadding's (one word out per cycle); it adds the row memory."""

    FINN_OP_TYPES = ("UpsampleNearestNeighbour_Batch",)
    KERNEL_HEADER = "upsample.hpp"
    RTL_SOURCES = ("qnnflow_upsample.v",)

    def get_nodeattr_types(self):
        return {
            "ImgDim": ("ints", True, []),  # [h, w]
            "Factor": ("ints", True, []),  # [sh, sw]: each row repeated sh times, each pixel sw times
            "NumChannels": ("i", True, 0),
            "SIMD": ("i", False, 1),
            "inputDataType": ("s", True, ""),
        }

    def node_problems(self):
        found = _pairs_problem(self, ("ImgDim", "Factor"))
        if self.get_nodeattr("NumChannels") < 1:
            found.append(f"NumChannels={self.get_nodeattr('NumChannels')} must be at least 1")
        return found

    def _out_hw(self) -> tuple[int, int]:
        (h, w), (sh, sw) = self.get_nodeattr("ImgDim"), self.get_nodeattr("Factor")
        return h * sh, w * sw

    def compute(self, x):
        (h, w), c = self.get_nodeattr("ImgDim"), self.get_nodeattr("NumChannels")
        self.check_shape(x, (h, w, c), " NHWC")
        xi = self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")
        sh, sw = self.get_nodeattr("Factor")
        return np.repeat(np.repeat(xi, sh, axis=1), sw, axis=2)

    def memories(self):
        """One input row, W*C/SIMD words of SIMD*bits, repeated SH times."""
        simd, (_, w) = self.get_nodeattr("SIMD"), self.get_nodeattr("ImgDim")
        return [Memory("buffer", 1, w * self.get_nodeattr("NumChannels") // simd,
                       simd * self.input_datatype().bitwidth(), "auto")]

    def resources(self, board: dict) -> dict:
        """FMPadding's counters and 2:1 mux per output bit (fresh input or the stored row), plus the row memory."""
        own, mem = super().resources(board), cost.memories_cost(self.memories())
        return {"LUT": own["LUT"] + mem["LUT"], "BRAM18": mem["BRAM18"], "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        (h, w), (sh, sw) = self.get_nodeattr("ImgDim"), self.get_nodeattr("Factor")
        constants = dict(H=h, W=w, CH=self.get_nodeattr("NumChannels"), SIMD=self.get_nodeattr("SIMD"), SH=sh, SW=sw)
        (row,) = self.memories()
        lines = [f"ap_uint<{row.width}> buffer[{row.depth}];", *storage_pragma("buffer", row.style, "ram_s2p")]
        return pixel_stream_kernel(self, ident, "SIMD", constants, "upsample_nearest", buffer=lines)

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        check_emittable(self, model)
        g = self.get_nodeattr
        (_, w), (sh, sw), simd = g("ImgDim"), g("Factor"), g("SIMD")
        params = dict(W=w, CF=g("NumChannels") // simd, LANES=simd, BITS=self.input_datatype().bitwidth(), SH=sh, SW=sw)
        return RtlUnit(self.onnx_node.name, self.onnx_node.op_type, ident, "qnnflow_upsample", params, *formats(self))
