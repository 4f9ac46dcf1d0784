"""ConvolutionInputGenerator, FMPadding and StreamingMaxPool against explicit loops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.hls.nodes.harness import INT_TYPES, board, make_node, node_op, random_values, run_direct, run_model, single_node_model
from qnnflow.base.errors import QnnflowError


def ref_im2col(x, kh, kw, sh, sw):
    """Loop over output pixels; each row lists the window in (ky, kx, c) order."""
    n, h, w, c = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((n, oh, ow, kh * kw * c))
    for i in range(oh):
        for j in range(ow):
            col = 0
            for ky in range(kh):
                for kx in range(kw):
                    out[:, i, j, col : col + c] = x[:, i * sh + ky, j * sw + kx, :]
                    col += c
    return out


def ref_maxpool(x, kh, kw, sh, sw):
    n, h, w, c = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            out[:, i, j, :] = x[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :].max(axis=(1, 2))
    return out


geometry = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
                     st.integers(0, 4), st.integers(0, 4))


@settings(max_examples=150, deadline=None)
@given(geometry, st.sampled_from([1, 2, 3, 4]), st.integers(1, 3), st.sampled_from(INT_TYPES),
       st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_sliding_window_matches_loops(geo, simd, c_fold, dt, batch, seed):
    kh, kw, sh, sw, extra_h, extra_w = geo
    h, w, c = kh + extra_h, kw + extra_w, simd * c_fold
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    x = random_values(np.random.default_rng(seed), dt, (batch, h, w, c))
    op = node_op("ConvolutionInputGenerator", ConvKernelDim=[kh, kw], IFMChannels=c, IFMDim=[h, w], OFMDim=[oh, ow],
                 Stride=[sh, sw], SIMD=simd, inputDataType=dt, outputDataType=dt)
    np.testing.assert_array_equal(run_direct(op, {"x": x}), ref_im2col(x, kh, kw, sh, sw))


@settings(max_examples=150, deadline=None)
@given(geometry, st.sampled_from([1, 2, 3]), st.integers(1, 3), st.sampled_from(INT_TYPES),
       st.booleans(), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_maxpool_matches_loops(geo, pe, c_fold, dt, default_stride, batch, seed):
    kh, kw, sh, sw, extra_h, extra_w = geo
    if default_stride:
        sh, sw = kh, kw
    h, w, c = kh + extra_h, kw + extra_w, pe * c_fold
    x = random_values(np.random.default_rng(seed), dt, (batch, h, w, c))
    attrs = dict(ImgDim=[h, w], PoolDim=[kh, kw], NumChannels=c, PE=pe, dataType=dt)
    if not default_stride:
        attrs["Stride"] = [sh, sw]
    np.testing.assert_array_equal(run_direct(node_op("StreamingMaxPool", **attrs), {"x": x}), ref_maxpool(x, kh, kw, sh, sw))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=4, max_size=4), st.integers(1, 4), st.integers(1, 4),
       st.sampled_from([1, 2]), st.sampled_from(INT_TYPES), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_padding_matches_assignment(pad, h, w, simd, dt, batch, seed):
    rng = np.random.default_rng(seed)
    c = 2 * simd
    x = random_values(rng, dt, (batch, h, w, c))
    value = int(random_values(rng, dt, ())[()])
    top, left, bottom, right = pad
    want = np.full((batch, h + top + bottom, w + left + right, c), value)
    want[:, top : top + h, left : left + w, :] = x
    op = node_op("FMPadding", ImgDim=[h, w], Padding=pad, NumChannels=c, SIMD=simd, inputDataType=dt, PadValue=value)
    np.testing.assert_array_equal(run_direct(op, {"x": x}), want)


def test_window_nodes_in_single_node_models():
    rng = np.random.default_rng(0)
    x = random_values(rng, "INT3", (2, 6, 5, 4))
    cases = [
        (make_node("ConvolutionInputGenerator", ConvKernelDim=[3, 2], IFMChannels=4, IFMDim=[6, 5], OFMDim=[2, 4],
                   Stride=[2, 1], SIMD=2, inputDataType="INT3", outputDataType="INT3"), ref_im2col(x, 3, 2, 2, 1)),
        (make_node("StreamingMaxPool", ImgDim=[6, 5], PoolDim=[3, 3], Stride=[2, 2], NumChannels=4, dataType="INT3"),
         ref_maxpool(x, 3, 3, 2, 2)),
        (make_node("FMPadding", ImgDim=[6, 5], Padding=[1, 0, 2, 1], NumChannels=4, inputDataType="INT3", PadValue=-4),
         np.pad(x, ((0, 0), (1, 2), (0, 1), (0, 0)), constant_values=-4)),
    ]
    for node, want in cases:
        model = single_node_model(node, x, "INT3")
        assert model.get_tensor_shape("y") == list(want.shape)
        assert model.get_tensor_datatype("y").name == "INT3"
        np.testing.assert_array_equal(run_model(model, x), want)


def _swu(**kw):
    attrs = dict(ConvKernelDim=[3, 3], IFMChannels=64, IFMDim=[32, 32], OFMDim=[30, 30], SIMD=16,
                 inputDataType="UINT2", outputDataType="UINT2")
    attrs.update(kw)
    return node_op("ConvolutionInputGenerator", **attrs)


def test_sliding_window_legality_errors():
    with pytest.raises(QnnflowError, match=r"^node 'ConvolutionInputGenerator_0': Dilation=\[2, 2\] is not supported, only \[1, 1\]"):
        _swu(Dilation=[2, 2]).check()
    with pytest.raises(QnnflowError, match=r"OFMDim=\[31, 30\] does not match .* expected \[30, 30\]"):
        _swu(OFMDim=[31, 30]).check()
    with pytest.raises(QnnflowError, match=r"SIMD=24 does not divide IFMChannels=64; legal SIMD values: 1, 2, 4, 8, 16, 32, 64$"):
        _swu(SIMD=24).check()
    with pytest.raises(QnnflowError, match=r"outputDataType=INT2 must equal inputDataType=UINT2"):
        _swu(outputDataType="INT2").check()
    with pytest.raises(QnnflowError, match=r"input 'x' has shape \(1, 32, 32, 3\), expected \(N, 32, 32, 64\) NHWC"):
        run_direct(_swu(), {"x": np.zeros((1, 32, 32, 3), np.float32)})
    with pytest.raises(QnnflowError, match=r"^node 'StreamingMaxPool_0': PE=3 does not divide NumChannels=8"):
        node_op("StreamingMaxPool", ImgDim=[4, 4], PoolDim=[2, 2], NumChannels=8, PE=3, dataType="INT2").check()
    with pytest.raises(QnnflowError, match=r"^node 'FMPadding_0': PadValue=9 is not a value of inputDataType=INT4"):
        node_op("FMPadding", ImgDim=[4, 4], Padding=[1, 1, 1, 1], NumChannels=2, inputDataType="INT4", PadValue=9).check()


def test_window_cycles_hand_computed():
    # 3x3 window over 32x32x64 at SIMD 16 (4 words per pixel): first fill 3 rows of 32 pixels,
    # then each of the 30 output rows writes 30 windows of 9 pixels, which is slower than reading one new row.
    words = 64 // 16
    fill = 3 * 32 * words
    per_row = max(30 * 9 * words, 1 * 32 * words)
    assert _swu().cycles() == fill + 30 * per_row == 32784
    # stride 2 reads 2 rows per output row (the last output row the one row left); with a 1x1 kernel
    # reading dominates
    op = _swu(ConvKernelDim=[1, 1], OFMDim=[16, 16], Stride=[2, 2])
    assert op.cycles() == 1 * 32 * words + 15 * max(16 * 1 * words, 2 * 32 * words) + max(16 * words, 32 * words)
    pad = node_op("FMPadding", ImgDim=[30, 30], Padding=[1, 1, 1, 1], NumChannels=64, SIMD=16, inputDataType="UINT2")
    assert pad.cycles() == 32 * 32 * words
    pool = node_op("StreamingMaxPool", ImgDim=[28, 28], PoolDim=[2, 2], NumChannels=64, PE=16, dataType="UINT2")
    assert pool.cycles() == 28 * 28 * words and pool.folded_output_shape() == (1, 14, 14, 4, 16)
    # one word per pixel (PE = C): consecutive words update the same running maximum, a read-modify-write
    # that a block RAM row (256 deep) allows every other cycle and a LUTRAM row (32 deep) every cycle
    def pool_of(width, pe):
        return node_op("StreamingMaxPool", ImgDim=[4, width], PoolDim=[2, 2], NumChannels=8, PE=pe, dataType="UINT2")

    deep, shallow, two_words = pool_of(512, 8), pool_of(64, 8), pool_of(512, 4)
    assert deep.resources(board("pynq-z1"))["BRAM18"] > 0 and deep.cycles() == 2 * 4 * 512
    assert shallow.resources(board("pynq-z1"))["BRAM18"] == 0 and shallow.cycles() == 4 * 64
    assert two_words.resources(board("pynq-z1"))["BRAM18"] > 0 and two_words.cycles() == 4 * 512 * 2


def test_window_resources_sanity():
    for name in ("pynq-z1", "ultra96"):
        b = board(name)
        small, wide = _swu(SIMD=1).resources(b), _swu(SIMD=64).resources(b)
        assert min(small.values()) >= 0 and min(wide.values()) >= 0
        assert small["BRAM18"] > 0  # 32*64-deep line buffers go to block RAM
        assert _swu(ram_style="distributed").resources(b)["BRAM18"] == 0
        pad = node_op("FMPadding", ImgDim=[8, 8], Padding=[1, 1, 1, 1], NumChannels=64, SIMD=16, inputDataType="UINT2")
        assert pad.resources(b)["BRAM18"] == 0 and pad.resources(b)["LUT"] > 0
        pools = [node_op("StreamingMaxPool", ImgDim=[32, 32], PoolDim=[2, 2], NumChannels=64, PE=pe,
                         dataType="UINT4").resources(b)["LUT"] for pe in (1, 4, 16, 64)]
        assert pools == sorted(pools)
