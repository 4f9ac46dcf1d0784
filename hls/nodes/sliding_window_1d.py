"""ConvolutionInputGenerator1D: the sliding-window unit of a height-1 image (Conv1d, 1xK kernels).

Same attributes and semantics as ConvolutionInputGenerator (IFMDim [1, W], ConvKernelDim [1, K]);
its kernel keeps a ring of K + S pixels instead of K + S whole rows, and reads while it writes
from the first word (hls/include/sliding_window_1d.hpp): a Conv1d costs no buffering of the
whole row and no cycles for it.
"""

from __future__ import annotations

from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, pixel_stream_kernel, storage_pragma
from qnnflow.hls.codegen.rtl_unit import RtlUnit
from qnnflow.hls.nodes.base import Memory
from qnnflow.hls.nodes.sliding_window import ConvolutionInputGenerator

__all__ = ["ConvolutionInputGenerator1D"]


class ConvolutionInputGenerator1D(ConvolutionInputGenerator):
    """1-D sliding window generator (FINN's ConvolutionInputGenerator1D)."""

    KERNEL_HEADER = "sliding_window_1d.hpp"
    RTL_SOURCES = ("qnnflow_sliding_window_1d.v", "qnnflow_sdp_ram.v")

    def node_problems(self):
        found = super().node_problems()
        if found:
            return found
        (kh, _), _, (h, _), _, _ = self._geometry()
        if (h, kh) != (1, 1):
            found.append(f"IFMDim={self.get_nodeattr('IFMDim')}, ConvKernelDim={self.get_nodeattr('ConvKernelDim')}: "
                         f"the 1-D unit takes a height-1 image and kernel; use ConvolutionInputGenerator for 2-D windows")
        if self.depthwise() or self.get_nodeattr("PruneMask"):
            found.append("the 1-D sliding window has no depthwise or pruned mode (nor has its HLS kernel); "
                         "use ConvolutionInputGenerator for these")
        return found

    def cycles(self) -> int:
        """One iteration per output word, reading alongside (or one per input word when the stride
        skips more than the kernel covers), plus the first word's read: max(W, OW*KW) * C/SIMD + 1.
        The kernel's loop at II=1; the RTL unit runs the same schedule (measured equal in
        tests/hls/rtl/test_units_window.py)."""
        self.check()
        (_, kw), c, (_, w), (_, ow), _ = self._geometry()
        sf = c // self.get_nodeattr("SIMD")
        return max(w * sf, ow * kw * sf) + 1

    def memories(self):
        """The ring of KW + SW pixels, C/SIMD words of SIMD*bits each."""
        (_, kw), c, _, _, (_, sw) = self._geometry()
        simd = self.get_nodeattr("SIMD")
        return [Memory("buffer", 1, (kw + sw) * (c // simd), simd * self.input_datatype().bitwidth(),
                       self.get_nodeattr("ram_style"))]

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        (_, kw), ch, (_, w), (_, ow), (_, sw) = self._geometry()
        constants = dict(KW=kw, CH=ch, W=w, OW=ow, SW=sw, SIMD=self.get_nodeattr("SIMD"))
        (ring,) = self.memories()
        lines = [f"ap_uint<{ring.width}> buffer[{ring.depth}];",
                 *storage_pragma("buffer", self.get_nodeattr("ram_style"), "ram_s2p")]
        return pixel_stream_kernel(self, ident, "SIMD", constants, "sliding_window_1d", buffer=lines)

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        """qnnflow_sliding_window_1d: the HLS kernel's ring and schedule."""
        check_emittable(self, model)
        (_, kw), ch, (_, w), (_, ow), (_, sw) = self._geometry()
        (ring,) = self.memories()
        params = dict(KW=kw, CH=ch, SIMD=self.get_nodeattr("SIMD"), BITS=self.input_datatype().bitwidth(), W=w,
                      OW=ow, SW=sw, RAM_STYLE=ring.bound())
        node = self.onnx_node
        return RtlUnit(node.name, node.op_type, ident, "qnnflow_sliding_window_1d", params, *formats(self))
