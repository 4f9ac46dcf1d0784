"""Thresholding: multi-threshold activation on a channels-last stream.

``out[..., c] = ActVal + #{t : x[..., c] >= T[c, t]}`` for x (N, *numInputVectors[1:], C)
and a threshold initializer T (C, nT).  PE channels are compared per cycle.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import helper

from qnnflow.hls.nodes import cost
from qnnflow.base.values import value_problem
from qnnflow.hls.nodes.base import HWNode, fold_problem
from qnnflow.hls.nodes.intmath import count_reached

__all__ = ["Thresholding", "packed_thresholds"]


def packed_thresholds(thresholds: np.ndarray, pe: int) -> np.ndarray:
    """T (C, nT) arranged [PE][C/PE][nT]: ascending within a row, row c in PE c % pe at local row c // pe."""
    n_ch, n_thr = thresholds.shape
    rows = np.sort(np.asarray(thresholds), axis=1).reshape(n_ch // pe, pe, n_thr)
    return np.ascontiguousarray(rows.transpose(1, 0, 2))


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


class Thresholding(HWNode):
    """Multi-threshold activation (FINN's Thresholding attribute names)."""

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

    def _vectors(self) -> list[int]:
        return list(self.get_nodeattr("numInputVectors"))[1:]

    def node_problems(self):
        found = []
        if self.get_nodeattr("NumChannels") < 1:
            found.append(f"NumChannels={self.get_nodeattr('NumChannels')} must be at least 1")
        vecs = self.get_nodeattr("numInputVectors")
        if not vecs or min(vecs) < 1:
            found.append(f"numInputVectors={vecs} must be a non-empty list of positive ints, e.g. [1] or [1, H, W]")
        return found

    def folding_problems(self):
        p = fold_problem("PE", self.get_nodeattr("PE"), "NumChannels", self.get_nodeattr("NumChannels"))
        return [p] if p else []

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

    def make_shape_compatible_op(self, model):
        return helper.make_node("Relu", [self.onnx_node.input[0]], [self.onnx_node.output[0]])

    def normal_input_shape(self):
        return (1, *self._vectors(), self.get_nodeattr("NumChannels"))

    normal_output_shape = normal_input_shape

    def folded_input_shape(self):
        pe = self.get_nodeattr("PE")
        return (1, *self._vectors(), self.get_nodeattr("NumChannels") // pe, pe)

    folded_output_shape = folded_input_shape

    def packed_thresholds(self, thresholds: np.ndarray) -> np.ndarray:
        self.check_folding()
        return packed_thresholds(thresholds, self.get_nodeattr("PE"))

    def cycles(self) -> int:
        """One PE-wide word per cycle: C/PE words per input vector."""
        self.check_folding()
        return self.get_nodeattr("NumChannels") // self.get_nodeattr("PE") * math.prod(self._vectors())

    def resources(self, board: dict) -> dict:
        """PE x nT comparators of (input bits + 1) each (a threshold may sit one past the input range),
        plus per-PE threshold memories of C/PE x nT*(input bits + 1); nT = 2**out_bits - 1."""
        self.check_folding()
        cost.part_family(board)
        pe, n_ch = self.get_nodeattr("PE"), self.get_nodeattr("NumChannels")
        t_bits = self.input_datatype().bitwidth() + 1
        n_thr = 2 ** self.output_datatype().bitwidth() - 1
        mem = cost.memory(n_ch // pe, n_thr * t_bits, self.get_nodeattr("ram_style"))
        luts = cost.control_luts(board, cost.STREAMING_CONTROL_LUTS) + pe * (n_thr * cost.comparator_luts(t_bits) + mem["LUT"])
        return {"LUT": int(luts), "BRAM18": pe * mem["BRAM18"], "DSP": 0}
