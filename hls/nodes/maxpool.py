"""StreamingMaxPool: max pooling on an NHWC stream, no padding, floor mode.

(N, H, W, C) -> (N, OH, OW, C) with OH = (H - KH) // SH + 1; any kernel and stride,
overlapping windows included.  For BINARY data the max is an OR.
"""

from __future__ import annotations

import math

import numpy as np

from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import HWNode, fold_problem

__all__ = ["StreamingMaxPool"]


class StreamingMaxPool(HWNode):
    """Streaming max pool (FINN's StreamingMaxPool names; Stride defaults to PoolDim)."""

    _input_dt_attr = "dataType"
    _output_dt_attr = "dataType"

    def get_nodeattr_types(self):
        return {
            "ImgDim": ("ints", True, []),
            "PoolDim": ("ints", True, []),
            "Stride": ("ints", False, []),  # empty: equal to PoolDim
            "NumChannels": ("i", True, 0),
            "PE": ("i", False, 1),
            "dataType": ("s", True, ""),
        }

    def _geometry(self):
        """(h, w), (kh, kw), (sh, sw), C."""
        pool = self.get_nodeattr("PoolDim")
        return self.get_nodeattr("ImgDim"), pool, self.get_nodeattr("Stride") or pool, self.get_nodeattr("NumChannels")

    def node_problems(self):
        found = [f"{n}={self.get_nodeattr(n)} must be two positive ints [h, w]" for n in ("ImgDim", "PoolDim")
                 if len(self.get_nodeattr(n)) != 2 or min(self.get_nodeattr(n)) < 1]
        stride = self.get_nodeattr("Stride")
        if stride and (len(stride) != 2 or min(stride) < 1):
            found.append(f"Stride={stride} must be two positive ints [h, w] (or unset for Stride = PoolDim)")
        if self.get_nodeattr("NumChannels") < 1:
            found.append(f"NumChannels={self.get_nodeattr('NumChannels')} must be at least 1")
        if not found:
            (h, w), (kh, kw), _, _ = self._geometry()
            if kh > h or kw > w:
                found.append(f"PoolDim={[kh, kw]} is larger than ImgDim={[h, w]}")
        return found

    def folding_problems(self):
        p = fold_problem("PE", self.get_nodeattr("PE"), "NumChannels", self.get_nodeattr("NumChannels"))
        return [p] if p else []

    def _out_hw(self) -> tuple[int, int]:
        (h, w), (kh, kw), (sh, sw), _ = self._geometry()
        return (h - kh) // sh + 1, (w - kw) // sw + 1

    def compute(self, x):
        (h, w), (kh, kw), (sh, sw), c = self._geometry()
        self.check_shape(x, (h, w, c), " NHWC")
        xi = self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")
        oh, ow = self._out_hw()
        out = None
        for dy in range(kh):  # one strided slice per kernel offset, each covering the whole batch
            for dx in range(kw):
                part = xi[:, dy : dy + (oh - 1) * sh + 1 : sh, dx : dx + (ow - 1) * sw + 1 : sw]
                out = part.copy() if out is None else np.maximum(out, part, out=out)
        return out

    def make_shape_compatible_op(self, model):
        return self.make_const_shape_op((self.batch_of(model), *self.normal_output_shape()[1:]))

    def normal_input_shape(self):
        (h, w), _, _, c = self._geometry()
        return (1, h, w, c)

    def normal_output_shape(self):
        return (1, *self._out_hw(), self.get_nodeattr("NumChannels"))

    def folded_input_shape(self):
        pe = self.get_nodeattr("PE")
        return (*self.normal_input_shape()[:-1], self.get_nodeattr("NumChannels") // pe, pe)

    def folded_output_shape(self):
        pe = self.get_nodeattr("PE")
        return (*self.normal_output_shape()[:-1], self.get_nodeattr("NumChannels") // pe, pe)

    def cycles(self) -> int:
        """Input-bound: every input word is read once, H*W*C/PE (outputs leave while rows stream in)."""
        self.check_folding()
        (h, w), _, _, c = self._geometry()
        return h * w * c // self.get_nodeattr("PE")

    def resources(self, board: dict) -> dict:
        """ceil(KH/SH) rows of running maxima (OW*C/PE words x PE*bits each) plus a comparator and
        mux per lane bit (2 LUTs per bit)."""
        self.check_folding()
        cost.part_family(board)
        _, (kh, _), (sh, _), c = self._geometry()
        pe, bits = self.get_nodeattr("PE"), self.input_datatype().bitwidth()
        rows = math.ceil(kh / sh)
        row = cost.memory(self._out_hw()[1] * c // pe, pe * bits, "auto")
        luts = cost.control_luts(board, cost.STREAMING_CONTROL_LUTS) + pe * 2 * cost.comparator_luts(bits) + rows * row["LUT"]
        return {"LUT": int(luts), "BRAM18": rows * row["BRAM18"], "DSP": 0}
