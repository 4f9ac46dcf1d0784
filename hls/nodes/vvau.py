"""VVAU: the vector-vector-activation unit computing depthwise convolutions (groups = channels).

Inputs: x integers, W (Channels, KernelPositions) integer initializer, and an optional
T (Channels, nT) integer threshold initializer.  x is (N, OH, OW, Channels * K) with the
window elements of an output pixel *channel-major*, (c, k) with k fastest: what the sliding
window writes in depthwise mode (hls/nodes/sliding_window.py).  ``acc[c] = sum_k x[c, k] * W[c, k]``;
with thresholds (and noActivation=0) the output is ``ActVal + #{t : acc[c] >= T[c, t]}``,
else ``acc``.  The output is (N, OH, OW, Channels).

Hardware: PE channels in parallel, SIMD kernel positions per cycle and channel.  A stream
word holds PE*SIMD consecutive window elements, so PE > 1 needs whole windows (SIMD = K):
PE channels' windows a cycle, or SIMD positions of one channel a cycle.
"""

from __future__ import annotations

import math

import numpy as np

from qnnflow.base.streams import MAX_WORD_BITS
from qnnflow.base.values import value_problem
from qnnflow.hls.codegen.cpp import ap_type, array_definition, config_struct, element_type, limb_bits, \
    memory_limbs, signed_bits
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header, storage_pragma
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import INCLUDE_DIR, HWNode, Memory, fold_problem
from qnnflow.hls.nodes.intmath import count_reached
from qnnflow.hls.nodes.mvau import MVAU, accumulator_range
from qnnflow.hls.nodes.thresholding import (
    activation_problem,
    threshold_cpp,
    threshold_slots,
    threshold_table,
    threshold_word_bits,
)

__all__ = ["VVAU", "packed_depthwise_weights"]


def packed_depthwise_weights(weights: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """W (C, K) arranged [PE][C/PE * K/SIMD][SIMD]: channel c in PE c % pe, word (c // pe) * K/SIMD + sf
    holding its positions sf*SIMD .. sf*SIMD + SIMD-1."""
    n_ch, k = weights.shape
    rows = np.asarray(weights).reshape(n_ch // pe, pe, k // simd, simd)  # [cf][pe][sf][simd]
    return np.ascontiguousarray(rows.transpose(1, 0, 2, 3)).reshape(pe, n_ch // pe * (k // simd), simd)


class VVAU(HWNode):
    """Depthwise vector-vector-activation unit (FINN's VectorVectorActivation, attribute names where it has
    them; the kernel is given as its number of positions)."""

    FINN_OP_TYPES = ("VectorVectorActivation", "Vector_Vector_Activation_Batch")
    KERNEL_HEADER = "vvau.hpp"

    def get_nodeattr_types(self):
        return {
            "Channels": ("i", True, 0),
            "KernelPositions": ("i", True, 0),
            "Dim": ("ints", True, []),
            "SIMD": ("i", False, 1),
            "PE": ("i", False, 1),
            "inputDataType": ("s", True, ""),
            "weightDataType": ("s", True, ""),
            "outputDataType": ("s", True, ""),
            "accDataType": ("s", False, "INT32"),
            "noActivation": ("i", False, 0, {0, 1}),
            "ActVal": ("i", False, 0),
            "ram_style": ("s", False, "auto", {"auto", "block", "distributed", "ultra"}),
            "resType": ("s", False, "auto", {"auto", "lut", "dsp"}),
        }

    @classmethod
    def kernel_sources(cls) -> dict[str, bytes]:
        """vvau.hpp and the MVAU's header, whose lane products and activation it uses."""
        return {**MVAU.kernel_sources(), cls.KERNEL_HEADER: (INCLUDE_DIR / cls.KERNEL_HEADER).read_bytes()}

    # ----- attributes -------------------------------------------------------------------

    def _ch_k_simd_pe(self) -> tuple[int, int, int, int]:
        return tuple(self.get_nodeattr(a) for a in ("Channels", "KernelPositions", "SIMD", "PE"))

    def _pixels(self) -> int:
        return math.prod(self.get_nodeattr("Dim"))

    def get_weight_datatype(self):
        return self.datatype("weightDataType")

    def get_accumulator_datatype(self):
        return self.datatype("accDataType")

    def node_problems(self) -> list[str]:
        found = [f"{a}={self.get_nodeattr(a)} must be at least 1"
                 for a in ("Channels", "KernelPositions", "SIMD", "PE") if self.get_nodeattr(a) < 1]
        dim = self.get_nodeattr("Dim")
        if len(dim) != 2 or min(dim) < 1:
            found.append(f"Dim={dim} must be two positive ints [OH, OW]")
        if not found and self.get_accumulator_datatype().bitwidth() > MAX_WORD_BITS:
            found.append(f"accDataType={self.get_nodeattr('accDataType')} is wider than the {MAX_WORD_BITS}-bit "
                         f"ap_int the kernel supports; narrow accDataType")
        if not found and self.has_activation() and signed_bits(*self._threshold_range()) > 64:
            found.append(f"thresholds would need {signed_bits(*self._threshold_range())} bits, beyond the kernel's "
                         f"int64 threshold memories; narrow accDataType")
        return found

    def folding_problems(self) -> list[str]:
        n_ch, k, simd, pe = self._ch_k_simd_pe()
        found = [p for p in (fold_problem("SIMD", simd, "KernelPositions", k), fold_problem("PE", pe, "Channels", n_ch))
                 if p]
        if not found and pe > 1 and simd != k:
            found.append(f"PE={pe} with SIMD={simd}: windows stream channel-major, so several channels a cycle "
                         f"need whole windows; use SIMD={k} or PE=1")
        w_bits = simd * self.get_weight_datatype().bitwidth()
        if not found and w_bits > MAX_WORD_BITS:
            found.append(f"the weight word (SIMD={simd} x {self.get_weight_datatype().bitwidth()} bits) is {w_bits} "
                         f"bits wide, beyond the {MAX_WORD_BITS}-bit words the HLS kernels support; lower SIMD")
        return found

    def parallel_knobs(self):
        return {"PE": "Channels", "SIMD": "KernelPositions"}

    def parameter_word_bits(self) -> int:
        """PE * SIMD * weight bits: the weight bits read per cycle across the PEs."""
        return self.get_nodeattr("PE") * self.get_nodeattr("SIMD") * self.get_weight_datatype().bitwidth()

    def has_activation(self) -> bool:
        inputs = self.onnx_node.input
        return self.get_nodeattr("noActivation") == 0 and len(inputs) > 2 and bool(inputs[2])

    def tensor_problems(self, weights: np.ndarray, thresholds: np.ndarray | None) -> list[str]:
        """Problems with the weight and threshold tensors given the attributes."""
        n_ch, k, _, _ = self._ch_k_simd_pe()
        w_name = self.onnx_node.input[1]
        if weights.shape != (n_ch, k):
            return [f"weights '{w_name}' have shape {weights.shape}, expected (Channels, KernelPositions) = ({n_ch}, {k})"]
        bad = value_problem(weights, self.get_weight_datatype())
        if bad:
            return [f"weights '{w_name}' {bad}; set weightDataType to a type that holds them"]
        adt, odt = self.get_accumulator_datatype(), self.output_datatype()
        lo, hi = accumulator_range(np.asarray(weights).T, self.input_datatype())
        found = []
        if lo < adt.min() or hi > adt.max():
            found.append(f"accumulator range [{lo}, {hi}] does not fit accDataType={adt.name}; widen accDataType")
        if thresholds is not None and self.get_nodeattr("noActivation") == 0:
            p = activation_problem(thresholds, n_ch, self.get_nodeattr("ActVal"), odt, self.onnx_node.input[2])
            if p:
                found.append(p)
        elif not (odt.min() <= lo and hi <= odt.max()) or odt.name == "BIPOLAR":
            found.append(f"accumulator range [{lo}, {hi}] does not fit outputDataType={odt.name}; "
                         f"without thresholds the output is the accumulator")
        return found

    def model_problems(self, model) -> list[str]:
        """All problems, including those of the weight/threshold initializers in ``model``."""
        found = self.problems()
        if found:
            return found
        inputs = self.onnx_node.input
        weights = model.get_initializer(inputs[1]) if len(inputs) > 1 else None
        if weights is None:
            return ["input 1 (weights) must be an initializer"]
        thresholds = model.get_initializer(inputs[2]) if len(inputs) > 2 and inputs[2] else None
        return self.tensor_problems(np.asarray(weights), None if thresholds is None else np.asarray(thresholds))

    # ----- execution --------------------------------------------------------------------

    def compute(self, x, weights, thresholds=None):
        n_ch, k, _, _ = self._ch_k_simd_pe()
        oh, ow = self.get_nodeattr("Dim")
        self.check_shape(x, (oh, ow, n_ch * k), " (window elements channel-major, as the depthwise sliding window "
                                                "writes them)")
        found = self.tensor_problems(weights, thresholds)
        if found:
            raise self.error("; ".join(found))
        xi = self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")
        wi = np.asarray(weights).astype(np.int64)
        acc = np.einsum("nhwck,ck->nhwc", xi.reshape(*xi.shape[:3], n_ch, k), wi)  # int64: exact
        if thresholds is None or self.get_nodeattr("noActivation") == 1:
            return acc
        return self.get_nodeattr("ActVal") + count_reached(acc, np.asarray(thresholds).astype(np.int64))

    def make_shape_compatible_op(self, model):
        return self.make_const_shape_op((self.batch_of(model), *self.normal_output_shape()[1:]))

    # ----- shapes and streams -----------------------------------------------------------

    def normal_input_shape(self):
        n_ch, k, _, _ = self._ch_k_simd_pe()
        return (1, *self.get_nodeattr("Dim"), n_ch * k)

    def normal_output_shape(self):
        return (1, *self.get_nodeattr("Dim"), self.get_nodeattr("Channels"))

    def folded_input_shape(self):
        n_ch, k, simd, pe = self._ch_k_simd_pe()
        return (1, *self.get_nodeattr("Dim"), n_ch * k // (pe * simd), pe * simd)

    def folded_output_shape(self):
        n_ch, _, _, pe = self._ch_k_simd_pe()
        return (1, *self.get_nodeattr("Dim"), n_ch // pe, pe)

    # ----- cost model -------------------------------------------------------------------

    def calc_wmem(self) -> int:
        """Words per PE weight memory: C*K / (PE*SIMD)."""
        n_ch, k, simd, pe = self._ch_k_simd_pe()
        return n_ch * k // (pe * simd)

    def cycles(self) -> int:
        """(C/PE) * (K/SIMD) per output pixel (FINN VVAU get_exp_cycles)."""
        self.check()
        n_ch, k, simd, pe = self._ch_k_simd_pe()
        return (n_ch // pe) * (k // simd) * self._pixels()

    def acc_bits(self) -> int:
        """Accumulator width: accDataType, capped by what K products can reach."""
        bound = (self.input_datatype().bitwidth() + self.get_weight_datatype().bitwidth()
                 + math.ceil(math.log2(self.get_nodeattr("KernelPositions"))))
        return min(self.get_accumulator_datatype().bitwidth(), bound)

    def _compared_range(self) -> tuple[int, int]:
        """Every accumulator value lies here: within accDataType and the signed range of acc_bits."""
        adt, bits = self.get_accumulator_datatype(), self.acc_bits()
        return max(int(adt.min()), -(1 << (bits - 1))), min(int(adt.max()), (1 << (bits - 1)) - 1)

    def _threshold_range(self) -> tuple[int, int]:
        lo, hi = self._compared_range()
        return lo, hi + 1

    def uses_dsp(self) -> bool:
        """resType=dsp, or auto with both operands at least 5 bits wide (the MVAU's rule)."""
        res = self.get_nodeattr("resType")
        narrow = min(self.input_datatype().bitwidth(), self.get_weight_datatype().bitwidth())
        return res == "dsp" or (res == "auto" and narrow >= 5)

    def memories(self):
        """Per PE, its weights (SIMD weights a word, in whole C++ limbs) and, with an activation, its
        thresholds (all slots of a channel in one word).  Each input element is used once: no input buffer."""
        n_ch, _, simd, pe = self._ch_k_simd_pe()
        mems = [Memory("weights", pe, self.calc_wmem(), limb_bits(simd * self.get_weight_datatype().bitwidth()),
                       self.get_nodeattr("ram_style"))]
        if self.has_activation():
            slots = threshold_slots(self.output_datatype(), self.get_nodeattr("ActVal"))
            mems.append(Memory("thresholds", pe, n_ch // pe, threshold_word_bits(slots, *self._compared_range()),
                               "auto"))
        return mems

    def resources(self, board: dict) -> dict:
        """As the MVAU's (FINN-R): control + 1.1 * PE * (SIMD lane products + adder tree + accumulator +
        comparators), plus the memories; multi-bit products in DSPs when ``uses_dsp``."""
        self.check()
        family = cost.part_family(board)
        cost.uram_check(self.get_nodeattr("ram_style"), board, self.name)
        idt, wdt = self.input_datatype(), self.get_weight_datatype()
        a_bits, w_bits = idt.bitwidth(), wdt.bitwidth()
        _, _, simd, pe = self._ch_k_simd_pe()
        acc, dsp = self.acc_bits(), 0
        tree = cost.adder_tree_luts(simd, a_bits + w_bits)
        if self.uses_dsp():
            dsp = pe * simd * cost.dsp_multiplier(a_bits, idt.signed(), w_bits, wdt.signed(), family)
            per_pe = tree + acc
        else:
            per_pe = simd * cost.lut_multiplier(a_bits, w_bits) + tree + acc
        if self.has_activation():
            per_pe += threshold_slots(self.output_datatype(), self.get_nodeattr("ActVal")) * cost.comparator_luts(acc)
        mem = cost.memories_cost(self.memories())
        luts = mem["LUT"] + cost.control_luts(board) + cost.DATAPATH_SCALE * pe * per_pe
        return {"LUT": int(math.ceil(luts)), "BRAM18": int(mem["BRAM18"]), "DSP": int(dsp)}

    # ----- C++ --------------------------------------------------------------------------

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node, g = self.onnx_node, self.get_nodeattr
        n_ch, k, simd, pe = self._ch_k_simd_pe()
        idt, wdt, odt = self.input_datatype(), self.get_weight_datatype(), self.output_datatype()
        weights = np.asarray(model.get_initializer(node.input[1])).astype(np.int64)
        wmem_t, limbs = memory_limbs(packed_depthwise_weights(weights, pe, simd), wdt.name)  # [PE][WMEM][limbs]
        has_act = self.has_activation()
        constants = dict(CH=n_ch, K=k, SIMD=simd, PE=pe, VECS=self._pixels(), WMEM=limbs.shape[1],
                         WLIMBS=limbs.shape[2], TMEM=n_ch // pe if has_act else 1, NT=0, TSLOTS=1,
                         HAS_ACT=int(has_act), ACT_VAL=g("ActVal") if has_act else 0, DSP=int(self.uses_dsp()))
        types = dict(in_t=element_type(idt.name), w_t=element_type(wdt.name), out_t=element_type(odt.name),
                     acc_t=ap_type(g("accDataType")), wmem_t=wmem_t)
        parts = ["// weights[pe][cf * K/SIMD + sf]: positions sf*SIMD.. of channel cf*PE + pe\n"
                 + array_definition(wmem_t, f"{ident}_weights", limbs)]
        pragmas = [f"#pragma HLS ARRAY_PARTITION variable={ident}_weights complete dim=1",
                   f"#pragma HLS ARRAY_RESHAPE variable={ident}_weights complete dim=3",
                   *storage_pragma(f"{ident}_weights", g("ram_style"))]
        thresholds = f"qnnflow::mvau_no_thresholds<{ident}_cfg>::table"
        if has_act:
            lo, hi = self._compared_range()
            slots = threshold_slots(odt, g("ActVal"))
            table = threshold_table(model.get_initializer(node.input[2]), pe, slots, lo, hi)
            types["thr_t"], types["tmem_t"], thr_def = threshold_cpp(ident, table, lo, hi)
            constants["NT"] = constants["TSLOTS"] = slots
            parts.append("// thresholds[pe][cf][t]: ascending thresholds of channel cf*PE + pe\n" + thr_def)
            pragmas += [f"#pragma HLS ARRAY_PARTITION variable={ident}_thresholds complete dim=1",
                        f"#pragma HLS ARRAY_RESHAPE variable={ident}_thresholds complete dim=3"]
            thresholds = f"{ident}_thresholds"
        else:
            types["thr_t"], types["tmem_t"] = "ap_int<2>", "int8_t"
        body = "\n".join([config_struct(f"{ident}_cfg", constants, types), *parts])
        in_fmt, out_fmt = formats(self)
        return Kernel(node.name, node.op_type, ident, in_fmt, out_fmt,
                      f"qnnflow::vvau<{ident}_cfg>({{inp}}, {{out}}, {ident}_weights, {thresholds});",
                      header(ident, node, self.KERNEL_HEADER, body), pragmas)
