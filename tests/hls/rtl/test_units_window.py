"""The sliding window and max-pool RTL units simulated with Verilator against the nodes' Python execution, at
several foldings and kernel/stride shapes, at full speed and with valid and ready deasserted at random; at full
speed the measured cycles per image equal the nodes' cycle models (the RTL runs the HLS kernels' schedules)."""

from __future__ import annotations

import pytest
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.codegen.rtl import generate_rtl
from qnnflow.hls.synth import synthesize
from tests.hls.backend.helpers import BOARD, node_model
from tests.hls.rtl.test_units import simulate


def swg(k, s, ifm, ch, simd, dt="UINT3", dw=0, mask=(), ram_style="auto", op_type="ConvolutionInputGenerator"):
    (kh, kw), (sh, sw), (h, w) = k, s, ifm
    attrs = dict(ConvKernelDim=[kh, kw], IFMChannels=ch, IFMDim=[h, w],
                 OFMDim=[(h - kh) // sh + 1, (w - kw) // sw + 1], Stride=[sh, sw], SIMD=simd, inputDataType=dt,
                 outputDataType=dt, depthwise=dw, ram_style=ram_style)
    return node_model(op_type, dict(attrs, PruneMask=list(mask)) if mask else attrs)


def measured_against_model(model, rtl_cache, tmp_path, images=4):
    full = simulate(model, rtl_cache, tmp_path, images=images)
    model_cycles = getCustomOp(model.graph.node[0]).cycles()
    return full.performance["cycles_per_image"], model_cycles


@pytest.mark.parametrize("k,s,ifm,ch,simd,dt,ram_style", [
    ((3, 3), (1, 1), (6, 5), 4, 2, "UINT3", "auto"),        # CNV's shape, writes dominate
    ((3, 3), (1, 1), (5, 5), 2, 2, "BINARY", "block"),      # one word a pixel
    ((2, 3), (2, 1), (7, 6), 6, 3, "INT4", "distributed"),  # non-square kernel, stride 2 down, leftover row
    ((1, 1), (2, 2), (6, 6), 4, 1, "INT2", "auto"),         # a strided 1x1: reads dominate
    ((3, 3), (2, 2), (8, 8), 2, 1, "UINT2", "ultra"),
])
def test_sliding_window(k, s, ifm, ch, simd, dt, ram_style, rtl_cache, tmp_path):
    measured, model = measured_against_model(swg(k, s, ifm, ch, simd, dt, ram_style=ram_style), rtl_cache, tmp_path)
    assert measured == model


@pytest.mark.parametrize("k,s,ifm,ch,simd", [((3, 3), (1, 1), (5, 6), 4, 2), ((3, 2), (2, 1), (7, 5), 3, 1),
                                             ((2, 2), (1, 2), (5, 6), 2, 2)])
def test_sliding_window_depthwise(k, s, ifm, ch, simd, rtl_cache, tmp_path):
    measured, model = measured_against_model(swg(k, s, ifm, ch, simd, "INT3", dw=1), rtl_cache, tmp_path)
    assert measured == model


def test_sliding_window_pruned(rtl_cache, tmp_path):
    """A PruneMask keeping channel words 0, 2 and 3 of 4: the windows skip word 1."""
    model = swg((3, 3), (1, 1), (5, 5), 8, 2, "UINT2", mask=(1, 1, 0, 0, 1, 1, 1, 1))
    measured, model_cycles = measured_against_model(model, rtl_cache, tmp_path)
    assert measured == model_cycles


@pytest.mark.parametrize("k,s,w,ch,simd,dt", [
    (3, 1, 9, 4, 2, "INT4"),     # writes dominate
    (2, 3, 11, 2, 2, "BINARY"),  # the stride skips pixels: reads dominate
    (4, 2, 8, 3, 1, "UINT2"),
    (1, 1, 5, 4, 4, "UINT3"),    # one word a pixel, a 1x1 kernel
])
def test_sliding_window_1d(k, s, w, ch, simd, dt, rtl_cache, tmp_path):
    model = swg((1, k), (1, s), (1, w), ch, simd, dt, op_type="ConvolutionInputGenerator1D")
    measured, model_cycles = measured_against_model(model, rtl_cache, tmp_path)
    assert measured == model_cycles


def test_sliding_window_1d_depthwise_is_refused_naming_the_node():
    model = swg((1, 3), (1, 1), (1, 9), 4, 2, "INT4", dw=1, op_type="ConvolutionInputGenerator1D")
    with pytest.raises(QnnflowError, match=r"^node 'ConvolutionInputGenerator1D_0' \(ConvolutionInputGenerator1D\): the 1-D sliding window has no "
                                           "depthwise or pruned mode"):
        generate_rtl(model, BOARD, ports="stream")


@pytest.mark.parametrize("ifm,pool,stride,ch,pe,dt", [
    ((4, 6), (2, 2), None, 4, 2, "BINARY"),       # CNV's pool
    ((5, 5), (2, 2), None, 3, 1, "INT4"),         # floor mode: the last row and column are dropped
    ((6, 7), (3, 3), (2, 2), 2, 2, "INT3"),       # overlapping windows
    ((1, 9), (1, 3), (1, 2), 4, 4, "UINT4"),      # a 1-D pool, one word a pixel
    ((5, 6), (2, 3), (1, 1), 1, 1, "UINT2"),      # stride 1: every word in up to 6 windows
])
def test_maxpool(ifm, pool, stride, ch, pe, dt, rtl_cache, tmp_path):
    attrs = dict(ImgDim=list(ifm), PoolDim=list(pool), NumChannels=ch, PE=pe, dataType=dt)
    if stride:
        attrs["Stride"] = list(stride)
    measured, model = measured_against_model(node_model("StreamingMaxPool", attrs), rtl_cache, tmp_path)
    assert measured == model


@pytest.mark.slow
def test_line_buffer_is_bound_as_ram_style_says(tmp_path):
    """Yosys out of context: the line buffer (four 32-deep x 32-bit slots) in block RAM or in LUT RAM."""
    counts = {}
    for style in ("block", "distributed"):
        model = swg((3, 3), (1, 1), (16, 16), 64, 32, "BINARY", ram_style=style)
        project = generate_rtl(model, BOARD, ports="stream")
        work = tmp_path / style
        for rel, data in project.files.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_bytes(data)
        counts[style] = synthesize(project, work, "xc7", whole=False)["nodes"]["ConvolutionInputGenerator_0"]
    assert counts["block"]["BRAM18"] >= 4, counts
    assert counts["distributed"]["BRAM18"] == 0 and counts["distributed"]["LUTRAM"] > counts["block"]["LUTRAM"], counts
