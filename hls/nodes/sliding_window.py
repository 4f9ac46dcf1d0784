"""ConvolutionInputGenerator: the sliding-window unit that turns an image stream into im2col rows.

(N, H, W, C) NHWC, unpadded (padding is FMPadding) -> (N, OH, OW, KH*KW*C) with window
elements ordered (ky, kx, c), c fastest -- the order of qonnx's Im2Col on NHWC data and
of the MVAU weight columns a lowered convolution expects.

Depthwise mode (``depthwise=1``, for the VVAU): the same windows with their elements
channel-major, (c, ky, kx) with kx fastest, written as C/SIMD words of SIMD whole windows each,
so that a depthwise layer reads each channel's window as one contiguous run.
A ``PruneMask`` (one 0/1 per input channel; empty: all kept) makes the windows carry the
kept channels only (a pruned layer's removed input channels, transforms/prune.py): the line
buffer still holds every channel, the output words of pruned channels are skipped.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, pixel_stream_kernel, storage_pragma
from qnnflow.hls.codegen.rtl_unit import RtlUnit, memory_path, rom_text
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import HWNode, Memory, fold_problem

__all__ = ["ConvolutionInputGenerator"]


def _pairs_problem(node: HWNode, names: tuple[str, ...]) -> list[str]:
    return [f"{n}={node.get_nodeattr(n)} must be two positive ints [h, w]" for n in names
            if len(node.get_nodeattr(n)) != 2 or min(node.get_nodeattr(n)) < 1]


class ConvolutionInputGenerator(HWNode):
    """Sliding window generator (FINN's ConvolutionInputGenerator attribute names)."""

    KERNEL_HEADER = "sliding_window.hpp"
    RTL_SOURCES = ("qnnflow_sliding_window.v", "qnnflow_sdp_ram.v")

    def get_nodeattr_types(self):
        return {
            "ConvKernelDim": ("ints", True, []),
            "IFMChannels": ("i", True, 0),
            "IFMDim": ("ints", True, []),
            "OFMDim": ("ints", True, []),
            "Stride": ("ints", False, [1, 1]),
            "Dilation": ("ints", False, [1, 1]),
            "SIMD": ("i", False, 1),
            "inputDataType": ("s", True, ""),
            "outputDataType": ("s", True, ""),
            "ram_style": ("s", False, "auto", {"auto", "block", "distributed", "ultra"}),
            "depthwise": ("i", False, 0, {0, 1}),
            "PruneMask": ("ints", False, []),
        }

    def depthwise(self) -> bool:
        return self.get_nodeattr("depthwise") == 1

    def _out_lanes(self) -> int:
        """Elements per output word: SIMD channels, or in depthwise mode SIMD channels' whole windows."""
        (kh, kw), simd = self.get_nodeattr("ConvKernelDim"), self.get_nodeattr("SIMD")
        return simd * kh * kw if self.depthwise() else simd

    def _banks(self) -> int:
        """Memories per line-buffer row: KW in depthwise mode (a window's KW columns are read at once)."""
        return self.get_nodeattr("ConvKernelDim")[1] if self.depthwise() else 1
    def kept_channels(self) -> np.ndarray:
        """Indices of the input channels the windows carry (all without a PruneMask)."""
        mask = self.get_nodeattr("PruneMask")
        return np.flatnonzero(mask) if mask else np.arange(self.get_nodeattr("IFMChannels"))

    def _mask_problems(self) -> list[str]:
        mask, c = self.get_nodeattr("PruneMask"), self.get_nodeattr("IFMChannels")
        if not mask:
            return []
        if self.depthwise():
            return ["PruneMask is not supported in depthwise mode: a depthwise layer's channels are its outputs"]
        if len(mask) != c or set(mask) - {0, 1}:
            return [f"PruneMask must hold one 0 or 1 per input channel (IFMChannels={c}), got {len(mask)} values"]
        return [] if any(mask) else ["PruneMask prunes every channel; keep at least one"]

    def _geometry(self):
        """(kh, kw), C, (h, w), (oh, ow), (sh, sw)."""
        g = self.get_nodeattr
        return g("ConvKernelDim"), g("IFMChannels"), g("IFMDim"), g("OFMDim"), g("Stride")

    def node_problems(self):
        found = _pairs_problem(self, ("ConvKernelDim", "IFMDim", "OFMDim", "Stride", "Dilation"))
        if self.get_nodeattr("IFMChannels") < 1:
            found.append(f"IFMChannels={self.get_nodeattr('IFMChannels')} must be at least 1")
        found += self._mask_problems()
        if found:
            return found
        if self.get_nodeattr("Dilation") != [1, 1]:
            found.append(f"Dilation={self.get_nodeattr('Dilation')} is not supported, only [1, 1]; "
                         f"lower dilated convolutions to a dense kernel first")
        (kh, kw), _, (h, w), (oh, ow), (sh, sw) = self._geometry()
        if kh > h or kw > w:
            found.append(f"ConvKernelDim={[kh, kw]} is larger than IFMDim={[h, w]}")
        elif [oh, ow] != [(h - kh) // sh + 1, (w - kw) // sw + 1]:
            found.append(f"OFMDim={[oh, ow]} does not match IFMDim={[h, w]}, ConvKernelDim={[kh, kw]}, Stride={[sh, sw]}: "
                         f"expected {[(h - kh) // sh + 1, (w - kw) // sw + 1]}")
        if self.get_nodeattr("outputDataType") != self.get_nodeattr("inputDataType"):
            found.append(f"outputDataType={self.get_nodeattr('outputDataType')} must equal "
                         f"inputDataType={self.get_nodeattr('inputDataType')}: windows copy data")
        return found

    def folding_problems(self):
        simd = self.get_nodeattr("SIMD")
        p = fold_problem("SIMD", simd, "IFMChannels", self.get_nodeattr("IFMChannels"))
        if p:
            return [p]
        mask = self.get_nodeattr("PruneMask")
        words = np.asarray(mask).reshape(-1, simd) if mask else np.ones((1, 1))
        split = np.flatnonzero(words.min(axis=1) != words.max(axis=1))
        if split.size:
            return [f"SIMD={simd} puts kept and pruned channels of PruneMask in one word (word {split[0]}); "
                    f"use a SIMD that divides the pruned blocks"]
        return []

    def parallel_knobs(self):
        return {"SIMD": "IFMChannels"}

    def compute(self, x):
        (kh, kw), c, (h, w), (oh, ow), (sh, sw) = self._geometry()
        self.check_shape(x, (h, w, c), " NHWC")
        self.check_values(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")
        # Windows only copy values: gather from the (exact) float carrier, not an int64 copy 2-8x its size.
        win = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]  # (N, oh, ow, C, kh, kw), a view
        if self.depthwise():  # never pruned (a PruneMask is a node problem there)
            return win.reshape(x.shape[0], oh, ow, c * kh * kw)
        kept = self.kept_channels()
        win = win.transpose(0, 1, 2, 4, 5, 3)
        return (win if kept.size == c else win[..., kept]).reshape(x.shape[0], oh, ow, kh * kw * kept.size)

    def make_shape_compatible_op(self, model):
        return self.make_const_shape_op((self.batch_of(model), *self.normal_output_shape()[1:]))

    def normal_input_shape(self):
        _, c, (h, w), _, _ = self._geometry()
        return (1, h, w, c)

    def normal_output_shape(self):
        (kh, kw), _, _, (oh, ow), _ = self._geometry()
        return (1, oh, ow, kh * kw * self.kept_channels().size)

    def folded_input_shape(self):
        _, c, (h, w), _, _ = self._geometry()
        simd = self.get_nodeattr("SIMD")
        return (1, h, w, c // simd, simd)

    def folded_output_shape(self):
        (kh, kw), _, _, (oh, ow), _ = self._geometry()
        lanes = self._out_lanes()
        return (1, oh, ow, kh * kw * self.kept_channels().size // lanes, lanes)

    def cycles(self) -> int:
        """The kernel's loops (finn-hlslib's ConvolutionInputGenerator schedule, FINN get_exp_cycles): fill KH
        input rows, then per output row the slower of writing OW*KH*KW*C/SIMD words and reading the next SH
        input rows (W*C/SIMD words each; fewer, or none, for the last output rows: the rows left below the
        last window).  Roughly max(H*W*C, OH*OW*KH*KW*C)/SIMD plus the initial KH*W*C/SIMD buffer fill;
        writes count the kept channels only (PruneMask).  Depthwise mode writes a whole window per word:
        OW*C/SIMD words per output row.  The RTL unit runs the same schedule (measured equal in
        tests/hls/rtl/test_units_window.py)."""
        self.check()
        (kh, kw), c, (h, w), (oh, ow), (sh, _) = self._geometry()
        simd = self.get_nodeattr("SIMD")
        sf = c // simd
        write_row = ow * (self.kept_channels().size // simd) * (1 if self.depthwise() else kh * kw)
        rows_read = [min(sh, max(0, h - kh - oy * sh)) for oy in range(oh)]
        return w * kh * sf + sum(max(write_row, rows * w * sf) for rows in rows_read)

    def memories(self):
        """KH + SH line buffers of W*C/SIMD words x SIMD*bits (KH rows in use while SH more arrive); in
        depthwise mode each row in KW banks of ceil(W/KW)*C/SIMD words."""
        (kh, _), c, (_, w), _, (sh, _) = self._geometry()
        simd, banks = self.get_nodeattr("SIMD"), self._banks()
        return [Memory("buffer", (kh + sh) * banks, math.ceil(w / banks) * (c // simd),
                       simd * self.input_datatype().bitwidth(), self.get_nodeattr("ram_style"))]

    def resources(self, board: dict) -> dict:
        """The line buffers (``memories``) plus control; in depthwise mode each output bit also selects its
        row slot (KH+SH) and bank (KW) by multiplexers."""
        self.check()
        cost.part_family(board)
        cost.uram_check(self.get_nodeattr("ram_style"), board, self.name)
        mem = cost.memories_cost(self.memories())
        (kh, kw), _, _, _, (sh, _) = self._geometry()
        select = 0
        if self.depthwise():
            select = self.outstream_width() * (cost.mux_luts(kh + sh) + cost.mux_luts(kw))
        return {"LUT": int(cost.control_luts(board) + mem["LUT"] + select), "BRAM18": mem["BRAM18"], "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        (kh, kw), ch, (h, w), (oh, ow), (sh, sw) = self._geometry()
        simd = self.get_nodeattr("SIMD")
        kept_words = self.kept_channels()[::simd] // simd
        constants = dict(KH=kh, KW=kw, CH=ch, H=h, W=w, OH=oh, OW=ow, SH=sh, SW=sw, SIMD=simd,
                         DW=int(self.depthwise()), KCF=kept_words.size)
        (buffer,) = self.memories()
        banks = self._banks()
        lines = [f"ap_uint<{buffer.width}> buffer[{buffer.count // banks}][{banks}][{buffer.depth}];",
                 "#pragma HLS ARRAY_PARTITION variable=buffer complete dim=1",
                 "#pragma HLS ARRAY_PARTITION variable=buffer complete dim=2",
                 *storage_pragma("buffer", self.get_nodeattr("ram_style"), "ram_s2p"),
                 f"static const unsigned kept[{kept_words.size}] = {{{', '.join(map(str, kept_words))}}};"]
        return pixel_stream_kernel(self, ident, "SIMD", constants, "sliding_window", buffer=lines,
                                   out_lanes=self._out_lanes(), extra_args=("kept",))

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        """qnnflow_sliding_window: the HLS kernel's schedule and line buffer; a pruned layer's kept channel
        words in a memory file."""
        check_emittable(self, model)
        (kh, kw), ch, (h, w), (oh, ow), (sh, sw) = self._geometry()
        simd = self.get_nodeattr("SIMD")
        kept_words = self.kept_channels()[::simd] // simd
        pruned = kept_words.size < ch // simd
        params = dict(KH=kh, KW=kw, CH=ch, SIMD=simd, BITS=self.input_datatype().bitwidth(), H=h, W=w, OH=oh, OW=ow,
                      SH=sh, SW=sw, DW=int(self.depthwise()), KCF=kept_words.size, PRUNED=int(pruned), KEPT="",
                      RAM_STYLE=self.memories()[0].bound())
        memories = {}
        if pruned:
            params["KEPT"] = memory_path(ident, "kept")
            bits = max(1, (ch // simd - 1).bit_length())
            memories[params["KEPT"]] = rom_text(kept_words.reshape(-1, 1), f"UINT{bits}")
        node = self.onnx_node
        return RtlUnit(node.name, node.op_type, ident, "qnnflow_sliding_window", params, *formats(self), memories)
