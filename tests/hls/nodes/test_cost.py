"""The pure resource formulas."""

from __future__ import annotations

import pytest

from tests.hls.nodes.harness import board, node_op
from qnnflow.base.errors import QnnflowError
from qnnflow.hls.nodes import cost


@pytest.mark.parametrize("depth, width, want", [
    (512, 36, 1), (1024, 18, 1), (2048, 9, 1), (4096, 4, 1), (8192, 2, 1), (16384, 1, 1),
    (1024, 36, 2),  # two 1Kx18 or two 512x36
    (100, 72, 2), (1, 1, 1), (0, 8, 0), (8, 0, 0),
    (2048, 10, 2),  # 10 bits don't fit a 2Kx9: two of them, or two 1Kx18
    (4096, 32, 8),
])
def test_bram18_count(depth, width, want):
    assert cost.bram18_count(depth, width) == want


def test_memory_styles():
    assert cost.memory(128, 40, "auto") == {"LUT": 2 * 40, "BRAM18": 0}
    assert cost.memory(129, 40, "auto") == {"LUT": 0, "BRAM18": cost.bram18_count(129, 40)}
    assert cost.memory(10, 40, "block") == {"LUT": 0, "BRAM18": 2}
    assert cost.memory(1000, 4, "distributed") == {"LUT": 16 * 4, "BRAM18": 0}
    assert cost.srl_luts(33, 3) == 6 and cost.lutram_luts(64, 5) == 5


@pytest.mark.parametrize("pe", [1, 4, 16])
def test_a_node_pays_for_the_stream_it_writes(pe):
    """Depth-2 output FIFO: one SRL per bit of PE x 2-bit words, plus two 2-bit address counters."""
    mvau = node_op("MVAU", ["x", "W", "T"], MW=64, MH=16, SIMD=8, PE=pe, inputDataType="UINT2",
                   weightDataType="INT2", outputDataType="UINT2")
    own, total = mvau.resources(board("pynq-z1")), mvau.resources_with_stream(board("pynq-z1"))
    assert total["LUT"] - own["LUT"] == pe * 2 + 2 * 2
    assert (total["BRAM18"], total["DSP"]) == (own["BRAM18"], own["DSP"])
    fifo = node_op("StreamingFIFO", depth=16, folded_shape=[1, 16 // pe, pe], dataType="UINT2")
    assert fifo.resources_with_stream(board("pynq-z1")) == fifo.resources(board("pynq-z1"))  # it is the stream


def test_multipliers_by_family():
    assert cost.part_family(board("pynq-z1")) == "7series"
    assert cost.part_family(board("ultra96")) == cost.part_family(board("ultra96-v2")) == "ultrascale+"
    assert cost.dsp_multiplier(8, True, 8, True, "7series") == 1
    assert cost.dsp_multiplier(26, True, 18, True, "7series") == 2  # 26 > 25 bits
    assert cost.dsp_multiplier(26, True, 18, True, "ultrascale+") == 1  # 27x18 port
    assert cost.dsp_multiplier(18, False, 8, True, "7series") == 1  # 19-bit unsigned-as-signed on the 25-bit port
    assert cost.lut_multiplier(1, 8) == 8 and cost.lut_multiplier(2, 2) == 4
    assert cost.lut_multiplier(8, 8) == (2 * 3 - 1) * 16
    assert cost.lut_multiplier(1, 1) < cost.lut_multiplier(4, 4) < cost.lut_multiplier(8, 8)


def test_unknown_part_and_missing_uram():
    with pytest.raises(QnnflowError, match="unknown FPGA family"):
        cost.part_family({"part": "ep4ce22"})
    with pytest.raises(QnnflowError, match="^node 'n': ram_style='ultra' but part xczu3eg-sbva484-1-e has no UltraRAM"):
        cost.uram_check("ultra", board("ultra96"), "n")
    cost.uram_check("ultra", {"part": "xczu7ev", "resources": {"URAM": 96}}, "n")
