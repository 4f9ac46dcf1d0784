"""UpsampleNearestNeighbour: nearest-neighbour upsampling of an NHWC stream by integer factors.

(N, H, W, C) -> (N, H*SH, W*SW, C), ``out[n, y, x, c] = in[n, y // SH, x // SW, c]``: what
nn.Upsample(scale_factor=k, mode='nearest') and ONNX Resize (nearest, asymmetric, floor) compute for
integer factors.  The kernel keeps one input row and writes it SH times, each pixel SW times.
"""

from __future__ import annotations

import numpy as np

from qnnflow.hls.codegen.kernel import Kernel, check_emittable, pixel_stream_kernel, storage_pragma
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import HWNode, Memory, fold_problem

__all__ = ["UpsampleNearestNeighbour"]


class UpsampleNearestNeighbour(HWNode):
    """Nearest-neighbour upsampling (FINN's UpsampleNearestNeighbour); output DataType = inputDataType."""

    FINN_OP_TYPES = ("UpsampleNearestNeighbour_Batch",)
    KERNEL_HEADER = "upsample.hpp"

    _output_dt_attr = "inputDataType"

    def get_nodeattr_types(self):
        return {
            "IFMDim": ("ints", True, []),  # [h, w]
            "OFMDim": ("ints", True, []),  # [h * sh, w * sw]
            "NumChannels": ("i", True, 0),
            "PE": ("i", False, 1),
            "inputDataType": ("s", True, ""),
        }

    def _factors(self) -> tuple[int, int]:
        (h, w), (oh, ow) = self.get_nodeattr("IFMDim"), self.get_nodeattr("OFMDim")
        return oh // h, ow // w

    def node_problems(self):
        found = [f"{n}={self.get_nodeattr(n)} must be two positive ints [h, w]" for n in ("IFMDim", "OFMDim")
                 if len(self.get_nodeattr(n)) != 2 or min(self.get_nodeattr(n)) < 1]
        if self.get_nodeattr("NumChannels") < 1:
            found.append(f"NumChannels={self.get_nodeattr('NumChannels')} must be at least 1")
        if not found and any(o % i for i, o in zip(self.get_nodeattr("IFMDim"), self.get_nodeattr("OFMDim"))):
            found.append(f"OFMDim={self.get_nodeattr('OFMDim')} is not an integer multiple of "
                         f"IFMDim={self.get_nodeattr('IFMDim')}: only integer factors upsample by repetition")
        return found

    def folding_problems(self):
        p = fold_problem("PE", self.get_nodeattr("PE"), "NumChannels", self.get_nodeattr("NumChannels"))
        return [p] if p else []

    def parallel_knobs(self):
        return {"PE": "NumChannels"}

    def compute(self, x):
        (h, w), c = self.get_nodeattr("IFMDim"), self.get_nodeattr("NumChannels")
        self.check_shape(x, (h, w, c), " NHWC")
        xi = self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")
        sh, sw = self._factors()
        return np.repeat(np.repeat(xi, sh, axis=1), sw, axis=2)

    def make_shape_compatible_op(self, model):
        return self.make_const_shape_op((self.batch_of(model), *self.normal_output_shape()[1:]))

    def normal_input_shape(self):
        return (1, *self.get_nodeattr("IFMDim"), self.get_nodeattr("NumChannels"))

    def normal_output_shape(self):
        return (1, *self.get_nodeattr("OFMDim"), self.get_nodeattr("NumChannels"))

    def folded_input_shape(self):
        pe = self.get_nodeattr("PE")
        return (*self.normal_input_shape()[:-1], self.get_nodeattr("NumChannels") // pe, pe)

    def folded_output_shape(self):
        pe = self.get_nodeattr("PE")
        return (*self.normal_output_shape()[:-1], self.get_nodeattr("NumChannels") // pe, pe)

    def cycles(self) -> int:
        """Output-bound: one PE-wide word out per cycle, OH*OW*C/PE (each input word is read while its
        first copy leaves)."""
        self.check()
        oh, ow = self.get_nodeattr("OFMDim")
        return oh * ow * self.get_nodeattr("NumChannels") // self.get_nodeattr("PE")

    def memories(self):
        """One input row, W*C/PE words of PE*bits, repeated SH times."""
        pe, (_, w) = self.get_nodeattr("PE"), self.get_nodeattr("IFMDim")
        return [Memory("buffer", 1, w * self.get_nodeattr("NumChannels") // pe,
                       pe * self.input_datatype().bitwidth(), "auto")]

    def resources(self, board: dict) -> dict:
        """The row memory plus counters and a 2:1 mux (fresh input or the stored row) per output bit."""
        self.check()
        cost.part_family(board)
        mem = cost.memories_cost(self.memories())
        oh, ow = self.get_nodeattr("OFMDim")
        counters = cost.counter_luts(oh) + cost.counter_luts(ow) + cost.counter_luts(self.get_nodeattr("NumChannels"))
        luts = cost.control_luts(board, cost.MOVER_LUTS) + counters + mem["LUT"] + self.outstream_width()
        return {"LUT": int(luts), "BRAM18": mem["BRAM18"], "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        (h, w), (sh, sw) = self.get_nodeattr("IFMDim"), self._factors()
        constants = dict(H=h, W=w, CH=self.get_nodeattr("NumChannels"), PE=self.get_nodeattr("PE"), SH=sh, SW=sw)
        (row,) = self.memories()
        lines = [f"ap_uint<{row.width}> buffer[{row.depth}];", *storage_pragma("buffer", row.style, "ram_s2p")]
        return pixel_stream_kernel(self, ident, "PE", constants, "upsample_nearest", buffer=lines)
