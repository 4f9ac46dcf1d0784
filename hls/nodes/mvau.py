"""MVAU: the matrix-vector-activation unit computing fully connected and lowered conv layers.

Inputs: x integers, W (MW, MH) integer initializer, and an optional T (MH, nT) integer
threshold initializer.  ``acc = x @ W``; with thresholds (and noActivation=0) the output is
``ActVal + #{t : acc[j] >= T[j, t]}``, else ``acc``.

x is read as a stream: its per-image elements in row-major order, grouped into
numInputVectors[1:] vectors of MW.  Its tensor shape is (N, *numInputVectors[1:], MW) or
any other shape with as many elements per image, e.g. the (N, H, W, C) output of a
convolution or pool read directly by a fully connected layer with MW = H*W*C (no Flatten
in between: the stream is the same).  The output is (N, *numInputVectors[1:], MH).

binaryXnorMode=1: x and W are BINARY bits standing for -1/+1 and
``acc[j] = popcount(XNOR(x, W[:, j]))``, i.e. the number of agreeing positions; the
bipolar dot product is ``2*acc - MW`` (thresholds are on the popcount).

Hardware (finn-hlslib style): PE rows of W in parallel, SIMD columns per cycle per row;
output row n lives in PE n % PE.
"""

from __future__ import annotations

import math

import numpy as np

from qnnflow.base.streams import MAX_WORD_BITS
from qnnflow.base.values import value_problem
from qnnflow.hls.codegen.cpp import (
    ap_type,
    array_definition,
    config_struct,
    element_type,
    limb_bits,
    memory_limbs,
    signed_bits,
)
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header, storage_pragma
from qnnflow.hls.codegen.rtl_unit import RtlUnit, element_params, memory_path, rom_style, rom_text
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import HWNode, Memory, fold_problem
from qnnflow.hls.nodes.intmath import count_reached, exact_matmul
from qnnflow.hls.nodes.thresholding import (
    activation_problem,
    threshold_cpp,
    threshold_rtl,
    threshold_slots,
    threshold_table,
    threshold_word_bits,
)
from qnnflow.hls.nodes.xnor import xnor_popcount_matmul

__all__ = ["MVAU", "packed_weights", "xnor_popcount_matmul"]


def packed_weights(weights: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """W (MW, MH) arranged [PE][WMEM][SIMD] as the C++ weight memories hold it.

    Output row n (column n of W) belongs to PE ``n % pe`` at local row ``nf = n // pe``;
    word ``nf * SF + sf`` of that PE holds inputs ``sf*simd .. sf*simd + simd-1`` (SF = MW/simd).
    """
    mw, mh = weights.shape
    nf, sf = mh // pe, mw // simd
    rows = np.asarray(weights).T.reshape(nf, pe, sf, simd)  # [nf][pe][sf][simd]
    return np.ascontiguousarray(rows.transpose(1, 0, 2, 3)).reshape(pe, nf * sf, simd)


def accumulator_range(weights: np.ndarray, idt) -> tuple[int, int]:
    """Smallest and largest ``x @ W`` over all inputs of DataType ``idt`` (worst column each)."""
    w = np.asarray(weights, dtype=np.int64)
    pos, neg = np.clip(w, 0, None).sum(axis=0), np.clip(w, None, 0).sum(axis=0)
    lo = pos * int(idt.min()) + neg * int(idt.max())
    hi = pos * int(idt.max()) + neg * int(idt.min())
    return int(lo.min()), int(hi.max())


class MVAU(HWNode):
    """Matrix-vector-activation unit (FINN's MVAU attribute names)."""

    FINN_OP_TYPES = ("MatrixVectorActivation", "StreamingFCLayer_Batch")
    KERNEL_HEADER = "mvau.hpp"
    RTL_SOURCES = ("qnnflow_mvau.v", "qnnflow_rom.v", "qnnflow_activation.v")

    def get_nodeattr_types(self):
        return {
            "MW": ("i", True, 0),
            "MH": ("i", True, 0),
            "SIMD": ("i", False, 1),
            "PE": ("i", False, 1),
            "inputDataType": ("s", True, ""),
            "weightDataType": ("s", True, ""),
            "outputDataType": ("s", True, ""),
            "accDataType": ("s", False, "INT32"),
            "binaryXnorMode": ("i", False, 0, {0, 1}),
            "noActivation": ("i", False, 0, {0, 1}),
            "ActVal": ("i", False, 0),
            "numInputVectors": ("ints", False, [1]),
            "ram_style": ("s", False, "auto", {"auto", "block", "distributed", "ultra"}),
            "resType": ("s", False, "auto", {"auto", "lut", "dsp"}),
        }

    # ----- attributes -------------------------------------------------------------------

    def _mw_mh_simd_pe(self) -> tuple[int, int, int, int]:
        return tuple(self.get_nodeattr(a) for a in ("MW", "MH", "SIMD", "PE"))

    def _vectors(self) -> list[int]:
        """Input vectors per image: numInputVectors without its leading batch entry."""
        return list(self.get_nodeattr("numInputVectors"))[1:]

    def get_weight_datatype(self):
        return self.datatype("weightDataType")

    def get_accumulator_datatype(self):
        return self.datatype("accDataType")

    def xnor(self) -> bool:
        return self.get_nodeattr("binaryXnorMode") == 1

    def node_problems(self) -> list[str]:
        found = []
        for attr in ("MW", "MH", "SIMD", "PE"):
            if self.get_nodeattr(attr) < 1:
                found.append(f"{attr}={self.get_nodeattr(attr)} must be at least 1")
        vecs = self.get_nodeattr("numInputVectors")
        if not vecs or min(vecs) < 1:
            found.append(f"numInputVectors={vecs} must be a non-empty list of positive ints, e.g. [1] or [1, H, W]")
        if self.xnor():
            for attr in ("inputDataType", "weightDataType"):
                if self.get_nodeattr(attr) != "BINARY":
                    found.append(f"binaryXnorMode=1 needs {attr}=BINARY, not {self.get_nodeattr(attr)}")
        if not found and self.get_accumulator_datatype().bitwidth() > MAX_WORD_BITS:
            found.append(f"accDataType={self.get_nodeattr('accDataType')} is wider than the {MAX_WORD_BITS}-bit "
                         f"ap_int the kernel supports; narrow accDataType")
        if not found and self.get_nodeattr("noActivation") == 0 and signed_bits(*self._threshold_range()) > 64:
            found.append(f"thresholds would need {signed_bits(*self._threshold_range())} bits, beyond the kernel's "
                         f"int64 threshold memories; narrow accDataType")
        return found

    def folding_problems(self) -> list[str]:
        mw, mh, simd, pe = self._mw_mh_simd_pe()
        found = [fold_problem("SIMD", simd, "MW", mw), fold_problem("PE", pe, "MH", mh)]
        found = [p for p in found if p]
        w_bits = simd * self.get_weight_datatype().bitwidth()
        if not found and w_bits > MAX_WORD_BITS:
            found.append(f"the weight word (SIMD={simd} x {self.get_weight_datatype().bitwidth()} bits) is {w_bits} "
                         f"bits wide, beyond the {MAX_WORD_BITS}-bit words the HLS kernels support; lower SIMD")
        return found

    def parallel_knobs(self):
        return {"SIMD": "MW", "PE": "MH"}

    def parameter_word_bits(self) -> int:
        """PE * SIMD * weight bits: the weight bits read per cycle across the PEs."""
        return self.get_nodeattr("PE") * self.get_nodeattr("SIMD") * self.get_weight_datatype().bitwidth()

    def accumulator_range(self, weights: np.ndarray) -> tuple[int, int]:
        if self.xnor():
            return 0, self.get_nodeattr("MW")
        return accumulator_range(weights, self.input_datatype())

    def tensor_problems(self, weights: np.ndarray, thresholds: np.ndarray | None) -> list[str]:
        """Problems with the weight and threshold tensors given the attributes."""
        mw, mh, _, _ = self._mw_mh_simd_pe()
        w_name = self.onnx_node.input[1]
        if weights.shape != (mw, mh):
            return [f"weights '{w_name}' have shape {weights.shape}, expected (MW, MH) = ({mw}, {mh})"]
        bad = value_problem(weights, self.get_weight_datatype())
        if bad:
            return [f"weights '{w_name}' {bad}; set weightDataType to a type that holds them"]
        found = []
        adt, odt = self.get_accumulator_datatype(), self.output_datatype()
        lo, hi = self.accumulator_range(weights)
        if lo < adt.min() or hi > adt.max():
            found.append(f"accumulator range [{lo}, {hi}] does not fit accDataType={adt.name}; widen accDataType")
        if thresholds is not None and self.get_nodeattr("noActivation") == 0:
            p = activation_problem(thresholds, mh, self.get_nodeattr("ActVal"), odt, self.onnx_node.input[2])
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
        found = self.tensor_problems(np.asarray(weights), None if thresholds is None else np.asarray(thresholds))
        shape = model.get_tensor_shape(inputs[0])
        want = math.prod(self._vectors()) * self.get_nodeattr("MW")
        if shape and math.prod(shape[1:]) != want:
            found.append(f"input '{inputs[0]}' of shape {shape} has {math.prod(shape[1:])} elements per image, but "
                         f"numInputVectors[1:] x MW = {want}; fix MW or numInputVectors")
        return found

    # ----- execution --------------------------------------------------------------------

    def as_vectors(self, x: np.ndarray) -> np.ndarray:
        """Input 0 as (N, *numInputVectors[1:], MW): the same elements in the same (stream) order."""
        want = (*self._vectors(), self.get_nodeattr("MW"))
        if x.ndim >= 1 and x.shape[1:] == want:
            return x
        if x.ndim < 2 or math.prod(x.shape[1:]) != math.prod(want):
            per_image = ", ".join(["N", *map(str, want)])
            raise self.error(f"input '{self.onnx_node.input[0]}' has shape {x.shape}, expected ({per_image}) or "
                             f"another shape with {math.prod(want)} elements per image; numInputVectors[1:] and MW "
                             f"give the vectors per image")
        return x.reshape(x.shape[0], *want)

    def compute(self, x, weights, thresholds=None):
        mw = self.get_nodeattr("MW")
        x = self.as_vectors(np.asarray(x))
        found = self.tensor_problems(weights, thresholds)
        if found:
            raise self.error("; ".join(found))
        idt, wdt = self.input_datatype(), self.get_weight_datatype()
        wi = np.asarray(weights).astype(np.int64)
        if self.xnor():  # validated bits go straight to packing: no int64 copy of a large input
            self.check_values(x, idt, f"input '{self.onnx_node.input[0]}'")
            return self._activate(xnor_popcount_matmul(x, wi).astype(np.int64), thresholds)
        xi = self.int_array(x, idt, f"input '{self.onnx_node.input[0]}'")
        if idt.name == "BIPOLAR" and wdt.name == "BIPOLAR":  # +-1 products: the packed kernel is exact and cheaper
            acc = 2 * xnor_popcount_matmul(xi > 0, wi > 0).astype(np.int64) - mw
        else:
            acc = exact_matmul(xi, wi)
        return self._activate(acc, thresholds)

    def _activate(self, acc, thresholds):
        if thresholds is None or self.get_nodeattr("noActivation") == 1:
            return acc
        return self.get_nodeattr("ActVal") + count_reached(acc, np.asarray(thresholds).astype(np.int64))

    def make_shape_compatible_op(self, model):
        """The output shape comes from the attributes (the input may be any shape with the same elements)."""
        return self.make_const_shape_op((self.batch_of(model), *self.normal_output_shape()[1:]))

    # ----- shapes and streams -----------------------------------------------------------

    def normal_input_shape(self):
        return (1, *self._vectors(), self.get_nodeattr("MW"))

    def normal_output_shape(self):
        return (1, *self._vectors(), self.get_nodeattr("MH"))

    def folded_input_shape(self):
        mw, _, simd, _ = self._mw_mh_simd_pe()
        return (1, *self._vectors(), mw // simd, simd)

    def folded_output_shape(self):
        _, mh, _, pe = self._mw_mh_simd_pe()
        return (1, *self._vectors(), mh // pe, pe)

    # ----- weight memory layout ---------------------------------------------------------

    def calc_wmem(self) -> int:
        """Words per PE weight memory: MW*MH / (PE*SIMD)."""
        mw, mh, simd, pe = self._mw_mh_simd_pe()
        return mw * mh // (pe * simd)

    def packed_weights(self, weights: np.ndarray) -> np.ndarray:
        self.check()
        return packed_weights(weights, self.get_nodeattr("PE"), self.get_nodeattr("SIMD"))

    # ----- cost model -------------------------------------------------------------------

    def cycles(self) -> int:
        """(MH/PE) * (MW/SIMD) per input vector, times the vectors of one image (FINN MVAU get_exp_cycles)."""
        self.check()
        mw, mh, simd, pe = self._mw_mh_simd_pe()
        return (mh // pe) * (mw // simd) * math.prod(self._vectors())

    def acc_bits(self) -> int:
        """Accumulator width: accDataType, capped by what MW products can reach."""
        mw = self.get_nodeattr("MW")
        if self.xnor():
            bound = math.ceil(math.log2(mw + 1))
        else:
            bound = self.input_datatype().bitwidth() + self.get_weight_datatype().bitwidth() + math.ceil(math.log2(mw))
        return min(self.get_accumulator_datatype().bitwidth(), bound)

    def _compared_range(self) -> tuple[int, int]:
        """Every accumulator value thresholds are compared with lies here (popcounts for XNOR): within
        accDataType and within the signed range of acc_bits, which the products cannot leave."""
        if self.xnor():
            return 0, self.get_nodeattr("MW")
        adt, bits = self.get_accumulator_datatype(), self.acc_bits()
        return max(int(adt.min()), -(1 << (bits - 1))), min(int(adt.max()), (1 << (bits - 1)) - 1)

    def _threshold_range(self) -> tuple[int, int]:
        """Thresholds are stored clipped to this range (thresholding.threshold_table)."""
        lo, hi = self._compared_range()
        return lo, hi + 1

    def uses_dsp(self) -> bool:
        """resType=dsp, or auto with both operands at least 5 bits wide (narrower products stay in LUTs)."""
        if self.xnor():
            return False
        res = self.get_nodeattr("resType")
        narrow = min(self.input_datatype().bitwidth(), self.get_weight_datatype().bitwidth())
        return res == "dsp" or (res == "auto" and narrow >= 5)

    def has_activation(self) -> bool:
        return self.get_nodeattr("noActivation") == 0 and len(self.onnx_node.input) > 2 and bool(self.onnx_node.input[2])

    def memories(self):
        """Per PE, its weights (one word of SIMD weights per cycle, in whole C++ limbs) and, with an
        activation, its thresholds (all slots of an output in one word); and the input vector, kept
        for the MH/PE output folds."""
        mw, mh, simd, pe = self._mw_mh_simd_pe()
        mems = [Memory("weights", pe, self.calc_wmem(), limb_bits(simd * self.get_weight_datatype().bitwidth()),
                       self.get_nodeattr("ram_style"))]
        if self.has_activation():
            slots = threshold_slots(self.output_datatype(), self.get_nodeattr("ActVal"))
            mems.append(Memory("thresholds", pe, mh // pe, threshold_word_bits(slots, *self._compared_range()),
                               "auto"))
        mems.append(Memory("vector", 1, mw // simd, simd * self.input_datatype().bitwidth(), "auto"))
        return mems

    def resources(self, board: dict) -> dict:
        """FINN-R style: LUT = control + 1.1 * PE * (SIMD lanes + adder tree + accumulator + comparators),
        plus the memories (``memories``).

        Lanes: 1 LUT (XNOR) with a popcount tree in binaryXnorMode, else a LUT multiplier
        (cost.lut_multiplier) or DSPs (cost.dsp_multiplier); cost.py documents the calibration.
        """
        self.check()
        family = cost.part_family(board)
        cost.uram_check(self.get_nodeattr("ram_style"), board, self.name)
        idt, wdt = self.input_datatype(), self.get_weight_datatype()
        a_bits, w_bits = idt.bitwidth(), wdt.bitwidth()
        _, _, simd, pe = self._mw_mh_simd_pe()
        acc = self.acc_bits()
        dsp = 0
        if self.xnor():
            lanes = simd * 1 + cost.popcount_luts(simd, board)
        elif self.uses_dsp():
            dsp = pe * simd * cost.dsp_multiplier(a_bits, idt.signed(), w_bits, wdt.signed(), family)
            lanes = cost.adder_tree_luts(simd, a_bits + w_bits)
        else:
            lanes = simd * cost.lut_multiplier(a_bits, w_bits) + cost.adder_tree_luts(simd, a_bits + w_bits)
        per_pe = lanes + acc
        if self.has_activation():
            slots = threshold_slots(self.output_datatype(), self.get_nodeattr("ActVal"))
            per_pe += slots * cost.comparator_luts(acc)
        mem = cost.memories_cost(self.memories())
        luts = mem["LUT"] + cost.control_luts(board) + cost.DATAPATH_SCALE * pe * per_pe
        return {"LUT": int(math.ceil(luts)), "BRAM18": int(mem["BRAM18"]), "DSP": int(dsp)}

    def emitted_thresholds(self, model) -> tuple[np.ndarray, int, int]:
        """(table [PE][MH/PE][slots], lo, hi): the threshold memory both back ends emit, for compared values in [lo, hi]."""
        lo, hi = self._compared_range()
        slots = threshold_slots(self.output_datatype(), self.get_nodeattr("ActVal"))
        initializer = model.get_initializer(self.onnx_node.input[2])
        return threshold_table(initializer, self.get_nodeattr("PE"), slots, lo, hi), lo, hi

    # ----- C++ --------------------------------------------------------------------------

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node, g = self.onnx_node, self.get_nodeattr
        mw, mh, simd, pe = self._mw_mh_simd_pe()
        idt, wdt, odt = self.input_datatype(), self.get_weight_datatype(), self.output_datatype()
        weights = np.asarray(model.get_initializer(node.input[1])).astype(np.int64)
        wmem_t, limbs = memory_limbs(packed_weights(weights, pe, simd), wdt.name)  # [PE][WMEM][limbs]
        has_act = self.has_activation()
        constants = dict(MW=mw, MH=mh, SIMD=simd, PE=pe, VECS=math.prod(self._vectors()), WMEM=limbs.shape[1],
                         WLIMBS=limbs.shape[2], TMEM=mh // pe if has_act else 1, NT=0, TSLOTS=1,
                         XNOR=int(self.xnor()), HAS_ACT=int(has_act),
                         ACT_VAL=g("ActVal") if has_act else 0, DSP=int(self.uses_dsp()))
        types = dict(in_t=element_type(idt.name), w_t=element_type(wdt.name), out_t=element_type(odt.name),
                     acc_t=ap_type(self.get_nodeattr("accDataType")), wmem_t=wmem_t)
        parts = ["// weights[pe][nf * MW/SIMD + sf]: the SIMD weights (inputs sf*SIMD..) of output nf*PE + pe\n"
                 + array_definition(wmem_t, f"{ident}_weights", limbs)]
        pragmas = [f"#pragma HLS ARRAY_PARTITION variable={ident}_weights complete dim=1",
                   f"#pragma HLS ARRAY_RESHAPE variable={ident}_weights complete dim=3",
                   *storage_pragma(f"{ident}_weights", g("ram_style"))]
        thresholds = "qnnflow::mvau_no_thresholds<{c}>::table".format(c=f"{ident}_cfg")
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
        in_word = f"ap_uint<{simd * idt.bitwidth()}>"
        out_word = f"ap_uint<{pe * odt.bitwidth()}>"
        process = (f"// MVAU '{node.name}' with its input vector buffer\n"
                   f"static void {ident}_process(hls::stream<{in_word} >& in, hls::stream<{out_word} >& out) {{\n"
                   f"    {in_word} vector[{mw // simd}];\n"
                   f"    qnnflow::mvau<{ident}_cfg>(in, out, {ident}_weights, {thresholds}, vector);\n}}\n")
        body = "\n".join([config_struct(f"{ident}_cfg", constants, types), *parts, process])
        in_fmt, out_fmt = formats(self)
        return Kernel(node.name, node.op_type, ident, in_fmt, out_fmt, f"{ident}_process({{inp}}, {{out}});",
                      header(ident, node, self.KERNEL_HEADER, body), pragmas)

    # ----- RTL --------------------------------------------------------------------------

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        """qnnflow_mvau: weights in one ROM word per (output fold, input fold) across the PEs."""
        check_emittable(self, model)
        node, g = self.onnx_node, self.get_nodeattr
        mw, mh, simd, pe = self._mw_mh_simd_pe()
        idt, wdt, odt = self.input_datatype(), self.get_weight_datatype(), self.output_datatype()
        weights = np.asarray(model.get_initializer(node.input[1])).astype(np.int64)
        words = packed_weights(weights, pe, simd).transpose(1, 0, 2).reshape(self.calc_wmem(), pe * simd)
        w_mem = memory_path(ident, "weights")
        memories = {w_mem: rom_text(words, wdt.name)}
        acc_bits = signed_bits(*self.accumulator_range(weights))
        params = dict(MW=mw, MH=mh, SIMD=simd, PE=pe, **element_params("IN", idt), **element_params("W", wdt),
                      XNOR=int(self.xnor()), USE_DSP=int(self.uses_dsp()), ACC_BITS=acc_bits, OUT_BITS=odt.bitwidth(), HAS_ACT=0, NT=1, T_BITS=2,
                      ACT_VAL=0, WEIGHTS=w_mem, THRESHOLDS="", RAM_STYLE=rom_style(g("ram_style")))
        if self.has_activation():
            table, lo, hi = self.emitted_thresholds(model)
            slots = table.shape[2]
            t_bits, rom = threshold_rtl(table, lo, hi)
            t_mem = memory_path(ident, "thresholds")
            memories[t_mem] = rom
            params.update(HAS_ACT=1, NT=slots, T_BITS=t_bits, ACT_VAL=g("ActVal"), THRESHOLDS=t_mem,
                          ACC_BITS=max(acc_bits, signed_bits(lo, hi)))
        else:  # the output is the accumulator: its low OUT_BITS bits are the output's code
            params["ACC_BITS"] = max(acc_bits, odt.bitwidth())
        return RtlUnit(node.name, node.op_type, ident, "qnnflow_mvau", params, *formats(self), memories)
