"""FMPaddingPixel: zeros between the pixels of an NHWC stream, the first step of a transposed convolution.

(N, H, W, C) -> (N, (H-1)*SH + 1, (W-1)*SW + 1, C): input pixel (y, x) lands at (y*SH, x*SW) and
every other pixel is 0.  A stride-S transposed convolution is this, then border padding
(FMPadding) and a stride-1 convolution (sliding window + MVAU) with the kernel flipped
(transforms/deconv.py).
"""

from __future__ import annotations

import numpy as np

from qnnflow.hls.codegen.kernel import Kernel, check_emittable, pixel_stream_kernel
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import HWNode, fold_problem

__all__ = ["FMPaddingPixel"]


class FMPaddingPixel(HWNode):
    """Pixel padding (FINN's FMPadding_Pixel); output DataType = inputDataType, which must hold 0."""

    FINN_OP_TYPES = ("FMPadding_Pixel",)
    KERNEL_HEADER = "pixel_padding.hpp"

    _output_dt_attr = "inputDataType"

    def get_nodeattr_types(self):
        return {
            "ImgDim": ("ints", True, []),  # [h, w]
            "Stride": ("ints", True, []),  # [sh, sw]: SH-1 zero rows, SW-1 zero columns between pixels
            "NumChannels": ("i", True, 0),
            "SIMD": ("i", False, 1),
            "inputDataType": ("s", True, ""),
        }

    def node_problems(self):
        found = [f"{n}={self.get_nodeattr(n)} must be two positive ints [h, w]" for n in ("ImgDim", "Stride")
                 if len(self.get_nodeattr(n)) != 2 or min(self.get_nodeattr(n)) < 1]
        if self.get_nodeattr("NumChannels") < 1:
            found.append(f"NumChannels={self.get_nodeattr('NumChannels')} must be at least 1")
        if not self.input_datatype().allowed(0):
            found.append(f"inputDataType={self.input_datatype().name} has no 0 to insert between pixels")
        return found

    def folding_problems(self):
        p = fold_problem("SIMD", self.get_nodeattr("SIMD"), "NumChannels", self.get_nodeattr("NumChannels"))
        return [p] if p else []

    def parallel_knobs(self):
        return {"SIMD": "NumChannels"}

    def _out_hw(self) -> tuple[int, int]:
        (h, w), (sh, sw) = self.get_nodeattr("ImgDim"), self.get_nodeattr("Stride")
        return (h - 1) * sh + 1, (w - 1) * sw + 1

    def compute(self, x):
        (h, w), c = self.get_nodeattr("ImgDim"), self.get_nodeattr("NumChannels")
        self.check_shape(x, (h, w, c), " NHWC")
        xi = self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")
        sh, sw = self.get_nodeattr("Stride")
        out = np.zeros((x.shape[0], *self._out_hw(), c), dtype=np.int64)
        out[:, ::sh, ::sw] = xi
        return out

    def make_shape_compatible_op(self, model):
        return self.make_const_shape_op((self.batch_of(model), *self.normal_output_shape()[1:]))

    def normal_input_shape(self):
        return (1, *self.get_nodeattr("ImgDim"), self.get_nodeattr("NumChannels"))

    def normal_output_shape(self):
        return (1, *self._out_hw(), self.get_nodeattr("NumChannels"))

    def folded_input_shape(self):
        simd = self.get_nodeattr("SIMD")
        return (*self.normal_input_shape()[:-1], self.get_nodeattr("NumChannels") // simd, simd)

    def folded_output_shape(self):
        simd = self.get_nodeattr("SIMD")
        return (*self.normal_output_shape()[:-1], self.get_nodeattr("NumChannels") // simd, simd)

    def cycles(self) -> int:
        """One SIMD-wide word out per cycle: OH*OW*C/SIMD."""
        self.check()
        oh, ow = self._out_hw()
        return oh * ow * self.get_nodeattr("NumChannels") // self.get_nodeattr("SIMD")

    def resources(self, board: dict) -> dict:
        """Own estimate, as FMPadding's: counters plus a 2:1 mux (data or 0) per output bit; no memory."""
        self.check()
        cost.part_family(board)
        oh, ow = self._out_hw()
        counters = cost.counter_luts(oh) + cost.counter_luts(ow) + cost.counter_luts(self.get_nodeattr("NumChannels"))
        luts = cost.control_luts(board, cost.MOVER_LUTS) + counters + self.outstream_width()
        return {"LUT": int(luts), "BRAM18": 0, "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        (h, w), (sh, sw) = self.get_nodeattr("ImgDim"), self.get_nodeattr("Stride")
        constants = dict(H=h, W=w, CH=self.get_nodeattr("NumChannels"), SIMD=self.get_nodeattr("SIMD"), SH=sh, SW=sw)
        return pixel_stream_kernel(self, ident, "SIMD", constants, "pixel_padding")
