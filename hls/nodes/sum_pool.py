"""SumPool: window sums on an NHWC stream, an average pool without its 1/(KH*KW).

(N, H, W, C) -> (N, OH, OW, C), ``out[n, oy, ox, c] = sum of x[n, oy*SH + i, ox*SW + j, c]`` over the
KH x KW window; no padding, floor mode.  Streamlining moves the 1/(KH*KW) of an average pool
downstream into the next thresholds (transforms/avgpool.py).  The window walk, memories, folding and
cycles are the max-pool's (it subclasses StreamingMaxPool); the running values are output-wide sums.
"""

from __future__ import annotations

import numpy as np

from qnnflow.hls.codegen.cpp import config_struct, element_type
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header
from qnnflow.hls.codegen.rtl_unit import RtlUnit, element_params
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.maxpool import StreamingMaxPool

__all__ = ["SumPool", "sum_pool_rtl"]


def sum_pool_rtl(inst, ident: str, image: tuple[int, int], window: tuple[int, int], stride: tuple[int, int]) -> RtlUnit:
    """The qnnflow_sum_pool unit of a node summing ``window`` (KH, KW) of an ``image`` (H, W) at ``stride``,
    PE lanes a word."""
    if inst.output_datatype().name == "BIPOLAR":
        raise inst.error("the RTL sum pool writes integer sums, not BIPOLAR ones; build it with backend: hls")
    pe = inst.get_nodeattr("PE")
    params = dict(H=image[0], W=image[1], CF=inst.get_nodeattr("NumChannels") // pe, PE=pe, KH=window[0],
                  KW=window[1], SH=stride[0], SW=stride[1], **element_params("IN", inst.input_datatype()),
                  OUT_BITS=inst.output_datatype().bitwidth())
    return RtlUnit(inst.onnx_node.name, inst.onnx_node.op_type, ident, "qnnflow_sum_pool", params, *formats(inst))


class SumPool(StreamingMaxPool):
    """Streaming window-sum pool (FINN's Pool with Function SumPool, after its sliding window)."""

    FINN_OP_TYPES = ("Pool", "Pool_Batch")
    KERNEL_HEADER = "sum_pool.hpp"
    RTL_SOURCES = ("qnnflow_sum_pool.v", "qnnflow_lane.v")

    _input_dt_attr = "inputDataType"
    _output_dt_attr = "outputDataType"

    def get_nodeattr_types(self):
        """The max-pool's, with an input and an output type (the sums are wider) for its one dataType."""
        attrs = super().get_nodeattr_types()
        del attrs["dataType"]
        return {**attrs, "inputDataType": ("s", True, ""), "outputDataType": ("s", True, "")}

    @classmethod
    def kernel_sources(cls) -> dict[str, bytes]:
        """sum_pool.hpp and the max-pool's header, whose window walk it uses."""
        return {**StreamingMaxPool.kernel_sources(), **super().kernel_sources()}

    def node_problems(self):
        found = super().node_problems()
        if found:
            return found
        (kh, kw) = self.get_nodeattr("PoolDim")
        idt, odt = self.input_datatype(), self.output_datatype()
        lo, hi = kh * kw * int(idt.min()), kh * kw * int(idt.max())
        if lo < odt.min() or hi > odt.max():
            found.append(f"sums of {kh * kw} {idt.name} values span [{lo}, {hi}], which outputDataType={odt.name} "
                         f"cannot hold")
        return found

    def compute(self, x):
        (h, w), (kh, kw), (sh, sw), c = self._geometry()
        self.check_shape(x, (h, w, c), " NHWC")
        xi = self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")
        oh, ow = self._out_hw()
        out = np.zeros((x.shape[0], oh, ow, c), dtype=np.int64)
        for dy in range(kh):  # one strided slice per kernel offset, each covering the whole batch
            for dx in range(kw):
                out += xi[:, dy: dy + (oh - 1) * sh + 1: sh, dx: dx + (ow - 1) * sw + 1: sw]
        return out

    def resources(self, board: dict) -> dict:
        """The running sums (``memories``) plus an adder per lane for each of the ceil(KH/SH) x ceil(KW/SW)
        windows an input word updates (one LUT per output bit)."""
        self.check()
        cost.part_family(board)
        (buffer,) = self.memories()
        mem = cost.memories_cost([buffer])
        luts = cost.control_luts(board, cost.STREAMING_CONTROL_LUTS) + mem["LUT"] + \
            buffer.count * self.get_nodeattr("PE") * self.output_datatype().bitwidth()
        return {"LUT": int(luts), "BRAM18": mem["BRAM18"], "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node, pe = self.onnx_node, self.get_nodeattr("PE")
        idt, odt = self.input_datatype(), self.output_datatype()
        constants, lines = self.kernel_config()
        types = dict(in_t=element_type(idt.name), out_t=element_type(odt.name))
        body = (config_struct(f"{ident}_cfg", constants, types)
                + f"\n// SumPool '{node.name}' with its running sums\n"
                + f"static void {ident}_process(hls::stream<ap_uint<{pe * idt.bitwidth()}> >& in, "
                + f"hls::stream<ap_uint<{pe * odt.bitwidth()}> >& out) {{\n"
                + "".join(line if line.startswith("#") else f"    {line}" for line in (f"{b}\n" for b in lines))
                + f"    qnnflow::sum_pool<{ident}_cfg>(in, out, buffer);\n}}\n")
        in_fmt, out_fmt = formats(self)
        return Kernel(node.name, node.op_type, ident, in_fmt, out_fmt, f"{ident}_process({{inp}}, {{out}});",
                      header(ident, node, self.KERNEL_HEADER, body))

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        check_emittable(self, model)
        image, window, stride, _ = self._geometry()
        return sum_pool_rtl(self, ident, tuple(image), tuple(window), tuple(stride))
