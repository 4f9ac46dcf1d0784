"""FMPaddingPixel: zeros between the pixels of an NHWC stream, the first step of a transposed convolution.

(N, H, W, C) -> (N, (H-1)*SH + 1, (W-1)*SW + 1, C): input pixel (y, x) lands at (y*SH, x*SW) and
every other pixel is 0.  A stride-S transposed convolution is this, then border padding
(FMPadding) and a stride-1 convolution (sliding window + MVAU) with the kernel flipped
(transforms/deconv.py).
"""

from __future__ import annotations

import numpy as np

from qnnflow.hls.codegen.kernel import Kernel, check_emittable, pixel_stream_kernel
from qnnflow.hls.nodes.padding import FMPadding
from qnnflow.hls.nodes.sliding_window import _pairs_problem

__all__ = ["FMPaddingPixel"]


class FMPaddingPixel(FMPadding):
    """Pixel padding (FINN's FMPadding_Pixel); output DataType = inputDataType, which must hold 0.  Folding,
    shapes, cycles and cost are FMPadding's (one word out per cycle, no memory); only where the zeros go
    differs."""

    FINN_OP_TYPES = ("FMPadding_Pixel",)
    KERNEL_HEADER = "pixel_padding.hpp"

    def get_nodeattr_types(self):
        return {
            "ImgDim": ("ints", True, []),  # [h, w]
            "Stride": ("ints", True, []),  # [sh, sw]: SH-1 zero rows, SW-1 zero columns between pixels
            "NumChannels": ("i", True, 0),
            "SIMD": ("i", False, 1),
            "inputDataType": ("s", True, ""),
        }

    def node_problems(self):
        found = _pairs_problem(self, ("ImgDim", "Stride"))
        if self.get_nodeattr("NumChannels") < 1:
            found.append(f"NumChannels={self.get_nodeattr('NumChannels')} must be at least 1")
        if not self.input_datatype().allowed(0):
            found.append(f"inputDataType={self.input_datatype().name} has no 0 to insert between pixels")
        return found

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

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        (h, w), (sh, sw) = self.get_nodeattr("ImgDim"), self.get_nodeattr("Stride")
        constants = dict(H=h, W=w, CH=self.get_nodeattr("NumChannels"), SIMD=self.get_nodeattr("SIMD"), SH=sh, SW=sw)
        return pixel_stream_kernel(self, ident, "SIMD", constants, "pixel_padding")

    def rtl_placement(self) -> dict:
        """qnnflow_padding's placement for pixel padding: no border, the strides, zeros."""
        sh, sw = self.get_nodeattr("Stride")
        return dict(TOP=0, LEFT=0, BOTTOM=0, RIGHT=0, SH=sh, SW=sw, PAD_CODE=0)
