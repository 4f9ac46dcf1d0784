"""The VVAU (depthwise dot products) RTL unit simulated with Verilator against the node's Python execution, at
several foldings and element types, with and without thresholds, at full speed and with valid and ready
deasserted at random; at full speed the measured cycles per image equal the node's cycle model."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.core.datatype import DataType
from qonnx.custom_op.registry import getCustomOp

from qnnflow.hls.nodes.mvau import accumulator_range
from tests.hls.backend.helpers import node_model, random_ints
from tests.hls.rtl.test_units import simulate, thresholds_for


@pytest.mark.parametrize("ch,k,pe,simd,idt,wdt,act,dim,ram_style", [
    (4, 9, 1, 3, "UINT4", "INT4", True, (3, 2), "auto"),         # mobilenet's kind: 3x3, unsigned activations
    (6, 9, 2, 9, "INT3", "INT2", False, (2, 2), "block"),        # whole windows, two channels a cycle
    (4, 4, 1, 1, "BIPOLAR", "INT3", True, (2, 3), "distributed"),  # one position a cycle, BIPOLAR inputs
    (8, 4, 4, 4, "UINT2", "BIPOLAR", False, (1, 2), "auto"),     # BIPOLAR weights: sign flips
    (2, 6, 1, 6, "INT6", "INT5", True, (2, 2), "auto"),          # INT6 x INT5: DSP products
    (3, 4, 3, 4, "INT4", "UINT3", True, (1, 1), "block"),        # all channels a cycle: one word a pixel
])
def test_vvau(ch, k, pe, simd, idt, wdt, act, dim, ram_style, rtl_cache, tmp_path):
    rng = np.random.default_rng(ch * 100 + k * 10 + simd)
    attrs = dict(Channels=ch, KernelPositions=k, Dim=list(dim), SIMD=simd, PE=pe, inputDataType=idt,
                 weightDataType=wdt, accDataType="INT16", ram_style=ram_style)
    weights = random_ints(rng, wdt, (ch, k))
    params = {1: weights}
    if act:  # 7 thresholds over the middle of the sums' range: outputs -4 .. 3, each level reached
        attrs.update(outputDataType="INT3", ActVal=-4)
        lo, hi = accumulator_range(weights.T, DataType[idt])
        params[2] = thresholds_for(rng, ch, 7, lo // 2, hi // 2)
    else:
        attrs.update(outputDataType="INT12", noActivation=1)
    model = node_model("VVAU", attrs, params)
    full = simulate(model, rtl_cache, tmp_path)
    assert full.performance["cycles_per_image"] == getCustomOp(model.graph.node[0]).cycles()
