"""Thresholding, LabelSelect, StreamingFIFO and StreamingDataWidthConverter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.hls.nodes.harness import (INT_TYPES, board, fitting_type, make_node, node_op, random_values, run_direct, run_model,
                         single_node_model)
from qnnflow.base.errors import QnnflowError
from qnnflow.hls.nodes.base import Memory


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([1, 2, 4]), st.integers(1, 4), st.sampled_from([[1], [1, 3], [1, 2, 2]]),
       st.sampled_from([1, 3, 15, 25]), st.sampled_from(INT_TYPES), st.integers(-3, 3), st.integers(1, 3),
       st.integers(0, 2**32 - 1))
def test_thresholding_matches_comparisons(pe, c_fold, vecs, n_thr, idt, act, batch, seed):
    rng = np.random.default_rng(seed)
    c = pe * c_fold
    x = random_values(rng, idt, (batch, *vecs[1:], c))
    t = rng.integers(-130, 130, (c, n_thr)).astype(np.float32)  # unsorted rows, values beyond the input range
    want = act + np.stack([(x[..., ch, None] >= t[ch]).sum(-1) for ch in range(c)], axis=-1)
    op = node_op("Thresholding", ["x", "T"], NumChannels=c, PE=pe, numInputVectors=vecs, inputDataType=idt,
                 outputDataType=fitting_type(min(act, 0), act + n_thr), ActVal=act)
    np.testing.assert_array_equal(run_direct(op, {"x": x, "T": t}), want)


def test_thresholding_model_cycles_and_errors():
    rng = np.random.default_rng(2)
    x = random_values(rng, "INT6", (4, 3, 3, 8))
    t = np.sort(rng.integers(-32, 32, (8, 3)), axis=1).astype(np.float32)
    node = make_node("Thresholding", ["x", "T"], NumChannels=8, PE=4, numInputVectors=[1, 3, 3], inputDataType="INT6",
                     outputDataType="UINT2")
    model = single_node_model(node, x, "INT6", {"T": (t, "INT7")})
    assert model.get_tensor_datatype("y").name == "UINT2"
    np.testing.assert_array_equal(run_model(model, x), (x[..., None] >= t).sum(-1))
    op = node_op("Thresholding", ["x", "T"], NumChannels=8, PE=4, numInputVectors=[1, 3, 3], inputDataType="INT6",
                 outputDataType="UINT2")
    assert op.cycles() == 3 * 3 * (8 // 4) and op.model_problems(model) == []
    # per PE, C/PE = 2 words of 3 slots (UINT2 outputs), each an int8_t holding INT6's [-32, 31] and one past it
    assert op.memories() == [Memory("thresholds", 4, 2, 3 * 8, "auto")]
    with pytest.raises(QnnflowError, match=r"^node 'Thresholding_0': PE=3 does not divide NumChannels=8; legal PE values: 1, 2, 4, 8$"):
        node_op("Thresholding", ["x", "T"], NumChannels=8, PE=3, inputDataType="INT6", outputDataType="UINT2").cycles()
    with pytest.raises(QnnflowError, match=r"outputs span \[0, 4\] .* outputDataType=UINT2 cannot hold"):
        run_direct(op, {"x": x, "T": np.zeros((8, 4), np.float32)})
    with pytest.raises(QnnflowError, match=r"thresholds 'T' holds non-integer values"):
        run_direct(op, {"x": x, "T": t + 0.5})
    luts = [node_op("Thresholding", ["x", "T"], NumChannels=64, PE=pe, inputDataType="INT8", outputDataType="UINT4")
            .resources(board("ultra96"))["LUT"] for pe in (1, 2, 8, 32)]
    assert luts == sorted(luts)


def ref_topk(x, k):
    """Per row: sort (value descending, index ascending) and keep k indices."""
    return np.array([[i for _, i in sorted(((-v, i) for i, v in enumerate(row)))[:k]] for row in x.reshape(-1, x.shape[-1])]).reshape(
        *x.shape[:-1], k)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([1, 2, 5]), st.integers(1, 6), st.integers(1, 4), st.sampled_from(INT_TYPES),
       st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_label_select_top_k_with_ties(pe, l_fold, k, dt, batch, seed):
    labels = pe * l_fold
    k = min(k, labels)
    x = random_values(np.random.default_rng(seed), dt, (batch, labels))  # narrow types give many ties
    op = node_op("LabelSelect", Labels=labels, PE=pe, K=k, inputDataType=dt)
    np.testing.assert_array_equal(run_direct(op, {"x": x}), ref_topk(x, k))


def test_label_select_infers_smallest_index_type_and_shape():
    x = np.array([[3, 9, 9, 1, 0, 2, 9, 5, 5, 4]] * 2, np.float32)
    model = single_node_model(make_node("LabelSelect", Labels=10, K=3, inputDataType="UINT4"), x, "UINT4")
    assert model.get_tensor_datatype("y").name == "UINT4" and model.get_tensor_shape("y") == [2, 3]
    np.testing.assert_array_equal(run_model(model, x), [[1, 2, 6]] * 2)
    node = model.graph.node[0]
    assert any(a.name == "outputDataType" and a.s == b"UINT4" for a in node.attribute)
    op = node_op("LabelSelect", Labels=10, K=3, inputDataType="UINT4", outputDataType="UINT2")
    with pytest.raises(QnnflowError, match=r"outputDataType=UINT2 cannot hold label indices 0..9; use UINT4 or wider"):
        op.check()
    assert node_op("LabelSelect", Labels=10, PE=5, K=1, inputDataType="UINT4").cycles() == 10 // 5 + 1


def test_fifo_is_identity_and_checks_its_shape():
    rng = np.random.default_rng(0)
    x = random_values(rng, "INT4", (3, 4, 4, 8))
    node = make_node("StreamingFIFO", depth=64, folded_shape=[1, 4, 4, 2, 4], dataType="INT4")
    model = single_node_model(node, x, "INT4")
    assert model.get_tensor_shape("y") == [3, 4, 4, 8] and model.get_tensor_datatype("y").name == "INT4"
    np.testing.assert_array_equal(run_model(model, x), x)
    op = node_op("StreamingFIFO", depth=64, folded_shape=[1, 4, 4, 2, 4], dataType="INT4")
    assert op.instream_width() == op.outstream_width() == 16 and op.cycles() == 4 * 4 * 2
    assert op.normal_input_shape() == (1, 4, 4, 8)
    with pytest.raises(QnnflowError, match=r"^node 'StreamingFIFO_0': input 'x' has shape \(3, 4, 4, 4\), but folded_shape="):
        run_direct(op, {"x": x[..., :4]})
    with pytest.raises(QnnflowError, match=r"input 'x' holds values in \[9, 9\], outside INT4"):
        run_direct(op, {"x": np.full_like(x, 9)})


def _fifo(depth, width_lanes=8, style="auto", dt="UINT4"):
    return node_op("StreamingFIFO", depth=depth, folded_shape=[1, 100, width_lanes], dataType=dt, ram_style=style)


def test_fifo_resources_by_depth():
    b = board("pynq-z1")
    assert _fifo(2).storage() == "srl" and _fifo(100).storage() == "lutram" and _fifo(4096).storage() == "bram"
    assert _fifo(4096, style="distributed").storage() == "lutram" and _fifo(16, style="block").storage() == "bram"
    deep = _fifo(4096).resources(b)
    # 4096 x 32 bits: 4K x 4 shape -> 8 RAMB18s (the cheapest tiling)
    assert deep["BRAM18"] == 8
    assert _fifo(32).resources(b)["LUT"] == 32 + 2 * 6  # one SRL32 per bit plus two 6-bit counters
    sizes = [_fifo(d).resources(b) for d in (2, 16, 32, 64, 128)]
    assert [s["LUT"] for s in sizes] == sorted(s["LUT"] for s in sizes)
    assert all(s["BRAM18"] == 0 for s in sizes)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["BINARY", "UINT2", "INT3", "INT8"]), st.integers(1, 3), st.data())
def test_dwc_is_identity_for_every_legal_width_pair(dt, batch, data):
    bits = int(dt[-1]) if dt != "BINARY" else 1
    c = 12
    legal = [d * bits for d in range(1, c + 1) if c % d == 0]
    inw, outw = data.draw(st.sampled_from(legal)), data.draw(st.sampled_from(legal))
    x = random_values(np.random.default_rng(batch), dt, (batch, 3, c))
    op = node_op("StreamingDataWidthConverter", inWidth=inw, outWidth=outw, shape=[1, 3, c], dataType=dt)
    np.testing.assert_array_equal(run_direct(op, {"x": x}), x)
    # reading and writing overlap: about as many cycles as the side with more words, never fewer
    words = max(3 * c * bits // inw, 3 * c * bits // outw)
    assert words <= op.cycles() <= words + 1
    assert op.folded_input_shape() == (1, 3, c * bits // inw, inw // bits)
    assert op.folded_output_shape() == (1, 3, c * bits // outw, outw // bits)


def test_dwc_widths_must_split_whole_elements():
    op = node_op("StreamingDataWidthConverter", inWidth=6, outWidth=8, shape=[1, 8, 12], dataType="UINT4")
    with pytest.raises(QnnflowError, match=r"^node 'StreamingDataWidthConverter_0': inWidth=6 must be a multiple of the 4-bit "
                                           r"element that divides the 48-bit last axis; legal inWidth values: 4, 8, 12, 16, 24, 48$"):
        op.check()
    # the kernel's shift register holds inWidth + outWidth bits, an ap_uint of at most 4096
    wide = node_op("StreamingDataWidthConverter", inWidth=3000, outWidth=1500, shape=[1, 3000], dataType="BINARY")
    with pytest.raises(QnnflowError, match=r"the converter's buffer \(inWidth \+ outWidth\) is 4500 bits, over the "
                                           r"4096-bit words"):
        wide.check()
    x = np.zeros((2, 8, 12), np.float32)
    model = single_node_model(make_node("StreamingDataWidthConverter", inWidth=12, outWidth=16, shape=[1, 8, 12],
                                        dataType="UINT4"), x, "UINT4")
    np.testing.assert_array_equal(run_model(model, x), x)


def test_dwc_resources_grow_with_the_widths():
    b = board("ultra96")

    def luts(inw, outw):
        op = node_op("StreamingDataWidthConverter", inWidth=inw, outWidth=outw, shape=[1, 8, 48], dataType="UINT4")
        res = op.resources(b)
        assert res["BRAM18"] == res["DSP"] == 0  # a shift register in fabric
        return res["LUT"]

    for narrow in (4, 8, 12):  # merging k narrow words into one wide word, and splitting it back
        wide = [narrow * k for k in (2, 4, 8, 16) if 48 * 4 % (narrow * k) == 0]
        merges, splits = [luts(narrow, w) for w in wide], [luts(w, narrow) for w in wide]
        assert merges == sorted(merges) and splits == sorted(splits) and len(set(merges)) == len(merges)
    assert 0 < luts(8, 16) < luts(8, 192)
