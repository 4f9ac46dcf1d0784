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

from qnnflow.hls.codegen.cpp import config_struct
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header
from qnnflow.hls.codegen.rtl_unit import RtlUnit
from qnnflow.hls.nodes.base import INCLUDE_DIR, fold_problem
from qnnflow.hls.nodes.dot import DotProductNode
from qnnflow.hls.nodes.mvau import MVAU, accumulator_range

__all__ = ["VVAU", "packed_depthwise_weights"]


def packed_depthwise_weights(weights: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """W (C, K) arranged [PE][C/PE * K/SIMD][SIMD]: channel c in PE c % pe, word (c // pe) * K/SIMD + sf
    holding its positions sf*SIMD .. sf*SIMD + SIMD-1."""
    n_ch, k = weights.shape
    rows = np.asarray(weights).reshape(n_ch // pe, pe, k // simd, simd)  # [cf][pe][sf][simd]
    return np.ascontiguousarray(rows.transpose(1, 0, 2, 3)).reshape(pe, n_ch // pe * (k // simd), simd)


class VVAU(DotProductNode):
    """Depthwise vector-vector-activation unit (FINN's VectorVectorActivation, attribute names where it has
    them; the kernel is given as its number of positions)."""

    FINN_OP_TYPES = ("VectorVectorActivation", "Vector_Vector_Activation_Batch")
    KERNEL_HEADER = "vvau.hpp"
    RTL_SOURCES = ("qnnflow_vvau.v", "qnnflow_dot_sum.v", "qnnflow_dot_output.v", "qnnflow_rom.v",
                   "qnnflow_activation.v", "qnnflow_lane.v")

    def get_nodeattr_types(self):
        return {
            "Channels": ("i", True, 0),
            "KernelPositions": ("i", True, 0),
            "Dim": ("ints", True, []),
            **super().get_nodeattr_types(),
        }

    @classmethod
    def kernel_sources(cls) -> dict[str, bytes]:
        """vvau.hpp and the MVAU's header, whose lane products and activation it uses."""
        return {**MVAU.kernel_sources(), cls.KERNEL_HEADER: (INCLUDE_DIR / cls.KERNEL_HEADER).read_bytes()}

    # ----- attributes -------------------------------------------------------------------

    def _ch_k_simd_pe(self) -> tuple[int, int, int, int]:
        return tuple(self.get_nodeattr(a) for a in ("Channels", "KernelPositions", "SIMD", "PE"))

    def _dot(self):
        n_ch, k, simd, pe = self._ch_k_simd_pe()
        return k, n_ch, simd, pe

    def weight_layout(self):
        return (self.get_nodeattr("Channels"), self.get_nodeattr("KernelPositions")), "(Channels, KernelPositions)"

    def accumulator_range(self, weights: np.ndarray) -> tuple[int, int]:
        return accumulator_range(np.asarray(weights).T, self.input_datatype())

    def _pixels(self) -> int:
        return math.prod(self.get_nodeattr("Dim"))

    def node_problems(self) -> list[str]:
        found = [f"{a}={self.get_nodeattr(a)} must be at least 1"
                 for a in ("Channels", "KernelPositions", "SIMD", "PE") if self.get_nodeattr(a) < 1]
        dim = self.get_nodeattr("Dim")
        if len(dim) != 2 or min(dim) < 1:
            found.append(f"Dim={dim} must be two positive ints [OH, OW]")
        return found or self.accumulator_problems()

    def folding_problems(self) -> list[str]:
        n_ch, k, simd, pe = self._ch_k_simd_pe()
        found = [p for p in (fold_problem("SIMD", simd, "KernelPositions", k), fold_problem("PE", pe, "Channels", n_ch))
                 if p]
        if not found and pe > 1 and simd != k:
            found.append(f"PE={pe} with SIMD={simd}: windows stream channel-major, so several channels a cycle "
                         f"need whole windows; use SIMD={k} or PE=1")
        return found or self.weight_word_problems()

    def parallel_knobs(self):
        return {"PE": "Channels", "SIMD": "KernelPositions"}

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
        return self.activate(np.einsum("nhwck,ck->nhwc", xi.reshape(*xi.shape[:3], n_ch, k), wi), thresholds)

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

    def cycles(self) -> int:
        """(C/PE) * (K/SIMD) per output pixel (FINN VVAU get_exp_cycles)."""
        self.check()
        n_ch, k, simd, pe = self._ch_k_simd_pe()
        return (n_ch // pe) * (k // simd) * self._pixels()

    # ----- C++ --------------------------------------------------------------------------

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node = self.onnx_node
        n_ch, k, simd, pe = self._ch_k_simd_pe()
        weights = np.asarray(model.get_initializer(node.input[1])).astype(np.int64)
        constants, types, parts, pragmas, thresholds = self.emit_parameters(
            model, ident, packed_depthwise_weights(weights, pe, simd),
            "// weights[pe][cf * K/SIMD + sf]: positions sf*SIMD.. of channel cf*PE + pe")
        constants = dict(CH=n_ch, K=k, VECS=self._pixels(), **constants)
        body = "\n".join([config_struct(f"{ident}_cfg", constants, types), *parts])
        in_fmt, out_fmt = formats(self)
        return Kernel(node.name, node.op_type, ident, in_fmt, out_fmt,
                      f"qnnflow::vvau<{ident}_cfg>({{inp}}, {{out}}, {ident}_weights, {thresholds});",
                      header(ident, node, self.KERNEL_HEADER, body), pragmas)

    # ----- RTL --------------------------------------------------------------------------

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        """qnnflow_vvau: weights in one ROM word per (channel fold, position fold) across the PEs."""
        check_emittable(self, model)
        n_ch, k, simd, pe = self._ch_k_simd_pe()
        weights = np.asarray(model.get_initializer(self.onnx_node.input[1])).astype(np.int64)
        words = packed_depthwise_weights(weights, pe, simd).transpose(1, 0, 2).reshape(self.calc_wmem(), pe * simd)
        params, memories = self.rtl_parameters(model, ident, words)
        return RtlUnit(self.onnx_node.name, self.onnx_node.op_type, ident, "qnnflow_vvau",
                       dict(CH=n_ch, K=k, **params), *formats(self), memories)
