"""Thresholding: multi-threshold activation on a channels-last stream.

``out[..., c] = ActVal + #{t : x[..., c] >= T[c, t]}`` for x (N, *numInputVectors[1:], C)
and a threshold initializer T (C, nT).  PE channels are compared per cycle.
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
from qnnflow.hls.nodes.intmath import count_reached

__all__ = ["Thresholding"]


def packed_thresholds(thresholds: np.ndarray, pe: int) -> np.ndarray:
    """T (C, nT) arranged [PE][C/PE][nT]: ascending within a row, row c in PE c % pe at local row c // pe."""
    n_ch, n_thr = thresholds.shape
    rows = np.sort(np.asarray(thresholds), axis=1).reshape(n_ch // pe, pe, n_thr)
    return np.ascontiguousarray(rows.transpose(1, 0, 2))


def threshold_slots(odt, act_val: int) -> int:
    """Threshold slots per channel in the emitted memories: as many as outputs ActVal.. odt.max need."""
    return max(int(odt.max()) - act_val, 1)


def threshold_table(thresholds: np.ndarray, pe: int, slots: int, lo: int, hi: int) -> np.ndarray:
    """The emitted threshold memory [PE][C/PE][slots] for compared values in [lo, hi].

    Thresholds are clipped to [lo, hi + 1] (one below lo always fires, one above hi never
    does: the same counts) and padded to ``slots`` with hi + 1, so the memory's width is
    fixed by the node's attributes, as ``memories()`` costs it.
    """
    table = np.clip(packed_thresholds(np.asarray(thresholds).astype(np.int64), pe), lo, hi + 1)
    pad = np.full((*table.shape[:2], slots - table.shape[2]), hi + 1, np.int64)
    return np.concatenate([table, pad], axis=2)


def threshold_cpp(ident: str, table: np.ndarray, lo: int, hi: int) -> tuple[str, str, str]:
    """(thr_t, tmem_t, array definition) of a threshold table for compared values in [lo, hi]."""
    tmem_t = pod_signed(lo, hi + 1)
    return f"ap_int<{signed_bits(lo, hi + 1)}>", tmem_t, array_definition(tmem_t, f"{ident}_thresholds", table)


def threshold_rtl(table: np.ndarray, lo: int, hi: int) -> tuple[int, bytes]:
    """(T_BITS, ROM text) of a threshold table [PE][rows][slots] for compared values in [lo, hi]: word r
    holds PE x slots signed T_BITS-bit thresholds, lane p's slot t at lane p*slots + t (qnnflow_activation)."""
    pe, rows, slots = table.shape
    bits = signed_bits(lo, hi + 1)
    return bits, rom_text(table.transpose(1, 0, 2).reshape(rows, pe * slots), signed_type(bits))


def threshold_word_bits(slots: int, lo: int, hi: int) -> int:
    """Bits of one emitted threshold memory word: ``slots`` thresholds for compared values in [lo, hi]."""
    return slots * int(pod_signed(lo, hi + 1)[3:-2])


def activation_problem(thresholds: np.ndarray, n_ch: int, act_val: int, odt, what: str) -> str | None:
    """Why thresholds (n_ch, nT) cannot drive outputs ActVal + 0..nT of DataType ``odt``, or None."""
    if thresholds.ndim != 2 or thresholds.shape[0] != n_ch:
        return f"thresholds '{what}' have shape {thresholds.shape}, expected ({n_ch}, nT)"
    bad = value_problem(thresholds)
    if bad:
        return f"thresholds '{what}' {bad}; round them up (x >= t  <=>  x >= ceil(t))"
    top = act_val + thresholds.shape[1]
    if odt.name == "BIPOLAR" or act_val < odt.min() or top > odt.max():
        return f"outputs span [{act_val}, {top}] (ActVal + 0..nT), which outputDataType={odt.name} cannot hold"
    return None


class Thresholding(ChannelStreamNode):
    """Multi-threshold activation (FINN's Thresholding attribute names)."""

    FINN_OP_TYPES = ("Thresholding_Batch",)
    KERNEL_HEADER = "thresholding.hpp"
    RTL_SOURCES = ("qnnflow_thresholding.v", "qnnflow_rom.v", "qnnflow_activation.v", "qnnflow_lane.v")

    def get_nodeattr_types(self):
        return {
            "NumChannels": ("i", True, 0),
            "PE": ("i", False, 1),
            "inputDataType": ("s", True, ""),
            "outputDataType": ("s", True, ""),
            "ActVal": ("i", False, 0),
            "numInputVectors": ("ints", False, [1]),
            "ram_style": ("s", False, "auto", {"auto", "block", "distributed"}),
        }


    def _compared_range(self) -> tuple[int, int]:
        idt = self.input_datatype()
        return int(idt.min()), int(idt.max())

    def model_problems(self, model) -> list[str]:
        found = self.problems()
        if found:
            return found
        t_name = self.onnx_node.input[1]
        thresholds = model.get_initializer(t_name)
        if thresholds is None:
            return ["input 1 (thresholds) must be an initializer"]
        p = activation_problem(np.asarray(thresholds), self.get_nodeattr("NumChannels"),
                               self.get_nodeattr("ActVal"), self.output_datatype(), t_name)
        return [p] if p else []

    def compute(self, x, thresholds):
        n_ch = self.get_nodeattr("NumChannels")
        self.check_shape(x, (*self._vectors(), n_ch))
        p = activation_problem(thresholds, n_ch, self.get_nodeattr("ActVal"), self.output_datatype(),
                               self.onnx_node.input[1])
        if p:
            raise self.error(p)
        xi = self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")
        return self.get_nodeattr("ActVal") + count_reached(xi, np.asarray(thresholds).astype(np.int64))

    def memories(self):
        """Per PE, the thresholds of its C/PE channels, all slots of a channel in one word."""
        lo, hi = self._compared_range()
        slots = threshold_slots(self.output_datatype(), self.get_nodeattr("ActVal"))
        pe = self.get_nodeattr("PE")
        return [Memory("thresholds", pe, self.get_nodeattr("NumChannels") // pe, threshold_word_bits(slots, lo, hi),
                       self.get_nodeattr("ram_style"))]

    def resources(self, board: dict) -> dict:
        """PE x slots comparators of the threshold width, plus the threshold memories."""
        self.check()
        cost.part_family(board)
        lo, hi = self._compared_range()
        slots = threshold_slots(self.output_datatype(), self.get_nodeattr("ActVal"))
        mem = cost.memories_cost(self.memories())
        luts = cost.control_luts(board, cost.STREAMING_CONTROL_LUTS) + mem["LUT"] + \
            self.get_nodeattr("PE") * slots * cost.comparator_luts(signed_bits(lo, hi + 1))
        return {"LUT": int(luts), "BRAM18": mem["BRAM18"], "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node, g = self.onnx_node, self.get_nodeattr
        pe, lo, hi = g("PE"), *self._compared_range()
        slots = threshold_slots(self.output_datatype(), g("ActVal"))
        table = threshold_table(model.get_initializer(node.input[1]), pe, slots, lo, hi)
        thr_t, tmem_t, thr_def = threshold_cpp(ident, table, lo, hi)
        constants = dict(CH=g("NumChannels"), PE=pe, VECS=math.prod(self._vectors()), NT=slots, ACT_VAL=g("ActVal"))
        types = dict(in_t=element_type(self.input_datatype().name), out_t=element_type(self.output_datatype().name),
                     thr_t=thr_t, tmem_t=tmem_t)
        body = config_struct(f"{ident}_cfg", constants, types) + "\n" + thr_def
        pragmas = [f"#pragma HLS ARRAY_PARTITION variable={ident}_thresholds complete dim=1",
                   f"#pragma HLS ARRAY_RESHAPE variable={ident}_thresholds complete dim=3",
                   *storage_pragma(f"{ident}_thresholds", g("ram_style"))]
        in_fmt, out_fmt = formats(self)
        return Kernel(node.name, node.op_type, ident, in_fmt, out_fmt,
                      f"qnnflow::thresholding<{ident}_cfg>({{inp}}, {{out}}, {ident}_thresholds);",
                      header(ident, node, self.KERNEL_HEADER, body), pragmas)

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        check_emittable(self, model)
        node, g = self.onnx_node, self.get_nodeattr
        idt, odt = self.input_datatype(), self.output_datatype()
        pe, lo, hi = g("PE"), *self._compared_range()
        slots = threshold_slots(odt, g("ActVal"))
        t_bits, rom = threshold_rtl(threshold_table(model.get_initializer(node.input[1]), pe, slots, lo, hi), lo, hi)
        mem = memory_path(ident, "thresholds")
        params = dict(CH=g("NumChannels"), PE=pe, **element_params("IN", idt),
                      OUT_BITS=odt.bitwidth(), NT=slots, T_BITS=t_bits, ACT_VAL=g("ActVal"), THRESHOLDS=mem,
                      RAM_STYLE=rom_style(self.memories()[0]))
        return RtlUnit(node.name, node.op_type, ident, "qnnflow_thresholding", params, *formats(self), {mem: rom})
