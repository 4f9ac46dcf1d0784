"""GlobalAccPool: global sum pool on a channels-last stream.

``out[n, 0, 0, c] = sum over (h, w) of x[n, h, w, c]`` for x (N, H, W, C).  It is a global average
pool without its 1/(H*W): streamlining moves that scale downstream, where thresholds or the float
tail absorb it.  PE channels are summed per cycle; the sums wait in a memory of C/PE words.
"""

from __future__ import annotations

import math

from qnnflow.hls.codegen.cpp import config_struct, element_type
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header
from qnnflow.hls.codegen.rtl_unit import RtlUnit
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import ChannelStreamNode, Memory
from qnnflow.hls.nodes.sum_pool import sum_pool_rtl

__all__ = ["GlobalAccPool"]


class GlobalAccPool(ChannelStreamNode):
    """Global accumulating (sum) pool (FINN's GlobalAccPool attribute names)."""

    FINN_OP_TYPES = ("GlobalAccPool_Batch",)
    KERNEL_HEADER = "global_acc_pool.hpp"
    RTL_SOURCES = ("qnnflow_sum_pool.v", "qnnflow_lane.v")

    def get_nodeattr_types(self):
        return {
            "NumChannels": ("i", True, 0),
            "PE": ("i", False, 1),
            "inputDataType": ("s", True, ""),
            "outputDataType": ("s", True, ""),
            "numInputVectors": ("ints", True, []),  # [N, H, W]
        }

    def node_problems(self):
        found = []
        if self.get_nodeattr("NumChannels") < 1:
            found.append(f"NumChannels={self.get_nodeattr('NumChannels')} must be at least 1")
        vecs = self.get_nodeattr("numInputVectors")
        if len(vecs) != 3 or min(vecs) < 1:
            found.append(f"numInputVectors={vecs} must be [N, H, W] with positive entries")
            return found
        idt, odt = self.input_datatype(), self.output_datatype()
        pixels = math.prod(self._vectors())
        lo, hi = pixels * int(idt.min()), pixels * int(idt.max())
        if lo < odt.min() or hi > odt.max():
            found.append(f"sums of {pixels} {idt.name} values span [{lo}, {hi}], which outputDataType="
                         f"{odt.name} cannot hold")
        return found


    def compute(self, x):
        n_ch = self.get_nodeattr("NumChannels")
        self.check_shape(x, (*self._vectors(), n_ch))
        xi = self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")
        return xi.sum(axis=(1, 2), keepdims=True)

    def make_shape_compatible_op(self, model):
        return self.make_const_shape_op((self.batch_of(model), 1, 1, self.get_nodeattr("NumChannels")))

    def normal_output_shape(self):
        return (1, 1, 1, self.get_nodeattr("NumChannels"))

    def folded_output_shape(self):
        pe = self.get_nodeattr("PE")
        return (1, 1, 1, self.get_nodeattr("NumChannels") // pe, pe)

    def memories(self):
        """The running sums: C/PE words of PE output-width sums."""
        pe = self.get_nodeattr("PE")
        return [Memory("buffer", 1, self.get_nodeattr("NumChannels") // pe, pe * self.output_datatype().bitwidth(),
                       "auto")]

    def resources(self, board: dict) -> dict:
        """PE adders of the output width, plus the running-sum memory."""
        self.check()
        cost.part_family(board)
        mem = cost.memories_cost(self.memories())
        luts = cost.control_luts(board, cost.STREAMING_CONTROL_LUTS) + mem["LUT"] + \
            self.get_nodeattr("PE") * self.output_datatype().bitwidth()
        return {"LUT": int(luts), "BRAM18": mem["BRAM18"], "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node, g = self.onnx_node, self.get_nodeattr
        pe = g("PE")
        idt, odt = self.input_datatype(), self.output_datatype()
        constants = dict(PIXELS=math.prod(self._vectors()), CH=g("NumChannels"), PE=pe)
        types = dict(in_t=element_type(idt.name), out_t=element_type(odt.name))
        in_stream = f"hls::stream<ap_uint<{pe * idt.bitwidth()}> >&"
        out_stream = f"hls::stream<ap_uint<{pe * odt.bitwidth()}> >&"
        body = (config_struct(f"{ident}_cfg", constants, types)
                + f"\n// GlobalAccPool '{node.name}' with its running sums\n"
                + f"static void {ident}_process({in_stream} in, {out_stream} out) {{\n"
                + f"    ap_uint<{pe * odt.bitwidth()}> buffer[{g('NumChannels') // pe}];\n"
                + f"    qnnflow::global_acc_pool<{ident}_cfg>(in, out, buffer);\n}}\n")
        in_fmt, out_fmt = formats(self)
        return Kernel(node.name, node.op_type, ident, in_fmt, out_fmt, f"{ident}_process({{inp}}, {{out}});",
                      header(ident, node, self.KERNEL_HEADER, body))

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        """qnnflow_sum_pool with one window over the image's pixels in a row."""
        check_emittable(self, model)
        pixels = math.prod(self._vectors())
        return sum_pool_rtl(self, ident, (1, pixels), (1, pixels), (1, pixels))
