"""RTL units of the streaming kinds (padding, pixel padding, upsample, SumPool, GlobalAccPool, ChannelwiseOp) and
BIPOLAR inputs to thresholding and label select: Verilator against the node's Python execution at several
foldings and shapes, at full speed and with random bubbles and back-pressure, cycles against ``cycles()``.

Each case is its own verilated build (about 8 s when not cached): one or two per kind run by default,
the other foldings are marked slow (``make test-all``)."""

from __future__ import annotations

import numpy as np
import pytest
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.codegen.rtl import generate_rtl
from qnnflow.hls.rtlsim import rtlsim
from tests.hls.backend.helpers import BOARD, chain_model, model_inputs, node_model, random_ints
from tests.hls.rtl.test_units import simulate, thresholds_for


def slow(*values):
    return pytest.param(*values, marks=pytest.mark.slow)


def assert_cycles_match(model, rtl_cache, tmp_path, images=4):
    """Bit-exact with and without bubbles, and the measured steady-state cycles per image are the node's cycles()."""
    full = simulate(model, rtl_cache, tmp_path, images=images)
    assert full.performance["cycles_per_image"] == getCustomOp(model.graph.node[0]).cycles()


@pytest.mark.parametrize("dt,simd,pad,value", [("INT4", 1, [1, 1, 1, 1], -3),    # CF = 8
                                               ("BIPOLAR", 4, [2, 0, 0, 1], -1),  # the pad value's code is 0
                                               slow("UINT2", 2, [0, 2, 1, 0], 1), slow("INT8", 8, [1, 0, 1, 2], 0)])
def test_padding(dt, simd, pad, value, rtl_cache, tmp_path):
    attrs = dict(ImgDim=[3, 4], Padding=pad, NumChannels=8, SIMD=simd, inputDataType=dt, PadValue=value)
    assert_cycles_match(node_model("FMPadding", attrs), rtl_cache, tmp_path)


@pytest.mark.parametrize("dt,simd,stride,dim", [("UINT4", 4, [3, 2], [2, 4]), slow("INT3", 1, [2, 2], [3, 3]),
                                                slow("INT2", 2, [1, 3], [4, 2])])
def test_pixel_padding(dt, simd, stride, dim, rtl_cache, tmp_path):
    attrs = dict(ImgDim=dim, Stride=stride, NumChannels=4, SIMD=simd, inputDataType=dt)
    assert_cycles_match(node_model("FMPaddingPixel", attrs), rtl_cache, tmp_path)


@pytest.mark.parametrize("dt,simd,factor,dim", [("INT4", 1, [2, 2], [3, 2]),
                                                ("BIPOLAR", 8, [3, 2], [2, 3]),  # CF = 1: a word read back at once
                                                slow("UINT3", 2, [1, 3], [2, 2]), slow("INT5", 4, [2, 3], [1, 1])])
def test_upsample(dt, simd, factor, dim, rtl_cache, tmp_path):
    attrs = dict(ImgDim=dim, Factor=factor, NumChannels=8, SIMD=simd, inputDataType=dt)
    assert_cycles_match(node_model("UpsampleNearestNeighbour", attrs), rtl_cache, tmp_path)


@pytest.mark.parametrize("idt,odt,pe,dim,pool,stride", [
    ("INT4", "INT8", 2, [5, 6], [3, 2], [1, 2]),            # overlapping rows
    ("BIPOLAR", "INT5", 4, [5, 7], [2, 3], [2, 1]),         # CF = 1: a window's words back to back (forwarding)
    slow("UINT2", "UINT6", 1, [4, 4], [2, 2], [2, 2]),      # disjoint windows
    slow("UINT3", "UINT5", 2, [3, 7], [1, 3], [1, 2])])     # a 1-D pool (KH = 1), overlapping columns
def test_sum_pool(idt, odt, pe, dim, pool, stride, rtl_cache, tmp_path):
    attrs = dict(ImgDim=dim, PoolDim=pool, Stride=stride, NumChannels=4, PE=pe, inputDataType=idt, outputDataType=odt)
    assert_cycles_match(node_model("SumPool", attrs), rtl_cache, tmp_path)


@pytest.mark.parametrize("idt,odt,pe,vectors", [("BIPOLAR", "INT5", 6, [1, 2, 5]), slow("INT4", "INT10", 1, [1, 3, 3]),
                                                slow("UINT2", "UINT7", 3, [1, 4, 5])])
def test_global_acc_pool(idt, odt, pe, vectors, rtl_cache, tmp_path):
    attrs = dict(NumChannels=6, PE=pe, inputDataType=idt, outputDataType=odt, numInputVectors=vectors)
    assert_cycles_match(node_model("GlobalAccPool", attrs), rtl_cache, tmp_path)


@pytest.mark.parametrize("idt,pdt,odt,pe", [("INT4", "INT3", "INT8", 1),
                                            ("BIPOLAR", "INT2", "BIPOLAR", 2),  # a +-1 sign flip
                                            slow("UINT3", "UINT2", "UINT6", 2), slow("BIPOLAR", "INT4", "INT5", 4),
                                            slow("INT8", "INT8", "INT17", 8)])
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
    assert_cycles_match(node_model("ChannelwiseOp", attrs, {1: params}), rtl_cache, tmp_path)


@pytest.mark.parametrize("pe", [4, slow(1)])
def test_thresholding_bipolar(pe, rtl_cache, tmp_path):
    rng = np.random.default_rng(pe)
    ch = 8
    attrs = dict(NumChannels=ch, PE=pe, inputDataType="BIPOLAR", outputDataType="INT2", ActVal=-1,
                 numInputVectors=[1, 3])
    thresholds = thresholds_for(rng, ch, 2, -2, 2)  # below -1, between, above +1: every count happens
    assert_cycles_match(node_model("Thresholding", attrs, {1: thresholds}), rtl_cache, tmp_path)


@pytest.mark.parametrize("pe,k", [(5, 2), slow(1, 3)])
def test_label_select_bipolar(pe, k, rtl_cache, tmp_path):
    attrs = dict(Labels=10, PE=pe, K=k, inputDataType="BIPOLAR", outputDataType="UINT4")
    assert_cycles_match(node_model("LabelSelect", attrs), rtl_cache, tmp_path, images=6)  # ties everywhere


def test_refusal_names_the_node():
    """What the RTL does not cover fails in one line naming the node: a sum pool writing BIPOLAR."""
    attrs = dict(ImgDim=[2, 2], PoolDim=[1, 1], NumChannels=2, inputDataType="BIPOLAR", outputDataType="BIPOLAR")
    with pytest.raises(QnnflowError, match="node 'SumPool_0': the RTL sum pool writes integer sums, not BIPOLAR"):
        generate_rtl(node_model("SumPool", attrs), BOARD, ports="stream")


def test_chain_through_axi_ports(rtl_cache, tmp_path):
    """The six kinds in one chain behind the AXI-Stream port adapters: bit-exact, the slowest node sets the
    cycles per image, and every node is busy for its own cycles() an image."""
    rng = np.random.default_rng(3)
    ch, fold = 4, 2
    params = np.stack([random_ints(rng, "INT2", ch), random_ints(rng, "INT2", ch)], axis=1)
    image = dict(NumChannels=ch, SIMD=fold, inputDataType="INT3")
    vectors = dict(NumChannels=ch, PE=fold, numInputVectors=[1, 7, 7])
    model = chain_model([
        ("FMPaddingPixel", dict(ImgDim=[3, 3], Stride=[2, 2], **image), {}),
        ("FMPadding", dict(ImgDim=[5, 5], Padding=[1, 1, 1, 1], PadValue=-1, **image), {}),
        ("UpsampleNearestNeighbour", dict(ImgDim=[7, 7], Factor=[2, 2], **image), {}),
        ("SumPool", dict(ImgDim=[14, 14], PoolDim=[2, 2], NumChannels=ch, PE=fold, inputDataType="INT3",
                         outputDataType="INT5"), {}),
        ("ChannelwiseOp", dict(inputDataType="INT5", paramDataType="INT2", outputDataType="INT8", **vectors),
         {1: params}),
        ("GlobalAccPool", dict(inputDataType="INT8", outputDataType="INT14", **vectors), {})])
    result = rtlsim(model, model_inputs(model, rng, 8), BOARD, rtl_cache, tmp_path, min_images=16)
    assert result.bit_exact, result.message()
    perf = result.performance
    cycles = {node.name: getCustomOp(node).cycles() for node in model.graph.node}
    assert perf["cycles_per_image"] == max(cycles.values())
    images = perf["window_images"][1] - perf["window_images"][0]
    assert {name: perf["nodes"][name]["busy_cycles"] / images for name in cycles} == cycles
