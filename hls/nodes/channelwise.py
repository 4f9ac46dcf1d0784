"""ChannelwiseOp: a per-channel integer multiply-add on a channels-last stream.

``out[..., c] = P[c, 0] * x[..., c] + P[c, 1]`` for x (N, *numInputVectors[1:], C) and an integer
parameter initializer P (C, 2).  It carries what a threshold cannot absorb, such as the sign of a
batch-norm's negative gamma behind a max-pool (a +-1 multiply; the thresholds after it take the
magnitude).  PE channels are computed per cycle.
"""

from __future__ import annotations

import math

import numpy as np

from qnnflow.base.values import value_problem
from qnnflow.hls.codegen.cpp import array_definition, config_struct, element_type, pod_signed, signed_bits
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header, storage_pragma
from qnnflow.hls.codegen.rtl_unit import RtlUnit, element_params, memory_path, rom_style, rom_text, signed_type
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import ChannelStreamNode, Memory

__all__ = ["ChannelwiseOp"]


def packed_params(params: np.ndarray, pe: int) -> np.ndarray:
    """P (C, 2) arranged [PE][C/PE][2]: channel c in PE c % pe at local row c // pe."""
    n_ch = params.shape[0]
    return np.ascontiguousarray(np.asarray(params).reshape(n_ch // pe, pe, 2).transpose(1, 0, 2))


class ChannelwiseOp(ChannelStreamNode):
    """Per-channel multiply-add (FINN's ChannelwiseOp attribute names where they exist)."""

    FINN_OP_TYPES = ("ChannelwiseOp_Batch",)
    KERNEL_HEADER = "channelwise.hpp"
    RTL_SOURCES = ("qnnflow_channelwise.v", "qnnflow_rom.v", "qnnflow_lane.v")

    def get_nodeattr_types(self):
        return {
            "NumChannels": ("i", True, 0),
            "PE": ("i", False, 1),
            "inputDataType": ("s", True, ""),
            "outputDataType": ("s", True, ""),
            "paramDataType": ("s", True, ""),
            "numInputVectors": ("ints", False, [1]),
            "ram_style": ("s", False, "auto", {"auto", "block", "distributed"}),
        }


    def _param_problem(self, params: np.ndarray, what: str) -> str | None:
        n_ch = self.get_nodeattr("NumChannels")
        if params.shape != (n_ch, 2):
            return f"parameters '{what}' have shape {params.shape}, expected ({n_ch}, 2) (multiplier, addend)"
        bad = value_problem(params, self.datatype("paramDataType"))
        if bad:
            return f"parameters '{what}' {bad}"
        lo, hi = self._output_range(params)
        odt = self.output_datatype()
        if lo < odt.min() or hi > odt.max():
            return f"outputs span [{lo}, {hi}], which outputDataType={odt.name} cannot hold"
        return None

    def _output_range(self, params: np.ndarray) -> tuple[int, int]:
        idt = self.input_datatype()
        mul, add = np.asarray(params, dtype=np.int64).T
        ends = np.stack([mul * int(idt.min()), mul * int(idt.max())])
        return int((ends.min(axis=0) + add).min()), int((ends.max(axis=0) + add).max())

    def _acc_range(self) -> tuple[int, int]:
        """Every value a lane's product or sum can take, from the attributes alone."""
        idt, pdt = self.input_datatype(), self.datatype("paramDataType")
        corners = [a * b for a in (int(idt.min()), int(idt.max())) for b in (int(pdt.min()), int(pdt.max()))]
        odt = self.output_datatype()
        return min(*corners, int(odt.min()), int(pdt.min())), max(*corners, int(odt.max()), int(pdt.max()))

    def model_problems(self, model) -> list[str]:
        found = self.problems()
        if found:
            return found
        params = model.get_initializer(self.onnx_node.input[1])
        if params is None:
            return ["input 1 (parameters) must be an initializer"]
        p = self._param_problem(np.asarray(params), self.onnx_node.input[1])
        return [p] if p else []

    def compute(self, x, params):
        n_ch = self.get_nodeattr("NumChannels")
        self.check_shape(x, (*self._vectors(), n_ch))
        p = self._param_problem(np.asarray(params), self.onnx_node.input[1])
        if p:
            raise self.error(p)
        xi = self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")
        mul, add = np.asarray(params).astype(np.int64).T
        return xi * mul + add

    def _param_ctype(self) -> str:
        pdt = self.datatype("paramDataType")
        return pod_signed(int(pdt.min()), int(pdt.max()))

    def memories(self):
        """Per PE, the (multiplier, addend) pairs of its C/PE channels, one pair a word."""
        pe = self.get_nodeattr("PE")
        bits = int(self._param_ctype()[3:-2])
        return [Memory("params", pe, self.get_nodeattr("NumChannels") // pe, 2 * bits, self.get_nodeattr("ram_style"))]

    def resources(self, board: dict) -> dict:
        """PE multipliers (in LUTs) and adders of the accumulator width, plus the parameter memories."""
        self.check()
        cost.part_family(board)
        lo, hi = self._acc_range()
        acc_bits = signed_bits(lo, hi)
        mem = cost.memories_cost(self.memories())
        per_lane = cost.lut_multiplier(self.input_datatype().bitwidth(), self.datatype("paramDataType").bitwidth())
        luts = cost.control_luts(board, cost.STREAMING_CONTROL_LUTS) + mem["LUT"] + \
            self.get_nodeattr("PE") * (per_lane + acc_bits)
        return {"LUT": int(luts), "BRAM18": mem["BRAM18"], "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node, g = self.onnx_node, self.get_nodeattr
        pe = g("PE")
        table = packed_params(np.asarray(model.get_initializer(node.input[1])).astype(np.int64), pe)
        pmem_t = self._param_ctype()
        constants = dict(CH=g("NumChannels"), PE=pe, VECS=math.prod(self._vectors()))
        types = dict(in_t=element_type(self.input_datatype().name), out_t=element_type(self.output_datatype().name),
                     acc_t=f"ap_int<{signed_bits(*self._acc_range())}>", pmem_t=pmem_t)
        body = config_struct(f"{ident}_cfg", constants, types) + "\n" + array_definition(pmem_t, f"{ident}_params", table)
        pragmas = [f"#pragma HLS ARRAY_PARTITION variable={ident}_params complete dim=1",
                   f"#pragma HLS ARRAY_RESHAPE variable={ident}_params complete dim=3",
                   *storage_pragma(f"{ident}_params", g("ram_style"))]
        in_fmt, out_fmt = formats(self)
        return Kernel(node.name, node.op_type, ident, in_fmt, out_fmt,
                      f"qnnflow::channelwise<{ident}_cfg>({{inp}}, {{out}}, {ident}_params);",
                      header(ident, node, self.KERNEL_HEADER, body), pragmas)

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        """qnnflow_channelwise: word cf of the parameter ROM holds the PE (multiplier, addend) pairs of channel
        group cf, each a signed P_BITS-bit value."""
        check_emittable(self, model)
        node, g = self.onnx_node, self.get_nodeattr
        pe, odt, pdt = g("PE"), self.output_datatype(), self.datatype("paramDataType")
        table = packed_params(np.asarray(model.get_initializer(node.input[1])).astype(np.int64), pe)
        p_bits = signed_bits(int(pdt.min()), int(pdt.max()))
        mem = memory_path(ident, "params")
        rom = rom_text(table.transpose(1, 0, 2).reshape(table.shape[1], 2 * pe), signed_type(p_bits))
        params = dict(CH=g("NumChannels"), PE=pe, **element_params("IN", self.input_datatype()), P_BITS=p_bits,
                      ACC_BITS=signed_bits(*self._acc_range()), OUT_BITS=odt.bitwidth(),
                      OUT_BIPOLAR=int(odt.name == "BIPOLAR"), PARAMS=mem, RAM_STYLE=rom_style(self.memories()[0]))
        return RtlUnit(node.name, node.op_type, ident, "qnnflow_channelwise", params, *formats(self), {mem: rom})
