"""FIFO sizing from measured occupancy: a converter making a word every other cycle feeds an MVAU that reads
its vector in a burst; the sized FIFO recovers the throughput of whole-image FIFOs."""

from __future__ import annotations

import numpy as np

from qnnflow.hls.fifo_sizing import size_fifos
from qnnflow.hls.rtlsim import rtlsim
from tests.hls.backend.helpers import BOARD, chain_model, model_inputs, random_ints


def test_sized_fifo_restores_the_deep_throughput(tmp_path, rtl_cache):
    rng = np.random.default_rng(5)
    mvau = dict(MW=64, MH=4, SIMD=8, PE=2, inputDataType="BINARY", weightDataType="BINARY", outputDataType="BINARY",
                accDataType="UINT7", binaryXnorMode=1)
    model = chain_model([
        ("StreamingDataWidthConverter", dict(inWidth=4, outWidth=8, shape=[1, 64], dataType="BINARY"), {}),
        ("MVAU", mvau, {1: random_ints(rng, "BINARY", (64, 4)), 2: np.full((4, 1), 32, np.float32)}),
    ])
    x = model_inputs(model, rng, 4)
    plain = rtlsim(model, x, BOARD, rtl_cache, tmp_path / "plain", min_images=24)
    sized_model, report = size_fifos(model, BOARD, x, rtl_cache, tmp_path / "sizing")
    fifo = report["fifos"]["MVAU_1"]
    assert fifo["inserted"] and fifo["depth"] >= fifo["peak_occupancy"] > 2
    assert not report["fifos"]["StreamingDataWidthConverter_0"]["inserted"]
    assert report["cycles_per_image"]["sized"] == report["cycles_per_image"]["deep"]
    assert report["cycles_per_image"]["sized"] < plain.performance["cycles_per_image"]
    assert [n.op_type for n in sized_model.graph.node] == ["StreamingDataWidthConverter", "StreamingFIFO", "MVAU"]
    again = rtlsim(sized_model, x, BOARD, rtl_cache, tmp_path / "again", min_images=24)
    assert again.bit_exact and again.performance["cycles_per_image"] == report["cycles_per_image"]["sized"]
