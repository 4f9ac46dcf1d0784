"""StreamingMaxPool: max pooling on an NHWC stream, no padding, floor mode.

(N, H, W, C) -> (N, OH, OW, C) with OH = (H - KH) // SH + 1; any kernel and stride,
overlapping windows included.  For BINARY data the max is an OR.
"""

from __future__ import annotations

import math

import numpy as np

from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, pixel_stream_kernel
from qnnflow.hls.codegen.rtl_unit import RtlUnit
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import HWNode, Memory, fold_problem

__all__ = ["StreamingMaxPool"]


class StreamingMaxPool(HWNode):
    """Streaming max pool (FINN's StreamingMaxPool names; Stride defaults to PoolDim)."""

    FINN_OP_TYPES = ("StreamingMaxPool_Batch",)
    KERNEL_HEADER = "maxpool.hpp"
    RTL_SOURCES = ("qnnflow_maxpool.v", "qnnflow_sdp_ram.v")

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

    def parallel_knobs(self):
        return {"PE": "NumChannels"}

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

    def _open_windows(self) -> tuple[int, int]:
        """(NX, OWB) of maxpool.hpp: ceil(KW/SW) windows an input word updates, and the windows of a row
        kept open: all OW, or only NX for a 1-D pool (KH = 1), whose windows close within their row."""
        _, (kh, kw), (_, sw), _ = self._geometry()
        nx = math.ceil(kw / sw)
        return nx, nx if kh == 1 else self._out_hw()[1]

    def memories(self):
        """The running maxima of maxpool.hpp: ceil(KH/SH) rows (one memory each) of OWB x C/PE words of
        PE*bits, each row split cyclically into ceil(KW/SW) memories (the windows an input word updates)."""
        _, (kh, _), (sh, _), c = self._geometry()
        pe = self.get_nodeattr("PE")
        nx, owb = self._open_windows()
        return [Memory("buffer", math.ceil(kh / sh) * nx, math.ceil(owb / nx) * (c // pe),
                       pe * self.output_datatype().bitwidth(), "auto")]

    def initiation_interval(self) -> int:
        """With one word per pixel (C/PE = 1) consecutive words of a window update the same running
        maximum: a read-modify-write every cycle, which a memory with a one-cycle read (block RAM)
        allows only every other cycle; LUTRAM reads combinationally.  An estimate of the HLS kernel, not
        measured; the RTL unit (qnnflow_maxpool.v) forwards the new maximum and takes a word every cycle
        in either memory, so in that one case it runs twice as fast as this model says."""
        (buffer,) = self.memories()
        in_bram = cost.memory(buffer.depth, buffer.width, buffer.style)["BRAM18"] > 0
        return 2 if self.get_nodeattr("NumChannels") == self.get_nodeattr("PE") and in_bram else 1

    def cycles(self) -> int:
        """Input-bound: every input word is read once, H*W*C/PE words at the initiation interval
        (outputs leave while rows stream in)."""
        self.check()
        (h, w), _, _, c = self._geometry()
        return h * w * c // self.get_nodeattr("PE") * self.initiation_interval()

    def resources(self, board: dict) -> dict:
        """The running maxima (``memories``) plus a comparator and mux per lane bit for each of the
        ceil(KH/SH) x ceil(KW/SW) windows an input word updates (2 LUTs per bit)."""
        self.check()
        cost.part_family(board)
        (buffer,) = self.memories()
        pe, bits = self.get_nodeattr("PE"), self.input_datatype().bitwidth()
        mem = cost.memories_cost([buffer])
        luts = cost.control_luts(board, cost.STREAMING_CONTROL_LUTS) + mem["LUT"] + \
            buffer.count * pe * 2 * cost.comparator_luts(bits)
        return {"LUT": int(luts), "BRAM18": mem["BRAM18"], "DSP": 0}

    def kernel_config(self) -> tuple[dict, list[str]]:
        """The kernel's constants and the C++ lines declaring its running values ``buffer``."""
        (h, w), (kh, kw), (sh, sw), ch = self._geometry()
        oh, ow = self._out_hw()
        pe, nr = self.get_nodeattr("PE"), math.ceil(kh / sh)
        nx, owb = self._open_windows()
        constants = dict(H=h, W=w, CH=ch, PE=pe, KH=kh, KW=kw, SH=sh, SW=sw, OH=oh, OW=ow)
        lines = [f"ap_uint<{pe * self.output_datatype().bitwidth()}> buffer[{nr}][{owb}][{ch // pe}];",
                 "#pragma HLS ARRAY_PARTITION variable=buffer complete dim=1",
                 f"#pragma HLS ARRAY_PARTITION variable=buffer cyclic factor={nx} dim=2"]
        return constants, lines

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        constants, lines = self.kernel_config()
        return pixel_stream_kernel(self, ident, "PE", constants, "maxpool", buffer=lines)

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        """qnnflow_maxpool: the HLS kernel's running maxima, one input word a cycle."""
        check_emittable(self, model)
        (h, w), (kh, kw), (sh, sw), ch = self._geometry()
        oh, ow = self._out_hw()
        dt = self.input_datatype()
        params = dict(H=h, W=w, CH=ch, PE=self.get_nodeattr("PE"), BITS=dt.bitwidth(),
                      SIGNED=int(dt.signed() and dt.name != "BIPOLAR"), KH=kh, KW=kw, SH=sh, SW=sw, OH=oh, OW=ow,
                      RAM_STYLE=self.memories()[0].bound())
        node = self.onnx_node
        return RtlUnit(node.name, node.op_type, ident, "qnnflow_maxpool", params, *formats(self))
