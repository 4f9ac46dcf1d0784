"""LabelSelect: indices of the K largest of Labels values, largest first (top-K classification).

(N, Labels) -> (N, K); ties go to the lower index first, as in ONNX TopK.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.datatype import DataType

from qnnflow.hls.codegen.cpp import config_struct, element_type
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header
from qnnflow.hls.codegen.rtl_unit import RtlUnit, element_params
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import HWNode, fold_problem

INDEX_BITS = 32  # the kernel's label indices are 32-bit

__all__ = ["LabelSelect", "index_datatype"]


def index_datatype(labels: int):
    """The smallest unsigned DataType holding label indices 0..labels-1."""
    return DataType.get_smallest_possible(max(labels - 1, 1))


class LabelSelect(HWNode):
    """Top-K label selection (FINN's LabelSelect names).

    An unset outputDataType becomes the smallest UINT holding Labels-1 at datatype
    inference (and is then written to the node); the schema default is UINT32.
    """

    FINN_OP_TYPES = ("LabelSelect_Batch",)
    KERNEL_HEADER = "label_select.hpp"
    RTL_SOURCES = ("qnnflow_label_select.v", "qnnflow_lane.v")

    def get_nodeattr_types(self):
        return {
            "Labels": ("i", True, 0),
            "PE": ("i", False, 1),
            "K": ("i", False, 1),
            "inputDataType": ("s", True, ""),
            "outputDataType": ("s", False, "UINT32"),
        }

    def node_problems(self):
        labels, k = self.get_nodeattr("Labels"), self.get_nodeattr("K")
        if labels < 1:
            return [f"Labels={labels} must be at least 1"]
        found = [] if 1 <= k <= labels else [f"K={k} must be between 1 and Labels={labels}"]
        odt = self.output_datatype()
        if odt.min() > 0 or odt.max() < labels - 1:
            found.append(f"outputDataType={odt.name} cannot hold label indices 0..{labels - 1}; "
                         f"use {index_datatype(labels).name} or wider")
        elif odt.bitwidth() > INDEX_BITS:
            found.append(f"outputDataType={odt.name} is wider than the kernel's {INDEX_BITS}-bit indices; "
                         f"use {index_datatype(labels).name}")
        return found

    def parallel_knobs(self):
        return {"PE": "Labels"}

    def folding_problems(self):
        p = fold_problem("PE", self.get_nodeattr("PE"), "Labels", self.get_nodeattr("Labels"))
        return [p] if p else []

    def compute(self, x):
        labels, k = self.get_nodeattr("Labels"), self.get_nodeattr("K")
        self.check_shape(x, (labels,))
        xi = self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")
        # a stable sort of the negated values puts larger values first and equal values by index
        return np.argsort(-xi, axis=-1, kind="stable")[..., :k].astype(np.int64)

    def infer_node_datatype(self, model):
        if not self.is_attr_set("outputDataType"):
            self.set_nodeattr("outputDataType", index_datatype(self.get_nodeattr("Labels")).name)
        super().infer_node_datatype(model)

    def make_shape_compatible_op(self, model):
        shape = model.get_tensor_shape(self.onnx_node.input[0]) or [1, self.get_nodeattr("Labels")]
        return self.make_const_shape_op((*shape[:-1], self.get_nodeattr("K")))

    def normal_input_shape(self):
        return (1, self.get_nodeattr("Labels"))

    def normal_output_shape(self):
        return (1, self.get_nodeattr("K"))

    def folded_input_shape(self):
        pe = self.get_nodeattr("PE")
        return (1, self.get_nodeattr("Labels") // pe, pe)

    def folded_output_shape(self):
        return (1, self.get_nodeattr("K"), 1)

    def cycles(self) -> int:
        """Labels/PE input words, then K index words out."""
        self.check()
        return self.get_nodeattr("Labels") // self.get_nodeattr("PE") + self.get_nodeattr("K")

    def resources(self, board: dict) -> dict:
        """Own estimate: a sorted list of K (value, index) registers with an insertion comparator per
        entry and lane: PE*K comparators of value bits plus 2 LUTs per register bit for the shifting."""
        self.check()
        cost.part_family(board)
        pe, k = self.get_nodeattr("PE"), self.get_nodeattr("K")
        v_bits = self.input_datatype().bitwidth()
        i_bits = index_datatype(self.get_nodeattr("Labels")).bitwidth()
        luts = cost.control_luts(board, cost.STREAMING_CONTROL_LUTS) + pe * k * cost.comparator_luts(v_bits) + 2 * k * (v_bits + i_bits)
        return {"LUT": int(luts), "BRAM18": 0, "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node, g = self.onnx_node, self.get_nodeattr
        constants = dict(LABELS=g("Labels"), PE=g("PE"), K=g("K"))
        types = dict(in_t=element_type(self.input_datatype().name), out_t=element_type(self.output_datatype().name))
        in_fmt, out_fmt = formats(self)
        return Kernel(node.name, node.op_type, ident, in_fmt, out_fmt,
                      f"qnnflow::label_select<{ident}_cfg>({{inp}}, {{out}});",
                      header(ident, node, self.KERNEL_HEADER, config_struct(f"{ident}_cfg", constants, types)))

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        check_emittable(self, model)
        g, idt = self.get_nodeattr, self.input_datatype()
        params = dict(LABELS=g("Labels"), PE=g("PE"), K=g("K"), **element_params("IN", idt),
                      OUT_BITS=self.output_datatype().bitwidth())
        return RtlUnit(self.onnx_node.name, self.onnx_node.op_type, ident, "qnnflow_label_select", params,
                       *formats(self))
