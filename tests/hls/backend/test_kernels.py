"""Each C++ kernel against its node's Python execution, bit for bit, for several foldings.

Every test builds one small graph per folding (PE=1/SIMD=1, fully unfolded, mixed) and
runs cppsim on random inputs over the whole input range.
"""

from __future__ import annotations

import numpy as np
import pytest

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.widths import insert_converters
from tests.hls.backend.helpers import BOARD, chain_model, cppsim_all, node_model


def assert_exact(results, labels):
    for result, label in zip(results, labels):
        assert result.bit_exact, f"{label}: {result.message()}"
        assert result.images == 3


def thresholds(rng, channels, count, lo, hi):
    return np.sort(rng.integers(lo, hi + 1, size=(channels, count)), axis=1).astype(np.float32)


MVAU_CASES = {
    # name: (MW, MH, vectors, idt, wdt, odt, adt, xnor, act)
    "xnor": (16, 8, [1, 3], "BINARY", "BINARY", "BINARY", "UINT5", 1, "thresholds"),
    "xnor-wide": (96, 4, [1], "BINARY", "BINARY", "UINT2", "UINT7", 1, "thresholds"),
    "int4xint3-uint2": (12, 6, [1, 2, 2], "INT4", "INT3", "UINT2", "INT10", 0, "thresholds"),
    "int2-signed-act": (24, 4, [1], "INT2", "INT2", "INT2", "INT8", 0, "bipolar-ish"),
    "wide-words": (40, 4, [1], "INT4", "INT3", "UINT2", "INT11", 0, "thresholds"),  # lanes straddle 64-bit limbs
    "uint8xbipolar": (10, 4, [1], "UINT8", "BIPOLAR", "BINARY", "INT12", 0, "thresholds"),
    "no-activation": (8, 6, [1, 2], "INT3", "INT4", "INT10", "INT10", 0, None),
    "xnor-popcount-out": (20, 6, [1], "BINARY", "BINARY", "UINT5", "UINT5", 1, None),
    # 4 of UINT3's 7 threshold slots used (the rest padded), many beyond the accumulator's reach (clipped)
    "clipped-padded": (8, 4, [1, 2], "INT2", "INT2", "UINT3", "INT7", 0, "few-wide"),
}
FOLDINGS = {"fold1": (1, 1), "unfolded": (None, None), "mixed": ("half", "quarter")}


def mvau_model(case, folding, rng):
    mw, mh, vecs, idt, wdt, odt, adt, xnor, act = MVAU_CASES[case]
    pe, simd = FOLDINGS[folding]
    pe = mh if pe is None else (max(1, mh // 2) if pe == "half" else pe)
    simd = mw if simd is None else (max(1, mw // 4) if simd == "quarter" else simd)
    if xnor or wdt == "BINARY":
        weights = rng.integers(0, 2, size=(mw, mh)).astype(np.float32)
    elif wdt == "BIPOLAR":
        weights = rng.choice([-1.0, 1.0], size=(mw, mh)).astype(np.float32)
    else:
        from qonnx.core.datatype import DataType

        dt = DataType[wdt]
        weights = rng.integers(int(dt.min()), int(dt.max()) + 1, size=(mw, mh)).astype(np.float32)
    attrs = dict(MW=mw, MH=mh, SIMD=simd, PE=pe, inputDataType=idt, weightDataType=wdt, outputDataType=odt,
                 accDataType=adt, binaryXnorMode=xnor, numInputVectors=vecs, noActivation=int(act is None))
    params = {1: weights}
    if act == "thresholds":
        from qonnx.core.datatype import DataType

        n_thr = DataType[odt].max() if odt != "BINARY" else 1
        lo, hi = (0, mw) if xnor else (-2 * mw, 2 * mw)
        params[2] = thresholds(rng, mh, int(n_thr), lo, hi)
    elif act == "few-wide":
        params[2] = thresholds(rng, mh, 4, -100, 100)
    elif act == "bipolar-ish":  # two equal thresholds from -1: outputs -1 or +1 (to_hw's INT2 encoding)
        t = rng.integers(-6, 7, size=(mh, 1))
        params[2] = np.repeat(t, 2, axis=1).astype(np.float32)
        attrs["ActVal"] = -1
    return node_model("MVAU", attrs, params)


@pytest.mark.parametrize("case", list(MVAU_CASES))
def test_mvau(case, cppsim_cache):
    rng = np.random.default_rng(len(case))
    models = [mvau_model(case, f, rng) for f in FOLDINGS]
    assert_exact(cppsim_all(models, cppsim_cache), [f"{case}/{f}" for f in FOLDINGS])


SWG_CASES = {
    # name: (kernel, channels, image, stride, dtype)
    "3x3-stride1": ([3, 3], 4, [6, 6], [1, 1], "INT4"),
    "3x3-stride2-leftover": ([3, 3], 4, [8, 8], [2, 2], "BINARY"),
    "2x3-stride-2x1": ([2, 3], 2, [5, 7], [2, 1], "UINT3"),
    "1x1": ([1, 1], 4, [3, 3], [1, 1], "INT2"),
}


@pytest.mark.parametrize("case", list(SWG_CASES))
def test_sliding_window(case, cppsim_cache):
    (kh, kw), c, (h, w), (sh, sw), dt = SWG_CASES[case]
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    models = [node_model("ConvolutionInputGenerator", dict(
        ConvKernelDim=[kh, kw], IFMChannels=c, IFMDim=[h, w], OFMDim=[oh, ow], Stride=[sh, sw], SIMD=simd,
        inputDataType=dt, outputDataType=dt)) for simd in (1, c, 2)]
    assert_exact(cppsim_all(models, cppsim_cache), [f"{case}/SIMD={s}" for s in (1, c, 2)])


SWG_1D_CASES = {
    # name: (kernel width, channels, image width, stride)
    "1x3-stride1": (3, 4, 9, 1),
    "1x3-stride2-leftover": (3, 4, 10, 2),
    "1x2-stride3-gaps": (2, 2, 9, 3),
    "1x1": (1, 4, 5, 1),
}


@pytest.mark.parametrize("case", list(SWG_1D_CASES))
def test_sliding_window_1d(case, cppsim_cache):
    kw, c, w, sw = SWG_1D_CASES[case]
    models = [node_model("ConvolutionInputGenerator1D", dict(
        ConvKernelDim=[1, kw], IFMChannels=c, IFMDim=[1, w], OFMDim=[1, (w - kw) // sw + 1], Stride=[1, sw],
        SIMD=simd, inputDataType="INT3", outputDataType="INT3")) for simd in (1, c, 2)]
    assert_exact(cppsim_all(models, cppsim_cache), [f"{case}/SIMD={s}" for s in (1, c, 2)])


def test_padding(cppsim_cache):
    cases = [("INT4", [1, 2, 0, 1], -3, s) for s in (1, 6, 3)] + [("BINARY", [1, 1, 1, 1], 1, 2)]
    models = [node_model("FMPadding", dict(ImgDim=[5, 4], Padding=pad, NumChannels=6, SIMD=simd,
                                           inputDataType=dt, PadValue=value)) for dt, pad, value, simd in cases]
    assert_exact(cppsim_all(models, cppsim_cache), [str(c) for c in cases])


@pytest.mark.parametrize("image,stride", [([3, 4], [2, 2]), ([2, 3], [3, 1]), ([1, 4], [1, 2])],
                         ids=["2x2", "3x1", "1-d"])
def test_pixel_padding(image, stride, cppsim_cache):
    models = [node_model("FMPaddingPixel", dict(ImgDim=image, Stride=stride, NumChannels=4, SIMD=simd,
                                                inputDataType="INT3")) for simd in (1, 4, 2)]
    assert_exact(cppsim_all(models, cppsim_cache), [f"{stride}/SIMD={s}" for s in (1, 4, 2)])


POOL_CASES = {
    "2x2-stride2": ([2, 2], [2, 2], "BINARY"),
    "3x3-stride2-overlap": ([3, 3], [2, 2], "INT4"),
    "3x2-stride1": ([3, 2], [1, 1], "UINT3"),
    "2x2-stride3-gaps": ([2, 2], [3, 3], "INT2"),
}


@pytest.mark.parametrize("case", list(POOL_CASES))
def test_maxpool(case, cppsim_cache):
    pool, stride, dt = POOL_CASES[case]
    models = [node_model("StreamingMaxPool", dict(ImgDim=[7, 6], PoolDim=pool, Stride=stride, NumChannels=4,
                                                  PE=pe, dataType=dt)) for pe in (1, 4, 2)]
    assert_exact(cppsim_all(models, cppsim_cache), [f"{case}/PE={p}" for p in (1, 4, 2)])


@pytest.mark.parametrize("pool,stride", [([1, 2], [1, 2]), ([1, 3], [1, 2]), ([1, 2], [1, 3])],
                         ids=["1x2-stride2", "1x3-stride2-overlap", "1x2-stride3-gaps"])
def test_maxpool_1d_keeps_only_open_windows(pool, stride, cppsim_cache):
    models = [node_model("StreamingMaxPool", dict(ImgDim=[1, 11], PoolDim=pool, Stride=stride, NumChannels=4,
                                                  PE=pe, dataType="INT4")) for pe in (1, 4, 2)]
    assert_exact(cppsim_all(models, cppsim_cache), [f"{pool}/PE={p}" for p in (1, 4, 2)])


SUM_POOL_CASES = {  # name: (image, pool, stride, input type, output type)
    "2x2-stride2-uint": ([6, 6], [2, 2], [2, 2], "UINT4", "UINT6"),
    "3x3-stride2-overlap-int": ([7, 6], [3, 3], [2, 2], "INT4", "INT8"),
    "3x3-stride3-leftover": ([7, 7], [3, 3], [3, 3], "INT3", "INT7"),
    "1x2-stride2-1d": ([1, 9], [1, 2], [1, 2], "UINT2", "UINT3"),
}


@pytest.mark.parametrize("case", list(SUM_POOL_CASES))
def test_sum_pool(case, cppsim_cache):
    image, pool, stride, idt, odt = SUM_POOL_CASES[case]
    models = [node_model("SumPool", dict(ImgDim=image, PoolDim=pool, Stride=stride, NumChannels=4, PE=pe,
                                         inputDataType=idt, outputDataType=odt)) for pe in (1, 4, 2)]
    assert_exact(cppsim_all(models, cppsim_cache), [f"{case}/PE={p}" for p in (1, 4, 2)])


@pytest.mark.parametrize("image,factors", [([3, 4], [2, 2]), ([2, 3], [3, 1]), ([1, 5], [1, 2])],
                         ids=["2x2", "3x1", "1-d"])
def test_upsample_nearest(image, factors, cppsim_cache):
    models = [node_model("UpsampleNearestNeighbour", dict(ImgDim=image, Factor=factors, NumChannels=4, SIMD=simd,
                                                          inputDataType="INT3")) for simd in (1, 4, 2)]
    assert_exact(cppsim_all(models, cppsim_cache), [f"{factors}/SIMD={s}" for s in (1, 4, 2)])


def test_thresholding(cppsim_cache):
    rng = np.random.default_rng(5)
    models = []
    for pe, (idt, odt, act, n_thr) in [(1, ("INT5", "INT3", -1, 3)), (6, ("INT5", "INT3", -1, 3)),
                                       (2, ("UINT6", "UINT2", 0, 3)), (3, ("INT8", "BINARY", 0, 1))]:
        lo, hi = -20, 40
        models.append(node_model("Thresholding", dict(NumChannels=6, PE=pe, inputDataType=idt, outputDataType=odt,
                                                      ActVal=act, numInputVectors=[1, 3, 2]),
                                 {1: thresholds(rng, 6, n_thr, lo, hi)}))
    assert_exact(cppsim_all(models, cppsim_cache), ["PE=1", "PE=6", "PE=2", "PE=3"])


def test_label_select(cppsim_cache):
    # few distinct values: many ties, which go to the lower index first
    models = [node_model("LabelSelect", dict(Labels=12, PE=pe, K=k, inputDataType=dt, outputDataType="UINT4"))
              for pe, k, dt in [(1, 3, "INT3"), (12, 1, "UINT2"), (4, 12, "INT6"), (3, 5, "BINARY")]]
    assert_exact(cppsim_all(models, cppsim_cache), ["PE=1", "PE=12", "PE=4", "PE=3"])


def test_fifo_and_width_converters(cppsim_cache):
    # 12 INT3 elements a word: 1 lane (depth 1), 2 lanes (depth 8), all 12 (depth 40, beyond an SRL)
    fifos = [node_model("StreamingFIFO", dict(depth=depth, folded_shape=[1, 12 // lanes, lanes], dataType="INT3"))
             for lanes, depth in [(1, 1), (2, 8), (12, 40)]]
    # 2 -> 3 lanes (neither divides), 12 -> 4 (split), 1 -> 6 (merge)
    dwcs = [node_model("StreamingDataWidthConverter", dict(inWidth=a * 3, outWidth=b * 3, shape=[1, 12],
                                                           dataType="INT3")) for a, b in [(2, 3), (12, 4), (1, 6)]]
    assert_exact(cppsim_all([*fifos, *dwcs], cppsim_cache),
                 ["fifo x1", "fifo x2", "fifo x12", "dwc 2->3", "dwc 12->4", "dwc 1->6"])


def test_inserted_width_converter_between_foldings(cppsim_cache):
    """MVAU with PE=4 feeding an MVAU with SIMD=3: codegen refuses the 8-bit to 6-bit stream; after
    insert_converters (what the fold step runs) the chain with its converter is bit-exact."""
    rng = np.random.default_rng(9)
    first = dict(MW=6, MH=12, SIMD=2, PE=4, inputDataType="INT3", weightDataType="INT2", outputDataType="UINT2",
                 accDataType="INT10", numInputVectors=[1])
    second = dict(MW=12, MH=3, SIMD=3, PE=1, inputDataType="UINT2", weightDataType="INT2", outputDataType="INT8",
                  accDataType="INT8", noActivation=1, numInputVectors=[1])
    model = chain_model([
        ("MVAU", first, {1: rng.integers(-2, 2, (6, 12)), 2: thresholds(rng, 12, 3, -10, 10)}),
        ("MVAU", second, {1: rng.integers(-2, 2, (12, 3))}),
    ])
    with pytest.raises(QnnflowError, match=r"node 'MVAU_1' reads 6-bit words but 'MVAU_0' writes 8-bit words"):
        cppsim_all([model], cppsim_cache)
    assert insert_converters(model, BOARD) == ["StreamingDataWidthConverter_0"]
    (result,) = cppsim_all([model], cppsim_cache)
    assert result.bit_exact, result.message()


def test_declared_input_type_must_match_the_stream(cppsim_cache):
    """A LabelSelect declaring INT32 input after an MVAU streaming INT7 is refused naming both and the fix
    (kernels read their own declared type, so nothing narrows it silently); with the fix it is bit-exact."""
    rng = np.random.default_rng(4)
    scores = dict(MW=8, MH=10, SIMD=2, PE=5, inputDataType="INT2", weightDataType="INT2", outputDataType="INT7",
                  accDataType="INT7", noActivation=1, numInputVectors=[1])
    layers = [("MVAU", scores, {1: rng.integers(-2, 2, (8, 10))}),
              ("LabelSelect", dict(Labels=10, PE=5, K=4, inputDataType="INT32", outputDataType="UINT4"), {})]
    with pytest.raises(QnnflowError, match=r"^node 'LabelSelect_1': reads INT32 elements but 'MVAU_0' writes INT7; "
                                           r"set its input datatype to INT7"):
        cppsim_all([chain_model(layers)], cppsim_cache)
    layers[1][1]["inputDataType"] = "INT7"
    (result,) = cppsim_all([chain_model(layers)], cppsim_cache)
    assert result.bit_exact, result.message()
