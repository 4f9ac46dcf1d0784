"""The MobileNet zoo model builds: a small variant (two depthwise-separable blocks) in the default suite
goes export -> streamline -> to_hw bit-exact, folds on the Pynq-Z1 and simulates bit-exact in C++; the
full ``mobilenet_w4a4`` build (builds/mobilenet_w4a4.yaml, Ultra96) runs to cppsim under the slow marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from qnnflow.base.execute import compare_outputs, execute_batch
from qnnflow.flow.boards import load_board
from qnnflow.flow.config import load_config
from qnnflow.flow.runner import run_build
from qnnflow.hls.cppsim import cppsim
from qnnflow.models.export import export_source
from qnnflow.models.mobilenet import MobileNet
from qnnflow.models.source import parse_model_source
from qnnflow.models.zoo import randomize
from qnnflow.transforms.fold import fold
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw

REPO = Path(__file__).resolve().parents[2]
SMALL = "tests.models.test_mobilenet:small_mobilenet"
SMALL_SHAPE = (1, 3, 16, 16)


def small_mobilenet():
    """A model factory: MobileNet with an 8-channel stem and two blocks (stride 2, then 1) on 16x16 images,
    random weights."""
    net = MobileNet(4, 4, stem=8, blocks=((16, 2), (16, 1)))
    return randomize(net, seed=0, input_shape=SMALL_SHAPE).eval(), SMALL_SHAPE, (0.0, 1.0)


def test_small_mobilenet_builds_to_cppsim_bit_exact(tmp_path):
    exported, golden = export_source(parse_model_source(SMALL), "random", 3, 0)
    hw, partition = to_hw(streamline(tidy(exported)))
    result = compare_outputs(hw, execute_batch(hw, golden.input), golden.output)
    assert result.ok, f"max |diff| {result.max_abs_diff}"
    kinds = [n.op_type for n in hw.graph.node if n.name in partition.hardware]
    assert kinds.count("VVAU") == 2 and kinds.count("GlobalAccPool") == 1 and kinds.count("MVAU") == 4
    board = load_board("pynq-z1")
    folded, report = fold(hw, board)
    assert report.within_budget()
    sim = cppsim(folded, golden.input, board, tmp_path / "cppsim")
    assert sim.bit_exact and not sim.native, sim.message()


@pytest.mark.slow
def test_mobilenet_w4a4_builds_to_cppsim_on_its_board(tmp_path):
    config = load_config(REPO / "builds" / "mobilenet_w4a4.yaml")
    log = run_build(config, tmp_path / "out", to_step="cppsim", progress=lambda line: None)
    assert log["status"] == "ok"
    steps = {s["name"]: s for s in log["steps"]}
    assert all(steps[s]["verified"] for s in ("export", "tidy", "streamline", "to_hw", "fold", "cppsim"))
