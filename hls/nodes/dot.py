"""``DotProductNode``: what the MVAU and the VVAU share, written once.

Both sum products of integer inputs and an integer weight initializer, SIMD products a cycle
in each of PE parallel lanes (one output per lane at a time), then either compare the sums with
an optional threshold initializer (the activation) or output them.  This class owns what
follows from that alone: the weight and threshold tensor checks, the accumulator's range and
width, the LUT/DSP choice of the products, the weight and threshold memories with the cost
model over them, and the parameter part of the emitted C++.  A subclass says how many
products make an output and how many outputs there are (``_dot``), the shape of its weights,
and its own stream shapes, execution and kernel call.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np

from qnnflow.base.streams import MAX_WORD_BITS
from qnnflow.base.values import value_problem
from qnnflow.hls.codegen.cpp import ap_type, array_definition, element_type, limb_bits, memory_limbs, signed_bits
from qnnflow.hls.codegen.rtl_unit import element_params, memory_path, rom_style, rom_text
from qnnflow.hls.codegen.kernel import storage_pragma
from qnnflow.hls.nodes import cost, yosys_fit
from qnnflow.hls.nodes.base import HWNode, Memory
from qnnflow.hls.nodes.intmath import count_reached
from qnnflow.hls.nodes.thresholding import (
    activation_problem,
    threshold_cpp,
    threshold_rtl,
    threshold_slots,
    threshold_table,
    threshold_word_bits,
)


SHALLOW_ROM_DEPTH = 32  # a ROM bit of 5 address bits and the lane that reads it fit one LUT6 (lut_terms)
# Yosys's synth_xilinx maps a product to a DSP48 from 9 result bits (mul2dsp's DSP_Y_MINWIDTH): uses_dsp
RTL_DSP_MIN_PRODUCT_BITS = 9


class DotProductNode(HWNode):
    """Abstract: weights x inputs summed per output, PE outputs in parallel, SIMD products a cycle each,
    then thresholds.  Attributes it reads: SIMD, PE, weightDataType, accDataType, noActivation, ActVal,
    ram_style, resType."""

    def get_nodeattr_types(self):
        """The attributes every such node has (FINN's names); a subclass adds its dimensions."""
        return {
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

    @abstractmethod
    def _dot(self) -> tuple[int, int, int, int]:
        """(products summed per output, outputs, SIMD, PE)."""

    @abstractmethod
    def weight_layout(self) -> tuple[tuple[int, int], str]:
        """The weight initializer's shape and how it is named, e.g. ((MW, MH), "(MW, MH)")."""

    @abstractmethod
    def accumulator_range(self, weights: np.ndarray) -> tuple[int, int]:
        """Smallest and largest sum over all inputs of the input DataType, for these weights."""

    def xnor(self) -> bool:
        """XNOR-popcount instead of products (the MVAU's binaryXnorMode)."""
        return False

    def get_weight_datatype(self):
        return self.datatype("weightDataType")

    def get_accumulator_datatype(self):
        return self.datatype("accDataType")

    def has_activation(self) -> bool:
        inputs = self.onnx_node.input
        return self.get_nodeattr("noActivation") == 0 and len(inputs) > 2 and bool(inputs[2])

    # ----- legality ---------------------------------------------------------------------

    def accumulator_problems(self) -> list[str]:
        """The accumulator and the thresholds must fit the kernel's ap_int and int64 memories."""
        if self.get_accumulator_datatype().bitwidth() > MAX_WORD_BITS:
            return [f"accDataType={self.get_nodeattr('accDataType')} is wider than the {MAX_WORD_BITS}-bit "
                    f"ap_int the kernel supports; narrow accDataType"]
        if self.get_nodeattr("noActivation") == 0 and signed_bits(*self._threshold_range()) > 64:
            return [f"thresholds would need {signed_bits(*self._threshold_range())} bits, beyond the kernel's "
                    f"int64 threshold memories; narrow accDataType"]
        return []

    def weight_word_problems(self) -> list[str]:
        """The SIMD weights read a cycle by a PE must fit a stream-word-wide memory word."""
        simd, bits = self.get_nodeattr("SIMD"), self.get_weight_datatype().bitwidth()
        if simd * bits > MAX_WORD_BITS:
            return [f"the weight word (SIMD={simd} x {bits} bits) is {simd * bits} bits wide, beyond the "
                    f"{MAX_WORD_BITS}-bit words the HLS kernels support; lower SIMD"]
        return []

    def parameter_word_bits(self) -> int:
        """PE * SIMD * weight bits: the weight bits read per cycle across the PEs."""
        return self.get_nodeattr("PE") * self.get_nodeattr("SIMD") * self.get_weight_datatype().bitwidth()

    def tensor_problems(self, weights: np.ndarray, thresholds: np.ndarray | None) -> list[str]:
        """Problems with the weight and threshold tensors given the attributes."""
        (shape, named), w_name = self.weight_layout(), self.onnx_node.input[1]
        if weights.shape != shape:
            return [f"weights '{w_name}' have shape {weights.shape}, expected {named} = {shape}"]
        bad = value_problem(weights, self.get_weight_datatype())
        if bad:
            return [f"weights '{w_name}' {bad}; set weightDataType to a type that holds them"]
        found = []
        adt, odt = self.get_accumulator_datatype(), self.output_datatype()
        lo, hi = self.accumulator_range(weights)
        if lo < adt.min() or hi > adt.max():
            found.append(f"accumulator range [{lo}, {hi}] does not fit accDataType={adt.name}; widen accDataType")
        if thresholds is not None and self.get_nodeattr("noActivation") == 0:
            p = activation_problem(thresholds, self._dot()[1], self.get_nodeattr("ActVal"), odt, self.onnx_node.input[2])
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

    def activate(self, acc: np.ndarray, thresholds: np.ndarray | None) -> np.ndarray:
        """The output for int64 sums ``acc`` (..., outputs): ActVal + the thresholds reached, or the sums."""
        if thresholds is None or self.get_nodeattr("noActivation") == 1:
            return acc
        return self.get_nodeattr("ActVal") + count_reached(acc, np.asarray(thresholds).astype(np.int64))

    # ----- cost model -------------------------------------------------------------------

    def calc_wmem(self) -> int:
        """Words per PE weight memory: products * outputs / (PE * SIMD)."""
        products, outputs, simd, pe = self._dot()
        return products * outputs // (pe * simd)

    def acc_bits(self) -> int:
        """Accumulator width: accDataType, capped by what the products (or popcounts) can reach."""
        products = self._dot()[0]
        if self.xnor():
            bound = math.ceil(math.log2(products + 1))
        else:
            bound = (self.input_datatype().bitwidth() + self.get_weight_datatype().bitwidth()
                     + math.ceil(math.log2(products)))
        return min(self.get_accumulator_datatype().bitwidth(), bound)

    def _compared_range(self) -> tuple[int, int]:
        """Every accumulator value thresholds are compared with lies here (popcounts for XNOR): within
        accDataType and within the signed range of acc_bits, which the products cannot leave."""
        if self.xnor():
            return 0, self._dot()[0]
        adt, bits = self.get_accumulator_datatype(), self.acc_bits()
        return max(int(adt.min()), -(1 << (bits - 1))), min(int(adt.max()), (1 << (bits - 1)) - 1)

    def _threshold_range(self) -> tuple[int, int]:
        """Thresholds are stored clipped to this range (thresholding.threshold_table)."""
        lo, hi = self._compared_range()
        return lo, hi + 1

    def sign_agreement(self) -> bool:
        """Both operands BIPOLAR (not in XNOR mode): each product is +1 where the bits agree, -1 where not,
        which the RTL sums as XNOR mode does (a popcount, qnnflow_dot_sum.v); the cost model follows it."""
        return not self.xnor() and self.input_datatype().name == self.get_weight_datatype().name == "BIPOLAR"

    def popcount_lanes(self, board: dict) -> bool:
        """Lanes summed as a popcount: XNOR mode, and on the RTL back end's board (its cost model) a sign
        agreement too."""
        return self.xnor() or (yosys_fit.uses_yosys_fit(board) and self.sign_agreement())

    def uses_dsp(self, rtl: bool = False) -> bool:
        """resType=dsp, or auto with both operands at least 5 bits wide (narrower products stay in LUTs).
        Never with a BIPOLAR operand: its product is a sign flip in both back ends, no multiplier.
        In the RTL (``rtl``: its emission, and the cost model fitted to it) never for a product narrower
        than RTL_DSP_MIN_PRODUCT_BITS either: Yosys puts none in a DSP48, so the RTL builds it as the LUT
        lanes do."""
        if self.xnor() or "BIPOLAR" in (self.input_datatype().name, self.get_weight_datatype().name):
            return False
        a_bits, w_bits = self.input_datatype().bitwidth(), self.get_weight_datatype().bitwidth()
        if rtl and a_bits + w_bits < RTL_DSP_MIN_PRODUCT_BITS:
            return False
        res = self.get_nodeattr("resType")
        return res == "dsp" or (res == "auto" and min(a_bits, w_bits) >= 5)

    def memories(self):
        """Per PE, its weights (one word of SIMD weights per cycle, in whole C++ limbs) and, with an
        activation, its thresholds (all slots of an output in one word)."""
        _, outputs, simd, pe = self._dot()
        mems = [Memory("weights", pe, self.calc_wmem(), limb_bits(simd * self.get_weight_datatype().bitwidth()),
                       self.get_nodeattr("ram_style"))]
        if self.has_activation():
            slots = threshold_slots(self.output_datatype(), self.get_nodeattr("ActVal"))
            mems.append(Memory("thresholds", pe, outputs // pe, threshold_word_bits(slots, *self._compared_range()),
                               "auto"))
        return mems

    def resources(self, board: dict) -> dict:
        """FINN-R style: LUT = control + 1.1 * PE * (SIMD lanes + adder tree + accumulator + comparators),
        plus the memories (``memories``).

        Lanes: 1 LUT (XNOR) with a popcount tree in XNOR mode, else a LUT multiplier
        (cost.lut_multiplier) or DSPs (cost.dsp_multiplier); cost.py documents the calibration.
        """
        parts, bram, dsp = self._cost_parts(board)
        mem, control, lanes, acc, compare = (parts[k] for k in ("memory", "control", "lanes", "acc", "compare"))
        luts = mem + control + cost.DATAPATH_SCALE * parts["pe"] * (lanes + acc + compare)
        return {"LUT": int(math.ceil(luts)), "BRAM18": int(bram), "DSP": int(dsp)}

    def lut_terms(self, board: dict) -> dict:
        """``resources``' LUTs in the parts the RTL cost model scales one by one (hls/nodes/yosys_fit.py): each
        memory, and the lanes named by how they compute (XNOR popcount, LUT products, DSP products' adder tree).

        A memory at most SHALLOW_ROM_DEPTH deep is a term of its own: a ROM bit of so few address bits fits
        in the LUT of the lane that reads it, so in logic it costs next to nothing, where a deep one costs
        several LUTs a bit."""
        parts, _, _ = self._cost_parts(board)
        scale = cost.DATAPATH_SCALE * parts["pe"]
        rtl = yosys_fit.uses_yosys_fit(board)
        lanes = "xnor_lanes" if self.popcount_lanes(board) else "dsp_lanes" if self.uses_dsp(rtl) else "product_lanes"
        roms = {mem.name for mem in DotProductNode.memories(self)}  # the parameters; a subclass may add RAMs
        memories = {f"memory_{mem.name}" + ("_shallow" if mem.name in roms and mem.depth <= SHALLOW_ROM_DEPTH else ""):
                    cost.memories_cost([mem])["LUT"] for mem in self.memories()}
        return {"control": parts["control"], **memories, lanes: scale * parts["lanes"],
                "accumulators": scale * parts["acc"], "comparators": scale * parts["compare"]}

    def _cost_parts(self, board: dict) -> tuple[dict, int, int]:
        """({memory, control, pe, lanes, acc, compare} LUTs (lanes, acc, compare per PE, before the datapath
        scale), BRAM18, DSP)."""
        self.check()
        family = cost.part_family(board)
        cost.uram_check(self.get_nodeattr("ram_style"), board, self.name)
        idt, wdt = self.input_datatype(), self.get_weight_datatype()
        a_bits, w_bits = idt.bitwidth(), wdt.bitwidth()
        _, _, simd, pe = self._dot()
        acc = self.acc_bits()
        dsp = 0
        if self.popcount_lanes(board):
            lanes = simd * 1 + cost.popcount_luts(simd, board)
        elif self.uses_dsp(rtl=yosys_fit.uses_yosys_fit(board)):
            dsp = pe * simd * cost.dsp_multiplier(a_bits, idt.signed(), w_bits, wdt.signed(), family)
            lanes = cost.adder_tree_luts(simd, a_bits + w_bits)
        else:
            lanes = simd * cost.lut_multiplier(a_bits, w_bits) + cost.adder_tree_luts(simd, a_bits + w_bits)
        compare = 0
        if self.has_activation():
            slots = threshold_slots(self.output_datatype(), self.get_nodeattr("ActVal"))
            compare = slots * cost.comparator_luts(acc)
        mem = cost.memories_cost(self.memories())
        parts = {"memory": mem["LUT"], "control": cost.control_luts(board), "pe": pe, "lanes": lanes, "acc": acc,
                 "compare": compare}
        return parts, mem["BRAM18"], dsp

    def emitted_thresholds(self, model) -> tuple[np.ndarray, int, int]:
        """(table [PE][outputs/PE][slots], lo, hi): the threshold memory both back ends emit, for compared
        values in [lo, hi]."""
        lo, hi = self._compared_range()
        slots = threshold_slots(self.output_datatype(), self.get_nodeattr("ActVal"))
        initializer = model.get_initializer(self.onnx_node.input[2])
        return threshold_table(initializer, self.get_nodeattr("PE"), slots, lo, hi), lo, hi

    # ----- C++ --------------------------------------------------------------------------

    def emit_parameters(self, model, ident: str, packed: np.ndarray, layout: str):
        """The parameter part of the kernel: (constants, types, definitions, pragmas, thresholds argument).

        ``packed``: the weights [PE][WMEM][SIMD] in the kernel's order, ``layout`` the C++ comment saying it.
        Constants: SIMD, PE, WMEM, WLIMBS, TMEM, NT, TSLOTS, HAS_ACT, ACT_VAL, DSP; types: in_t, w_t,
        out_t, acc_t, wmem_t, thr_t, tmem_t (see mvau.hpp).
        """
        g = self.get_nodeattr
        _, outputs, simd, pe = self._dot()
        wdt = self.get_weight_datatype()
        wmem_t, limbs = memory_limbs(packed, wdt.name)  # [PE][WMEM][limbs]
        has_act = self.has_activation()
        constants = dict(SIMD=simd, PE=pe, WMEM=limbs.shape[1], WLIMBS=limbs.shape[2],
                         TMEM=outputs // pe if has_act else 1, NT=0, TSLOTS=1, HAS_ACT=int(has_act),
                         ACT_VAL=g("ActVal") if has_act else 0, DSP=int(self.uses_dsp()))
        types = dict(in_t=element_type(self.input_datatype().name), w_t=element_type(wdt.name),
                     out_t=element_type(self.output_datatype().name), acc_t=ap_type(g("accDataType")),
                     wmem_t=wmem_t)
        parts = [f"{layout}\n" + array_definition(wmem_t, f"{ident}_weights", limbs)]
        pragmas = [f"#pragma HLS ARRAY_PARTITION variable={ident}_weights complete dim=1",
                   f"#pragma HLS ARRAY_RESHAPE variable={ident}_weights complete dim=3",
                   *storage_pragma(f"{ident}_weights", g("ram_style"))]
        thresholds = f"qnnflow::mvau_no_thresholds<{ident}_cfg>::table"
        if has_act:
            table, lo, hi = self.emitted_thresholds(model)
            slots = table.shape[2]
            types["thr_t"], types["tmem_t"], thr_def = threshold_cpp(ident, table, lo, hi)
            constants["NT"] = constants["TSLOTS"] = slots
            parts.append("// thresholds[pe][nf][t]: ascending thresholds of output nf*PE + pe\n" + thr_def)
            pragmas += [f"#pragma HLS ARRAY_PARTITION variable={ident}_thresholds complete dim=1",
                        f"#pragma HLS ARRAY_RESHAPE variable={ident}_thresholds complete dim=3"]
            thresholds = f"{ident}_thresholds"
        else:
            types["thr_t"], types["tmem_t"] = "ap_int<2>", "int8_t"
        return constants, types, parts, pragmas, thresholds

    # ----- RTL --------------------------------------------------------------------------

    def rtl_parameters(self, model, ident: str, words: np.ndarray) -> tuple[dict, dict[str, bytes]]:
        """(Verilog parameters, memory files) shared by qnnflow_mvau and qnnflow_vvau: lanes, products,
        accumulator, activation and the ROMs.  ``words`` (WMEM, PE*SIMD): the weight ROM's words in the
        order the module reads them."""
        g = self.get_nodeattr
        _, _, simd, pe = self._dot()
        idt, wdt, odt = self.input_datatype(), self.get_weight_datatype(), self.output_datatype()
        weights = np.asarray(model.get_initializer(self.onnx_node.input[1])).astype(np.int64)
        w_mem = memory_path(ident, "weights")
        memories = {w_mem: rom_text(words, wdt.name)}
        roms = {mem.name: mem for mem in self.memories()}
        acc_bits = signed_bits(*self.accumulator_range(weights))
        params = dict(SIMD=simd, PE=pe, **element_params("IN", idt), **element_params("W", wdt),
                      USE_DSP=int(self.uses_dsp(rtl=True)), ACC_BITS=acc_bits, OUT_BITS=odt.bitwidth(), HAS_ACT=0, NT=1,
                      T_BITS=2, ACT_VAL=0, WEIGHTS=w_mem, THRESHOLDS="", RAM_STYLE=rom_style(roms["weights"]))
        if self.has_activation():
            table, lo, hi = self.emitted_thresholds(model)
            t_bits, rom = threshold_rtl(table, lo, hi)
            t_mem = memory_path(ident, "thresholds")
            memories[t_mem] = rom
            params.update(HAS_ACT=1, NT=table.shape[2], T_BITS=t_bits, ACT_VAL=g("ActVal"), THRESHOLDS=t_mem,
                          T_RAM_STYLE=rom_style(roms["thresholds"]),
                          ACC_BITS=max(acc_bits, signed_bits(lo, hi)))
        else:  # the output is the accumulator: its low OUT_BITS bits are the output's code
            params["ACC_BITS"] = max(acc_bits, odt.bitwidth())
        return params, memories
