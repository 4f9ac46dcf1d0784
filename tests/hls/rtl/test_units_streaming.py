"""RTL units of the streaming kinds (padding, pixel padding, upsample, SumPool, GlobalAccPool, ChannelwiseOp) and
BIPOLAR inputs to thresholding and label select: Verilator against the node's Python execution at several
foldings and shapes, at full speed and with random bubbles and back-pressure, cycles against ``cycles()``."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.codegen.rtl import generate_rtl
from tests.hls.backend.helpers import BOARD, node_model, random_ints
from tests.hls.rtl.test_units import simulate, thresholds_for


def measured_cycles(model, rtl_cache, tmp_path, images=4) -> tuple[float, int]:
    """(steady-state cycles per image measured bit-exact, the node's cycles())."""
    full = simulate(model, rtl_cache, tmp_path, images=images)
    return full.performance["cycles_per_image"], getCustomOp(model.graph.node[0]).cycles()


@pytest.mark.parametrize("dt,simd,pad,value", [("INT4", 1, [1, 1, 1, 1], -3), ("UINT2", 2, [0, 2, 1, 0], 1),
                                               ("BIPOLAR", 4, [2, 0, 0, 1], -1), ("INT8", 8, [1, 0, 1, 2], 0)])
def test_padding(dt, simd, pad, value, rtl_cache, tmp_path):
    attrs = dict(ImgDim=[3, 4], Padding=pad, NumChannels=8, SIMD=simd, inputDataType=dt, PadValue=value)
    measured, model = measured_cycles(node_model("FMPadding", attrs), rtl_cache, tmp_path)
    assert measured == model


@pytest.mark.parametrize("dt,simd,stride,dim", [("INT3", 1, [2, 2], [3, 3]), ("UINT4", 4, [3, 2], [2, 4]),
                                                ("INT2", 2, [1, 3], [4, 2])])
def test_pixel_padding(dt, simd, stride, dim, rtl_cache, tmp_path):
    attrs = dict(ImgDim=dim, Stride=stride, NumChannels=4, SIMD=simd, inputDataType=dt)
    measured, model = measured_cycles(node_model("FMPaddingPixel", attrs), rtl_cache, tmp_path)
    assert measured == model


@pytest.mark.parametrize("dt,simd,factor,dim", [("INT4", 1, [2, 2], [3, 2]), ("BIPOLAR", 8, [3, 2], [2, 3]),
                                                ("UINT3", 2, [1, 3], [2, 2]), ("INT5", 4, [2, 3], [1, 1])])
def test_upsample(dt, simd, factor, dim, rtl_cache, tmp_path):
    attrs = dict(ImgDim=dim, Factor=factor, NumChannels=8, SIMD=simd, inputDataType=dt)
    measured, model = measured_cycles(node_model("UpsampleNearestNeighbour", attrs), rtl_cache, tmp_path)
    assert measured == model


@pytest.mark.parametrize("idt,odt,pe,dim,pool,stride", [
    ("UINT2", "UINT6", 1, [4, 4], [2, 2], [2, 2]),     # CF = 4: disjoint windows
    ("INT4", "INT8", 2, [5, 6], [3, 2], [1, 2]),       # overlapping rows
    ("BIPOLAR", "INT5", 4, [5, 7], [2, 3], [2, 1]),    # CF = 1: a window's consecutive words back to back
    ("UINT3", "UINT5", 2, [3, 7], [1, 3], [1, 2])])    # a 1-D pool (KH = 1), overlapping columns
def test_sum_pool(idt, odt, pe, dim, pool, stride, rtl_cache, tmp_path):
    attrs = dict(ImgDim=dim, PoolDim=pool, Stride=stride, NumChannels=4, PE=pe, inputDataType=idt, outputDataType=odt)
    measured, model = measured_cycles(node_model("SumPool", attrs), rtl_cache, tmp_path)
    assert measured == model


@pytest.mark.parametrize("idt,odt,pe,vectors", [("INT4", "INT10", 1, [1, 3, 3]), ("UINT2", "UINT7", 3, [1, 4, 5]),
                                                ("BIPOLAR", "INT5", 6, [1, 2, 5])])
def test_global_acc_pool(idt, odt, pe, vectors, rtl_cache, tmp_path):
    attrs = dict(NumChannels=6, PE=pe, inputDataType=idt, outputDataType=odt, numInputVectors=vectors)
    measured, model = measured_cycles(node_model("GlobalAccPool", attrs), rtl_cache, tmp_path)
    assert measured == model


@pytest.mark.parametrize("idt,pdt,odt,pe", [("INT4", "INT3", "INT8", 1), ("UINT3", "UINT2", "UINT6", 2),
                                            ("BIPOLAR", "INT4", "INT5", 4), ("INT8", "INT8", "INT17", 8),
                                            ("BIPOLAR", "INT2", "BIPOLAR", 2)])  # a +-1 sign flip
def test_channelwise(idt, pdt, odt, pe, rtl_cache, tmp_path):
    rng = np.random.default_rng(pe)
    ch = 8
    params = random_ints(rng, pdt, (ch, 2))
    if odt == "BIPOLAR":
        params = np.stack([random_ints(rng, "BIPOLAR", ch), np.zeros(ch, np.float32)], axis=1)
    if odt.startswith("UINT"):
        params[:, 1] = np.abs(params[:, 1])
    attrs = dict(NumChannels=ch, PE=pe, inputDataType=idt, paramDataType=pdt, outputDataType=odt,
                 numInputVectors=[1, 2, 3])
    measured, model = measured_cycles(node_model("ChannelwiseOp", attrs, {1: params}), rtl_cache, tmp_path)
    assert measured == model


@pytest.mark.parametrize("pe", [1, 4])
def test_thresholding_bipolar(pe, rtl_cache, tmp_path):
    rng = np.random.default_rng(pe)
    ch = 8
    attrs = dict(NumChannels=ch, PE=pe, inputDataType="BIPOLAR", outputDataType="INT2", ActVal=-1,
                 numInputVectors=[1, 3])
    thresholds = thresholds_for(rng, ch, 2, -2, 2)  # below -1, between, above +1: every count happens
    measured, model = measured_cycles(node_model("Thresholding", attrs, {1: thresholds}), rtl_cache, tmp_path)
    assert measured == model


@pytest.mark.parametrize("pe,k", [(1, 3), (5, 2)])
def test_label_select_bipolar(pe, k, rtl_cache, tmp_path):
    attrs = dict(Labels=10, PE=pe, K=k, inputDataType="BIPOLAR", outputDataType="UINT4")
    measured, model = measured_cycles(node_model("LabelSelect", attrs), rtl_cache, tmp_path, images=6)  # all ties
    assert measured == model


def test_refusal_names_the_node():
    """What the RTL does not cover fails in one line naming the node: a sum pool writing BIPOLAR."""
    attrs = dict(ImgDim=[2, 2], PoolDim=[1, 1], NumChannels=2, inputDataType="BIPOLAR", outputDataType="BIPOLAR")
    with pytest.raises(QnnflowError, match="node 'SumPool_0': the RTL sum pool writes integer sums, not BIPOLAR"):
        generate_rtl(node_model("SumPool", attrs), BOARD, ports="stream")
