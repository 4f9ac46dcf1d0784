"""StreamingDataWidthConverter: re-packs a stream from inWidth-bit to outWidth-bit words; identity on data."""

from __future__ import annotations

import math

from onnx import helper

from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.base import HWNode

__all__ = ["StreamingDataWidthConverter"]


class StreamingDataWidthConverter(HWNode):
    """Width converter (FINN's names).  ``shape`` is the normal per-image shape with batch 1 first.

    Legal when both widths are whole elements and split the last axis into whole words.
    When neither width divides the other the converter buffers lcm(inWidth, outWidth) bits.
    """

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
        return found

    def is_general(self) -> bool:
        """True when neither width divides the other (an lcm-wide buffer is needed)."""
        a, b = self.get_nodeattr("inWidth"), self.get_nodeattr("outWidth")
        return max(a, b) % min(a, b) != 0

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

    def cycles(self) -> int:
        """Reading and writing overlap: the larger of input words and output words per image."""
        self.check()
        bits = math.prod(self.get_nodeattr("shape")) * self.input_datatype().bitwidth()
        return bits // min(self.get_nodeattr("inWidth"), self.get_nodeattr("outWidth"))

    def resources(self, board: dict) -> dict:
        """Shift-register converter (FINN's DWC lut_estimation): through an intermediate lcm(in, out)
        buffer, 1 LUT per buffered bit per conversion stage plus log2 of the ratio for the counters."""
        self.check()
        cost.part_family(board)
        inw, outw = self.get_nodeattr("inWidth"), self.get_nodeattr("outWidth")
        mid = math.lcm(inw, outw)
        luts = 0
        if inw != mid:
            luts += math.ceil(math.log2(mid / inw)) + mid
        if outw != mid:
            luts += math.ceil(math.log2(mid / outw)) + outw
        return {"LUT": int(luts), "BRAM18": 0, "DSP": 0}
