"""MVAU: bit-exact execution against plain references, legality errors, layout, cycles and cost."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.hls.nodes.harness import (INT_TYPES, board, fitting_type, make_node, node_op, random_values, run_direct,
                         run_model, single_node_model)
from qnnflow.base.errors import QnnflowError
from qnnflow.hls.nodes.thresholding import threshold_table


def ref_mvau(x, w, t=None, act_val=0):
    """int64 einsum (no BLAS) and an explicit broadcast comparison against every threshold."""
    acc = np.einsum("...k,kn->...n", x.astype(np.int64), w.astype(np.int64))
    if t is None:
        return acc
    return act_val + (acc[..., :, None] >= t.astype(np.int64)).sum(axis=-1)


@st.composite
def mvau_cases(draw):
    simd, pe = draw(st.sampled_from([1, 2, 3, 4, 8])), draw(st.sampled_from([1, 2, 4, 5]))
    mw, mh = simd * draw(st.integers(1, 5)), pe * draw(st.integers(1, 4))
    idt, wdt = draw(st.sampled_from(INT_TYPES)), draw(st.sampled_from(INT_TYPES))
    vecs = draw(st.sampled_from([[1], [1, 3], [1, 2, 3]]))
    n_thr = draw(st.sampled_from([0, 1, 3, 7, 20]))  # 0: no activation; 20 takes the binary-search path
    return dict(simd=simd, pe=pe, mw=mw, mh=mh, idt=idt, wdt=wdt, vecs=vecs, n_thr=n_thr,
                batch=draw(st.integers(1, 4)), act_neg=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


def build_mvau(c, rng):
    x = random_values(rng, c["idt"], (c["batch"], *c["vecs"][1:], c["mw"]))
    w = random_values(rng, c["wdt"], (c["mw"], c["mh"]))
    attrs = dict(MW=c["mw"], MH=c["mh"], SIMD=c["simd"], PE=c["pe"], inputDataType=c["idt"], weightDataType=c["wdt"],
                 numInputVectors=c["vecs"])
    if c["n_thr"]:
        acc = ref_mvau(x, w)
        t = np.sort(rng.integers(int(acc.min()) - 2, int(acc.max()) + 3, (c["mh"], c["n_thr"])), axis=1)
        act = -(c["n_thr"] // 2) if c["act_neg"] else 0
        attrs.update(outputDataType=fitting_type(act, act + c["n_thr"]), ActVal=act)
        return x, w, t.astype(np.float32), act, attrs
    attrs.update(outputDataType="INT32", noActivation=1)
    return x, w, None, 0, attrs


@settings(max_examples=300, deadline=None)
@given(mvau_cases())
def test_mvau_matches_reference(c):
    rng = np.random.default_rng(c["seed"])
    x, w, t, act, attrs = build_mvau(c, rng)
    inputs = ["x", "W"] + (["T"] if t is not None else [])
    op = node_op("MVAU", inputs, **attrs)
    ctx = {"x": x, "W": w, **({"T": t} if t is not None else {})}
    got = run_direct(op, ctx)
    want = ref_mvau(x, w, t, act)
    assert got.shape == want.shape == (c["batch"], *c["vecs"][1:], c["mh"])
    np.testing.assert_array_equal(got, want)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 130), st.integers(1, 12), st.integers(1, 3), st.sampled_from([0, 3, 30]), st.integers(0, 2**32 - 1))
def test_binary_xnor_mvau_matches_bipolar_formula(mw, mh, batch, n_thr, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, (batch, mw)).astype(np.float32)
    w = rng.integers(0, 2, (mw, mh)).astype(np.float32)
    popcount = (mw + (2 * x.astype(np.float64) - 1) @ (2 * w.astype(np.float64) - 1)) / 2
    attrs = dict(MW=mw, MH=mh, inputDataType="BINARY", weightDataType="BINARY", binaryXnorMode=1)
    if n_thr:
        t = np.sort(rng.integers(0, mw + 2, (mh, n_thr)), axis=1).astype(np.float32)
        want = (popcount[..., None] >= t).sum(-1)
        op = node_op("MVAU", ["x", "W", "T"], outputDataType=fitting_type(0, n_thr), **attrs)
        got = run_direct(op, {"x": x, "W": w, "T": t})
    else:
        want = popcount
        op = node_op("MVAU", ["x", "W"], outputDataType="UINT16", noActivation=1, **attrs)
        got = run_direct(op, {"x": x, "W": w})
    np.testing.assert_array_equal(got, want)


def test_bipolar_operands_use_the_packed_kernel_exactly():
    rng = np.random.default_rng(3)
    x = rng.choice([-1.0, 1.0], (5, 70)).astype(np.float32)
    w = rng.choice([-1.0, 1.0], (70, 9)).astype(np.float32)
    op = node_op("MVAU", ["x", "W"], MW=70, MH=9, inputDataType="BIPOLAR", weightDataType="BIPOLAR",
                 outputDataType="INT8", noActivation=1)
    np.testing.assert_array_equal(run_direct(op, {"x": x, "W": w}), x.astype(np.int64) @ w.astype(np.int64))


def test_wide_accumulators_stay_exact_and_use_a_float64_carrier():
    rng = np.random.default_rng(4)
    x = rng.integers(-(2**15), 2**15, (2, 64)).astype(np.float64)
    w = rng.integers(-(2**15), 2**15, (64, 3)).astype(np.float64)
    op = node_op("MVAU", ["x", "W"], MW=64, MH=3, inputDataType="INT16", weightDataType="INT16",
                 outputDataType="INT40", accDataType="INT40", noActivation=1)
    got = run_direct(op, {"x": x, "W": w})
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got.astype(np.int64), x.astype(np.int64) @ w.astype(np.int64))


def test_mvau_through_a_single_node_model_with_batch():
    rng = np.random.default_rng(5)
    x = random_values(rng, "UINT4", (3, 2, 2, 12))
    w = random_values(rng, "INT3", (12, 6))
    t = np.sort(rng.integers(-60, 60, (6, 15)), axis=1).astype(np.float32)
    node = make_node("MVAU", ["x", "W", "T"], MW=12, MH=6, SIMD=4, PE=3, inputDataType="UINT4", weightDataType="INT3",
                     outputDataType="UINT4", numInputVectors=[1, 2, 2], accDataType="INT12")
    model = single_node_model(node, x, "UINT4", {"W": (w, "INT3"), "T": (t, "INT12")})
    assert model.get_tensor_shape("y") == [3, 2, 2, 6]
    assert model.get_tensor_datatype("y").name == "UINT4"
    np.testing.assert_array_equal(run_model(model, x), ref_mvau(x, w, t))


def test_mvau_reads_any_tensor_with_its_elements_per_image_as_its_stream():
    """A classifier reading a (N, 3, 3, 4) conv output directly (no Flatten): MW = 36, the same element order."""
    rng = np.random.default_rng(8)
    x = random_values(rng, "UINT2", (2, 3, 3, 4))
    w = random_values(rng, "INT3", (36, 5))
    node = make_node("MVAU", ["x", "W"], MW=36, MH=5, SIMD=12, PE=5, inputDataType="UINT2", weightDataType="INT3",
                     outputDataType="INT10", accDataType="INT10", noActivation=1, numInputVectors=[1])
    model = single_node_model(node, x, "UINT2", {"W": (w, "INT3")})
    assert model.get_tensor_shape("y") == [2, 5]  # from the attributes, not from x's shape
    np.testing.assert_array_equal(run_model(model, x), ref_mvau(x.reshape(2, 36), w))
    # three vectors of 12 per image, read from a (N, 36) stream
    op = node_op("MVAU", ["x", "W"], MW=12, MH=5, inputDataType="UINT2", weightDataType="INT3",
                 outputDataType="INT10", accDataType="INT10", noActivation=1, numInputVectors=[1, 3])
    got = run_direct(op, {"x": x.reshape(2, 36), "W": w[:12]})
    np.testing.assert_array_equal(got, ref_mvau(x.reshape(2, 3, 12), w[:12]))
    with pytest.raises(QnnflowError, match=r"input 'x' has shape \(2, 35\), expected \(N, 3, 12\) or another "
                                           r"shape with 36 elements per image"):
        run_direct(op, {"x": x.reshape(2, 36)[:, :35], "W": w[:12]})


def test_illegal_folding_names_node_attribute_and_legal_values():
    op = node_op("MVAU", ["x", "W"], name="MVAU_3", MW=576, MH=128, SIMD=7, PE=16, inputDataType="UINT2",
                 weightDataType="INT2", outputDataType="UINT2")
    with pytest.raises(QnnflowError) as err:
        op.check()
    msg = str(err.value)
    assert msg.startswith("node 'MVAU_3': SIMD=7 does not divide MW=576; legal SIMD values: 1, 2, 3, 4, 6, 8, 9,")
    assert "\n" not in msg
    op = node_op("MVAU", ["x", "W"], MW=8, MH=6, PE=4, inputDataType="UINT2", weightDataType="INT2",
                 outputDataType="INT8", noActivation=1)
    assert op.folding_problems() == ["PE=4 does not divide MH=6; legal PE values: 1, 2, 3, 6"]
    with pytest.raises(QnnflowError, match=r"node 'MVAU_0': PE=4 does not divide MH=6"):
        run_direct(op, {"x": np.zeros((1, 8), np.float32), "W": np.zeros((8, 6), np.float32)})
    with pytest.raises(QnnflowError, match=r"node 'MVAU_0': PE=4"):
        op.cycles()


def test_binary_mode_requires_binary_types():
    op = node_op("MVAU", ["x", "W"], MW=8, MH=2, inputDataType="BIPOLAR", weightDataType="BINARY",
                 outputDataType="UINT4", binaryXnorMode=1, noActivation=1)
    with pytest.raises(QnnflowError, match=r"node 'MVAU_0': binaryXnorMode=1 needs inputDataType=BINARY"):
        run_direct(op, {"x": np.ones((1, 8), np.float32), "W": np.ones((8, 2), np.float32)})


@pytest.mark.parametrize("change, pattern", [
    (dict(W=np.zeros((8, 3))), r"weights 'W' have shape \(8, 3\), expected \(MW, MH\) = \(8, 2\)"),
    (dict(W=np.full((8, 2), 5.0)), r"weights 'W' holds values in \[5, 5\], outside INT2"),
    (dict(x=np.full((1, 8), 9.0)), r"input 'x' holds values in \[9, 9\], outside UINT2"),
    (dict(x=np.full((1, 8), 0.5)), r"input 'x' holds non-integer values"),
    (dict(x=np.zeros((1, 4))), r"input 'x' has shape \(1, 4\), expected \(N, 8\)"),
    (dict(T=np.zeros((3, 2))), r"thresholds 'T' have shape \(3, 2\), expected \(2, nT\)"),
    (dict(T=np.zeros((2, 7))), r"outputs span \[0, 7\] .* outputDataType=UINT2"),
])
def test_bad_tensors_are_named(change, pattern):
    ctx = {"x": np.ones((1, 8), np.float32), "W": np.ones((8, 2), np.float32), "T": np.zeros((2, 3), np.float32)}
    ctx.update({k: np.asarray(v, np.float32) for k, v in change.items()})
    op = node_op("MVAU", ["x", "W", "T"], MW=8, MH=2, inputDataType="UINT2", weightDataType="INT2", outputDataType="UINT2")
    with pytest.raises(QnnflowError, match=r"^node 'MVAU_0': " + pattern):
        run_direct(op, ctx)


def test_accumulator_type_too_narrow_is_reported():
    op = node_op("MVAU", ["x", "W"], MW=8, MH=2, inputDataType="UINT8", weightDataType="INT8",
                 outputDataType="INT8", accDataType="INT8", noActivation=1)
    with pytest.raises(QnnflowError, match=r"accumulator range \[.*\] does not fit accDataType=INT8"):
        run_direct(op, {"x": np.ones((1, 8), np.float32), "W": np.ones((8, 2), np.float32)})


def test_packed_weights_layout():
    mw, mh, simd, pe = 6, 8, 3, 4
    w = np.arange(mw * mh).reshape(mw, mh)
    op = node_op("MVAU", ["x", "W"], MW=mw, MH=mh, SIMD=simd, PE=pe, inputDataType="UINT2", weightDataType="INT8",
                 outputDataType="INT32", noActivation=1)
    packed = op.packed_weights(w)
    (weights,) = [m for m in op.memories() if m.name == "weights"]  # what the cost model counts
    assert packed.shape == (weights.count, weights.depth, simd) == (pe, op.calc_wmem(), simd) == (4, 4, 3)
    sf = mw // simd
    for n in range(mh):  # output row n: PE n % pe, local row n // pe
        for sfi in range(sf):
            for s in range(simd):
                assert packed[n % pe, (n // pe) * sf + sfi, s] == w[sfi * simd + s, n]


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([1, 2, 4]), st.integers(1, 3), st.integers(1, 6), st.integers(0, 4), st.integers(-20, 10),
       st.integers(0, 30), st.integers(0, 2**16))
def test_threshold_table_keeps_every_count(pe, c_fold, n_thr, extra_slots, lo, span, seed):
    """The emitted table [PE][C/PE][slots]: thresholds clipped to the compared range [lo, hi] and padded
    to ``slots`` give every value in that range the same count as the node's thresholds."""
    rng = np.random.default_rng(seed)
    channels, hi = pe * c_fold, lo + span
    t = rng.integers(lo - 40, hi + 40, size=(channels, n_thr))  # many outside the range, unsorted
    table = threshold_table(t, pe, n_thr + extra_slots, lo, hi)
    assert table.shape == (pe, c_fold, n_thr + extra_slots)
    assert (np.diff(table, axis=-1) >= 0).all() and table.min() >= lo and table.max() <= hi + 1
    values = np.arange(lo, hi + 1)
    for c in range(channels):  # channel c: PE c % pe, local row c // pe
        stored = table[c % pe, c // pe]
        assert ((values[:, None] >= stored).sum(1) == (values[:, None] >= t[c]).sum(1)).all()


def test_cycles_hand_computed():
    op = node_op("MVAU", ["x", "W", "T"], MW=576, MH=128, SIMD=32, PE=16, numInputVectors=[1, 12, 12],
                 inputDataType="UINT2", weightDataType="INT2", outputDataType="UINT2")
    pixels = 12 * 12
    output_folds = 128 // 16  # each PE produces 8 of the 128 outputs in turn
    input_folds = 576 // 32  # each output takes 18 SIMD-wide slices of the 576 inputs
    assert op.cycles() == pixels * output_folds * input_folds == 20736
    # per PE: 8 x 18 weight words and 8 threshold words; one input vector of 18 SIMD-wide words
    assert {m.name: (m.count, m.depth) for m in op.memories()} == \
        {"weights": (16, 576 * 128 // (16 * 32)), "thresholds": (16, 8), "vector": (1, 18)}
    assert op.instream_width() == 32 * 2 and op.outstream_width() == 16 * 2
    assert op.folded_input_shape() == (1, 12, 12, 18, 32) and op.folded_output_shape() == (1, 12, 12, 8, 16)


def _mvau_res(brd="pynq-z1", **kw):
    attrs = dict(MW=256, MH=64, SIMD=16, PE=4, inputDataType="UINT4", weightDataType="INT4", outputDataType="UINT4")
    attrs.update(kw)
    return node_op("MVAU", ["x", "W", "T"], **attrs).resources(board(brd))


def test_mvau_resources_sanity():
    for brd in ("pynq-z1", "ultra96"):
        luts = [_mvau_res(brd, PE=pe)["LUT"] for pe in (1, 2, 4, 8, 16, 32, 64)]
        assert luts == sorted(luts) and len(set(luts)) == len(luts), luts
        simd_luts = [_mvau_res(brd, SIMD=s)["LUT"] for s in (1, 2, 4, 8, 16, 32)]
        assert simd_luts == sorted(simd_luts)
    binary = _mvau_res(inputDataType="BINARY", weightDataType="BINARY", binaryXnorMode=1, outputDataType="BINARY")
    eight = _mvau_res(inputDataType="UINT8", weightDataType="INT8", resType="lut", outputDataType="BINARY")
    assert binary["LUT"] < eight["LUT"] and binary["DSP"] == eight["DSP"] == 0
    dsp = _mvau_res(inputDataType="INT8", weightDataType="INT8", resType="dsp")
    assert dsp["DSP"] == 4 * 16  # one DSP48 per 8x8 lane
    assert _mvau_res(inputDataType="INT8", weightDataType="INT8")["DSP"] == 64  # auto: wide operands -> DSP
    assert _mvau_res(resType="auto")["DSP"] == 0  # 4-bit operands stay in LUTs
    # a BIPOLAR operand is a sign flip, in both back ends: no DSP even when resType asks for them
    assert _mvau_res(inputDataType="INT8", weightDataType="BIPOLAR", resType="dsp")["DSP"] == 0
    # a large weight memory lands in block RAM; distributed moves it to LUTs
    big = dict(MW=1024, MH=1024, SIMD=8, PE=8)
    block, dist = _mvau_res(**big, ram_style="block"), _mvau_res(**big, ram_style="distributed")
    assert block["BRAM18"] > 0 and dist["BRAM18"] < block["BRAM18"] and dist["LUT"] > block["LUT"]
    assert all(v >= 0 and isinstance(v, int) for v in block.values())
    assert set(block) == {"LUT", "BRAM18", "DSP"}


def test_ultra_ram_style_is_rejected_on_boards_without_uram():
    with pytest.raises(QnnflowError, match=r"node 'MVAU_0': ram_style='ultra' but part xc7z020clg400-1 has no UltraRAM"):
        _mvau_res(ram_style="ultra")


def test_bad_attribute_values_are_one_line_errors():
    op = node_op("MVAU", ["x", "W"], MW=8, MH=2, inputDataType="UINT2", weightDataType="INT2",
                 outputDataType="UINT2", resType="fast")
    with pytest.raises(QnnflowError, match=r"^node 'MVAU_0': resType='fast' is not allowed; use one of 'auto', 'dsp', 'lut'$"):
        op.check()
    op = node_op("MVAU", ["x", "W"], MW=8, MH=2, inputDataType="UINT99x", weightDataType="INT2", outputDataType="UINT2")
    with pytest.raises(QnnflowError, match=r"inputDataType='UINT99x' is not a qonnx DataType"):
        op.check()
    op = node_op("MVAU", ["x", "W"], MH=2, inputDataType="UINT2", weightDataType="INT2", outputDataType="UINT2")
    assert op.verify_node() == ["node 'MVAU_0': required attribute MW is not set; set it when creating the node"]


def test_thresholds_apply_only_when_present_and_activation_is_on():
    rng = np.random.default_rng(6)
    x, w = random_values(rng, "UINT2", (2, 2, 8)), random_values(rng, "INT2", (8, 4))
    t = np.sort(rng.integers(-10, 10, (4, 3)), axis=1).astype(np.float32)
    attrs = dict(MW=8, MH=4, inputDataType="UINT2", weightDataType="INT2", numInputVectors=[1, 2])
    acc = ref_mvau(x, w)
    off = node_op("MVAU", ["x", "W", "T"], outputDataType="INT8", noActivation=1, **attrs)
    np.testing.assert_array_equal(run_direct(off, {"x": x, "W": w, "T": t}), acc)
    absent = node_op("MVAU", ["x", "W"], outputDataType="INT8", **attrs)
    np.testing.assert_array_equal(run_direct(absent, {"x": x, "W": w}), acc)
    with pytest.raises(QnnflowError, match=r"input 'x' has shape \(2, 2, 8\), expected \(N, 3, 8\)"):
        run_direct(node_op("MVAU", ["x", "W"], outputDataType="INT8", **{**attrs, "numInputVectors": [1, 3]}),
                   {"x": x, "W": w})


def test_model_problems_see_the_initializers():
    x = np.zeros((1, 8), np.float32)
    node = make_node("MVAU", ["x", "W", "T"], MW=8, MH=2, inputDataType="UINT2", weightDataType="INT2",
                     outputDataType="UINT2")
    model = single_node_model(node, x, "UINT2", {"W": (np.ones((8, 2)), "INT2"), "T": (np.full((2, 3), 0.5), "FLOAT32")})
    from qonnx.custom_op.registry import getCustomOp
    assert getCustomOp(model.graph.node[0]).model_problems(model) == [
        "thresholds 'T' holds non-integer values; round them up (x >= t  <=>  x >= ceil(t))"]
