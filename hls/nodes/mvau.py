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

from qnnflow.hls.codegen.cpp import config_struct
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header
from qnnflow.hls.codegen.rtl_unit import RtlUnit
from qnnflow.hls.nodes.base import Memory, fold_problem
from qnnflow.hls.nodes.dot import DotProductNode
from qnnflow.hls.nodes.intmath import exact_matmul
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


class MVAU(DotProductNode):
    """Matrix-vector-activation unit (FINN's MVAU attribute names)."""

    FINN_OP_TYPES = ("MatrixVectorActivation", "StreamingFCLayer_Batch")
    KERNEL_HEADER = "mvau.hpp"
    RTL_SOURCES = ("qnnflow_mvau.v", "qnnflow_dot_sum.v", "qnnflow_dot_output.v", "qnnflow_rom.v",
                   "qnnflow_activation.v", "qnnflow_lane.v")

    def get_nodeattr_types(self):
        return {
            "MW": ("i", True, 0),
            "MH": ("i", True, 0),
            **super().get_nodeattr_types(),
            "binaryXnorMode": ("i", False, 0, {0, 1}),
            "numInputVectors": ("ints", False, [1]),
        }

    # ----- attributes -------------------------------------------------------------------

    def _mw_mh_simd_pe(self) -> tuple[int, int, int, int]:
        return tuple(self.get_nodeattr(a) for a in ("MW", "MH", "SIMD", "PE"))

    _dot = _mw_mh_simd_pe

    def weight_layout(self):
        return (self.get_nodeattr("MW"), self.get_nodeattr("MH")), "(MW, MH)"

    def _vectors(self) -> list[int]:
        """Input vectors per image: numInputVectors without its leading batch entry."""
        return list(self.get_nodeattr("numInputVectors"))[1:]

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
        return found or self.accumulator_problems()

    def folding_problems(self) -> list[str]:
        mw, mh, simd, pe = self._mw_mh_simd_pe()
        found = [fold_problem("SIMD", simd, "MW", mw), fold_problem("PE", pe, "MH", mh)]
        return [p for p in found if p] or self.weight_word_problems()

    def parallel_knobs(self):
        return {"SIMD": "MW", "PE": "MH"}

    def accumulator_range(self, weights: np.ndarray) -> tuple[int, int]:
        if self.xnor():
            return 0, self.get_nodeattr("MW")
        return accumulator_range(weights, self.input_datatype())

    def model_problems(self, model) -> list[str]:
        """All problems, including those of the weight/threshold initializers and the input's shape in ``model``."""
        found = super().model_problems(model)
        if self.problems():
            return found
        inputs = self.onnx_node.input
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
            return self.activate(xnor_popcount_matmul(x, wi).astype(np.int64), thresholds)
        xi = self.int_array(x, idt, f"input '{self.onnx_node.input[0]}'")
        if idt.name == "BIPOLAR" and wdt.name == "BIPOLAR":  # +-1 products: the packed kernel is exact and cheaper
            acc = 2 * xnor_popcount_matmul(xi > 0, wi > 0).astype(np.int64) - mw
        else:
            acc = exact_matmul(xi, wi)
        return self.activate(acc, thresholds)

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

    def packed_weights(self, weights: np.ndarray) -> np.ndarray:
        self.check()
        return packed_weights(weights, self.get_nodeattr("PE"), self.get_nodeattr("SIMD"))

    # ----- cost model -------------------------------------------------------------------

    def cycles(self) -> int:
        """(MH/PE) * (MW/SIMD) per input vector, times the vectors of one image (FINN MVAU get_exp_cycles)."""
        self.check()
        mw, mh, simd, pe = self._mw_mh_simd_pe()
        return (mh // pe) * (mw // simd) * math.prod(self._vectors())

    def memories(self):
        """The weights and thresholds (DotProductNode.memories), and the input vector, kept for the MH/PE
        output folds."""
        mw, _, simd, _ = self._mw_mh_simd_pe()
        return [*super().memories(),
                Memory("vector", 1, mw // simd, simd * self.input_datatype().bitwidth(), "auto")]

    # ----- C++ --------------------------------------------------------------------------

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node = self.onnx_node
        mw, mh, simd, pe = self._mw_mh_simd_pe()
        idt, odt = self.input_datatype(), self.output_datatype()
        weights = np.asarray(model.get_initializer(node.input[1])).astype(np.int64)
        constants, types, parts, pragmas, thresholds = self.emit_parameters(
            model, ident, packed_weights(weights, pe, simd),
            "// weights[pe][nf * MW/SIMD + sf]: the SIMD weights (inputs sf*SIMD..) of output nf*PE + pe")
        constants.update(MW=mw, MH=mh, VECS=math.prod(self._vectors()), XNOR=int(self.xnor()))
        constants = {k: constants[k] for k in ("MW", "MH", "SIMD", "PE", "VECS", "WMEM", "WLIMBS", "TMEM", "NT",
                                               "TSLOTS", "XNOR", "HAS_ACT", "ACT_VAL", "DSP")}
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
        mw, mh, simd, pe = self._mw_mh_simd_pe()
        weights = np.asarray(model.get_initializer(self.onnx_node.input[1])).astype(np.int64)
        words = packed_weights(weights, pe, simd).transpose(1, 0, 2).reshape(self.calc_wmem(), pe * simd)
        params, memories = self.rtl_parameters(model, ident, words)
        params = dict(MW=mw, MH=mh, XNOR=int(self.xnor()), **params)
        return RtlUnit(self.onnx_node.name, self.onnx_node.op_type, ident, "qnnflow_mvau", params, *formats(self),
                       memories)
