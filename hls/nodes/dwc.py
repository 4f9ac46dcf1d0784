"""StreamingDataWidthConverter: re-packs a stream from inWidth-bit to outWidth-bit words; identity on data."""

from __future__ import annotations

import math

from onnx import helper

from qnnflow.base.streams import MAX_WORD_BITS
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header
from qnnflow.hls.codegen.rtl_unit import RtlUnit
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import HWNode

__all__ = ["StreamingDataWidthConverter"]


class StreamingDataWidthConverter(HWNode):
    """Width converter (FINN's names).  ``shape`` is the normal per-image shape with batch 1 first.

    Legal when both widths are whole elements and split the last axis into whole words, and the
    kernel's buffer (inWidth + outWidth bits) is an ap_uint the back end supports.
    """

    FINN_OP_TYPES = ("StreamingDataWidthConverter_Batch",)
    KERNEL_HEADER = "dwc.hpp"
    RTL_SOURCES = ("qnnflow_dwc.v",)
    DERIVED = True

    _input_dt_attr = "dataType"
    _output_dt_attr = "dataType"

    def get_nodeattr_types(self):
        return {
            "inWidth": ("i", True, 0),
            "outWidth": ("i", True, 0),
            "shape": ("ints", True, []),
            "dataType": ("s", True, ""),
        }

    def node_problems(self):
        shape = self.get_nodeattr("shape")
        if not shape or min(shape) < 1:
            return [f"shape={shape} must be a non-empty list of positive ints (batch 1 first)"]
        return []

    def _row_bits(self) -> int:
        return self.get_nodeattr("shape")[-1] * self.input_datatype().bitwidth()

    def folding_problems(self):
        bits, row = self.input_datatype().bitwidth(), self._row_bits()
        found = []
        for attr in ("inWidth", "outWidth"):
            width = self.get_nodeattr(attr)
            if width < 1 or width % bits or row % width:
                legal = ", ".join(str(d * bits) for d in range(1, row // bits + 1) if row % (d * bits) == 0)
                found.append(f"{attr}={width} must be a multiple of the {bits}-bit element that divides the "
                             f"{row}-bit last axis; legal {attr} values: {legal}")
        buffer = self.get_nodeattr("inWidth") + self.get_nodeattr("outWidth")
        if not found and buffer > MAX_WORD_BITS:
            found.append(f"the converter's buffer (inWidth + outWidth) is {buffer} bits, over the {MAX_WORD_BITS}-bit "
                         f"words the HLS kernels support; fold the neighbouring layers to closer widths")
        return found

    def compute(self, x):
        per_image = math.prod(self.get_nodeattr("shape")[1:])
        if x.ndim < 1 or x.size != x.shape[0] * per_image:
            raise self.error(f"input '{self.onnx_node.input[0]}' has shape {x.shape}, but shape="
                             f"{self.get_nodeattr('shape')} gives {per_image} elements per image")
        return self.int_array(x, self.input_datatype(), f"input '{self.onnx_node.input[0]}'")

    def make_shape_compatible_op(self, model):
        return helper.make_node("Identity", [self.onnx_node.input[0]], [self.onnx_node.output[0]])

    def normal_input_shape(self):
        return tuple(self.get_nodeattr("shape"))

    normal_output_shape = normal_input_shape

    def _folded(self, width_attr: str) -> tuple[int, ...]:
        shape, lanes = self.get_nodeattr("shape"), self.get_nodeattr(width_attr) // self.input_datatype().bitwidth()
        return (*shape[:-1], shape[-1] // lanes, lanes)

    def folded_input_shape(self):
        return self._folded("inWidth")

    def folded_output_shape(self):
        return self._folded("outWidth")

    def _words(self) -> tuple[int, int]:
        bits = math.prod(self.get_nodeattr("shape")) * self.input_datatype().bitwidth()
        return bits // self.get_nodeattr("inWidth"), bits // self.get_nodeattr("outWidth")

    def cycles(self) -> int:
        """The iterations of the kernel's repack loop: reading and writing overlap (cost.repack_cycles)."""
        self.check()
        return cost.repack_cycles(*self._words())

    def resources(self, board: dict) -> dict:
        """The repack shift register of dwc.hpp (cost.repack_luts)."""
        self.check()
        cost.part_family(board)
        luts = cost.repack_luts(self.get_nodeattr("inWidth"), self.get_nodeattr("outWidth"), max(self._words()))
        return {"LUT": luts, "BRAM18": 0, "DSP": 0}

    def emit(self, model, ident: str) -> Kernel:
        check_emittable(self, model)
        node = self.onnx_node
        in_fmt, out_fmt = formats(self)
        return Kernel(node.name, node.op_type, ident, in_fmt, out_fmt,
                      f"qnnflow::dwc<{in_fmt.packed_bits}, {out_fmt.packed_bits}, {in_fmt.words}>({{inp}}, {{out}});",
                      header(ident, node, self.KERNEL_HEADER, ""))

    def emit_rtl(self, model, ident: str) -> RtlUnit:
        check_emittable(self, model)
        in_fmt, out_fmt = formats(self)
        params = dict(IN_W=in_fmt.packed_bits, OUT_W=out_fmt.packed_bits,
                      IMAGE_BITS=in_fmt.elements * in_fmt.elem_bits)
        return RtlUnit(self.onnx_node.name, self.onnx_node.op_type, ident, "qnnflow_dwc", params, in_fmt, out_fmt)
