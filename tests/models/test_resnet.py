"""ResNet-8 (models/resnet.py) builds to hardware: three residual stages with integer adds, a global
average pool and the classifier, through fold and cppsim bit-exact.  The default suite builds a small
variant (4-8-8 channels on 8x8 images, like tfc in size); the zoo's resnet8_w4a4 runs with -m slow."""

from __future__ import annotations

import pytest

from qnnflow.base.execute import compare_outputs, execute_batch
from qnnflow.flow.boards import load_board
from qnnflow.hls.cppsim import cppsim
from qnnflow.models.export import export_brevitas, seeded_inputs
from qnnflow.models.resnet import ResNet
from qnnflow.models.zoo import build_model, randomize
from qnnflow.transforms.fold import fold
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw


def build_to_cppsim(net, input_shape, board, cache, images=3):
    """export -> streamline -> to_hw -> fold -> cppsim; returns (hw graph, fold report, cppsim result), after
    checking that the folded graph reproduces the export."""
    exported = tidy(export_brevitas(net, input_shape))
    hw, partition = to_hw(streamline(exported))
    assert {n.op_type for n in hw.graph.node if n.name in partition.tail} <= {"Mul", "Add"}  # the float tail
    folded, report = fold(hw, board)
    x = seeded_inputs(input_shape, images, 0, (0.0, 1.0))
    result = compare_outputs(folded, execute_batch(folded, x), execute_batch(exported, x))
    assert result.ok, f"max |diff| {result.max_abs_diff}"
    return hw, report, cppsim(folded, x, board, cache)


def _kinds(hw):
    return [n.op_type for n in hw.graph.node]


def test_a_small_resnet_builds_to_cppsim_bit_exact(tmp_path_factory):
    net = randomize(ResNet(4, 4, stages=(4, 8, 8)), seed=0, input_shape=(1, 3, 8, 8)).eval()
    hw, report, sim = build_to_cppsim(net, (1, 3, 8, 8), load_board("pynq-z1"), tmp_path_factory.mktemp("resnet"))
    kinds = _kinds(hw)
    assert kinds.count("AddStreams") == 3 and kinds.count("DuplicateStreams") == 3 and "GlobalAccPool" in kinds
    assert report.within_budget()
    assert sim.bit_exact and not sim.native, sim.message()


@pytest.mark.slow
def test_resnet8_w4a4_builds_on_the_pynq_z1_to_cppsim_bit_exact(tmp_path_factory):
    hw, report, sim = build_to_cppsim(build_model("resnet8_w4a4"), (1, 3, 32, 32), load_board("pynq-z1"),
                                      tmp_path_factory.mktemp("resnet8"), images=2)
    assert _kinds(hw).count("AddStreams") == 3
    assert report.within_budget(), report.totals
    assert sim.bit_exact and not sim.native, sim.message()
