"""cppsim's native-integer fast path (native=True, -DQNNFLOW_NATIVE) stays only because it gives the
same output words as the ap_int code Vitis HLS compiles: both are compared with the Python
execution, bit for bit, on every zoo model at its fold for the Ultra96."""

from __future__ import annotations

import numpy as np
import pytest

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.boards import load_board
from qnnflow.hls.cppsim import cppsim
from qnnflow.models.export import export_source
from qnnflow.models.source import parse_model_source
from qnnflow.transforms.fold import fold
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw


@pytest.mark.parametrize("name", ["tfc_w1a1", "tfc_w2a2"] + [
    pytest.param(name, marks=pytest.mark.slow)
    for name in ("tfc_w1a2", "lfc_w1a1", "lfc_w1a2", "lfc_w2a2", "cnv_w1a1", "cnv_w1a2", "cnv_w2a2", "cnv_w4a4",
                 "cnv_w8a8")
])
def test_native_and_ap_int_paths_give_the_same_words(name, cppsim_cache):
    board = load_board("ultra96")
    exported, golden = export_source(parse_model_source(name), "random", 4, 0)
    model, _ = to_hw(streamline(tidy(exported)))
    try:
        model, _ = fold(model, board)
    except QnnflowError:  # fits no budget (cnv_w8a8): the unfolded design
        pass
    inputs = np.concatenate([golden.input, np.random.default_rng(1).random(golden.input.shape)])
    exact = cppsim(model, inputs, board, cppsim_cache)
    native = cppsim(model, inputs, board, cppsim_cache, native=True)
    assert exact.bit_exact and not exact.native, exact.message()
    assert native.bit_exact and native.native, native.message()
