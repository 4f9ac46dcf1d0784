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

from qnnflow.hls.nodes import cost
from qnnflow.base.values import value_problem
from qnnflow.hls.nodes.base import HWNode, fold_problem
from qnnflow.hls.nodes.intmath import count_reached, exact_matmul
from qnnflow.hls.nodes.thresholding import activation_problem, packed_thresholds
from qnnflow.hls.nodes.xnor import xnor_popcount_matmul

__all__ = ["MVAU", "packed_weights", "packed_thresholds", "xnor_popcount_matmul"]


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
            "mem_mode": ("s", False, "internal_embedded", {"internal_embedded", "internal_decoupled", "external"}),
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
        return found

    def folding_problems(self) -> list[str]:
        mw, mh, simd, pe = self._mw_mh_simd_pe()
        found = [fold_problem("SIMD", simd, "MW", mw), fold_problem("PE", pe, "MH", mh)]
        return [p for p in found if p]

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

    def calc_tmem(self) -> int:
        """Rows per PE threshold memory: MH/PE, 0 without activation."""
        _, mh, _, pe = self._mw_mh_simd_pe()
        return 0 if self.get_nodeattr("noActivation") else mh // pe

    def get_weight_memory_shape(self) -> tuple[int, int, int]:
        return (self.get_nodeattr("PE"), self.calc_wmem(), self.get_nodeattr("SIMD"))

    def packed_weights(self, weights: np.ndarray) -> np.ndarray:
        self.check_folding()
        return packed_weights(weights, self.get_nodeattr("PE"), self.get_nodeattr("SIMD"))

    def packed_thresholds(self, thresholds: np.ndarray) -> np.ndarray:
        self.check_folding()
        return packed_thresholds(thresholds, self.get_nodeattr("PE"))

    # ----- cost model -------------------------------------------------------------------

    def cycles(self) -> int:
        """(MH/PE) * (MW/SIMD) per input vector, times the vectors of one image (FINN MVAU get_exp_cycles)."""
        self.check_folding()
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

    def uses_dsp(self) -> bool:
        """resType=dsp, or auto with both operands at least 5 bits wide (narrower products stay in LUTs)."""
        if self.xnor():
            return False
        res = self.get_nodeattr("resType")
        narrow = min(self.input_datatype().bitwidth(), self.get_weight_datatype().bitwidth())
        return res == "dsp" or (res == "auto" and narrow >= 5)

    def resources(self, board: dict) -> dict:
        """FINN-R style: LUT = control + 1.1 * PE * (SIMD lanes + adder tree + accumulator + comparators) + LUTRAM.

        Lanes: 1 LUT (XNOR) with a popcount tree in binaryXnorMode, else a LUT multiplier
        (cost.lut_multiplier) or DSPs (cost.dsp_multiplier); cost.py documents the calibration.
        Memories per PE: weights WMEM x SIMD*Wbits (ram_style), thresholds TMEM x nT*acc_bits
        (auto), nT = 2**out_bits - 1.
        """
        self.check_folding()
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
        wmem = cost.memory(self.calc_wmem(), simd * w_bits, self.get_nodeattr("ram_style"))
        luts, brams = pe * wmem["LUT"], pe * wmem["BRAM18"]
        if self.get_nodeattr("noActivation") == 0:
            n_thr = 2 ** self.output_datatype().bitwidth() - 1
            per_pe += n_thr * cost.comparator_luts(acc)
            tmem = cost.memory(self.calc_tmem(), n_thr * acc, "auto")
            luts, brams = luts + pe * tmem["LUT"], brams + pe * tmem["BRAM18"]
        luts += cost.control_luts(board) + cost.DATAPATH_SCALE * pe * per_pe
        return {"LUT": int(math.ceil(luts)), "BRAM18": int(brams), "DSP": int(dsp)}

