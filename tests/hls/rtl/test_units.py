"""Per node kind: the RTL unit simulated with Verilator against the node's Python execution, at several
foldings, at full speed and with valid and ready deasserted at random (back-pressure)."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.custom_op.registry import getCustomOp

from qnnflow.hls.codegen.rtl import generate_rtl
from qnnflow.hls.rtlsim import rtlsim
from tests.hls.backend.helpers import BOARD, model_inputs, node_model, random_ints

IMAGES = 4


def simulate(model, rtl_cache, tmp_path, images=IMAGES):
    """Run at full speed, then with random bubbles and back-pressure; both must be bit-exact."""
    rng = np.random.default_rng(1)
    x = model_inputs(model, rng, images)
    project = generate_rtl(model, BOARD, ports="stream")
    full = rtlsim(model, x, BOARD, rtl_cache, tmp_path / "full", project=project)
    assert full.bit_exact, full.message()
    choppy = rtlsim(model, x, BOARD, rtl_cache, tmp_path / "choppy", project=project, seed=7, valid_prob=0.6,
                    ready_prob=0.5)
    assert choppy.bit_exact, choppy.message()
    assert choppy.performance["total_cycles"] > full.performance["total_cycles"]  # the bubbles did happen
    return full


def test_ports_resting_while_a_unit_works_is_not_a_deadlock(rtl_cache, tmp_path):
    """An MVAU of 4 output folds of 64 cycles behind AXI ports: an image's input is 2 port words and its output
    1, so the ports rest for hundreds of cycles while the unit still moves a word every 64.  Stuck means no
    word moving on any stream (a real deadlock is named: test_dag.py), so a limit of 100 idle cycles passes."""
    rng = np.random.default_rng(3)
    attrs = dict(MW=64, MH=4, SIMD=1, PE=1, inputDataType="UINT2", weightDataType="INT2", outputDataType="INT10",
                 accDataType="INT10", noActivation=1)
    model = node_model("MVAU", attrs, {1: random_ints(rng, "INT2", (64, 4))})
    result = rtlsim(model, model_inputs(model, rng, 3), BOARD, rtl_cache, tmp_path, idle_limit=100)
    assert result.bit_exact and result.performance["cycles_per_image"] > 100


def thresholds_for(rng, channels, count, lo, hi):
    return np.sort(rng.integers(lo, hi + 1, size=(channels, count)), axis=1).astype(np.float32)


@pytest.mark.parametrize("pe,simd", [(1, 4), (2, 8), (8, 32)])
def test_mvau_xnor(pe, simd, rtl_cache, tmp_path):
    rng = np.random.default_rng(pe * 100 + simd)
    mw, mh = 32, 8
    attrs = dict(MW=mw, MH=mh, SIMD=simd, PE=pe, inputDataType="BINARY", weightDataType="BINARY",
                 outputDataType="UINT2", accDataType="UINT6", binaryXnorMode=1, numInputVectors=[1, 2])
    model = node_model("MVAU", attrs, {1: random_ints(rng, "BINARY", (mw, mh)), 2: thresholds_for(rng, mh, 3, 8, 24)})
    full = simulate(model, rtl_cache, tmp_path)
    assert full.performance["cycles_per_image"] == getCustomOp(model.graph.node[0]).cycles()


@pytest.mark.parametrize("idt,wdt,pe,simd,act", [("INT4", "INT3", 2, 4, True), ("INT8", "BIPOLAR", 4, 2, True),
                                                 ("UINT3", "INT2", 2, 8, False), ("BIPOLAR", "BIPOLAR", 1, 16, False),
                                                 ("BIPOLAR", "BIPOLAR", 2, 4, True),  # sign agreement: a popcount
                                                 ("INT6", "INT5", 2, 2, False)])  # INT6 x INT5: DSP products
def test_mvau_multibit(idt, wdt, pe, simd, act, rtl_cache, tmp_path):
    rng = np.random.default_rng(simd)
    mw, mh = 16, 4
    weights = random_ints(rng, wdt, (mw, mh))
    params = {1: weights}
    attrs = dict(MW=mw, MH=mh, SIMD=simd, PE=pe, inputDataType=idt, weightDataType=wdt, accDataType="INT16")
    if act:
        attrs.update(outputDataType="INT3", ActVal=-2)
        params[2] = thresholds_for(rng, mh, 5, -60, 60)
    else:
        attrs.update(outputDataType="INT14", noActivation=1)
    full = simulate(node_model("MVAU", attrs, params), rtl_cache, tmp_path)
    assert full.performance["cycles_per_image"] == (mw // simd) * (mh // pe)


@pytest.mark.parametrize("idt,pe", [("INT8", 1), ("UINT4", 4)])
def test_thresholding(idt, pe, rtl_cache, tmp_path):
    rng = np.random.default_rng(pe)
    ch = 8
    attrs = dict(NumChannels=ch, PE=pe, inputDataType=idt, outputDataType="UINT2", numInputVectors=[1, 3])
    lo, hi = (-128, 127) if idt == "INT8" else (0, 15)
    model = node_model("Thresholding", attrs, {1: thresholds_for(rng, ch, 3, lo, hi)})
    full = simulate(model, rtl_cache, tmp_path)
    assert full.performance["cycles_per_image"] == 3 * ch // pe


@pytest.mark.parametrize("idt,pe,k", [("UINT7", 1, 3), ("INT5", 5, 1), ("UINT2", 2, 4)])
def test_label_select(idt, pe, k, rtl_cache, tmp_path):
    attrs = dict(Labels=10, PE=pe, K=k, inputDataType=idt, outputDataType="UINT4")
    model = node_model("LabelSelect", attrs)
    full = simulate(model, rtl_cache, tmp_path, images=6)  # UINT2 values: many ties
    assert full.performance["cycles_per_image"] == 10 // pe + k


@pytest.mark.parametrize("in_w,out_w", [(2, 16), (16, 2), (12, 8), (8, 12)])
def test_width_converter(in_w, out_w, rtl_cache, tmp_path):
    attrs = dict(inWidth=in_w, outWidth=out_w, shape=[1, 3, 24], dataType="UINT2")
    model = node_model("StreamingDataWidthConverter", attrs)
    full = simulate(model, rtl_cache, tmp_path)
    assert full.performance["cycles_per_image"] <= getCustomOp(model.graph.node[0]).cycles()


@pytest.mark.parametrize("depth", [2, 5])
def test_fifo(depth, rtl_cache, tmp_path):
    model = node_model("StreamingFIFO", dict(depth=depth, folded_shape=[1, 6, 2], dataType="INT3"))
    full = simulate(model, rtl_cache, tmp_path)
    assert full.performance["cycles_per_image"] == 6
