"""vgg10_1d: the RadioML 1-D CNN through the flow to cppsim, bit-exact; its windows use the 1-D unit.

The default suite builds a small variant (3 stages of 8 channels on 32 samples); the full zoo model
builds from builds/vgg10_1d_w4a4.yaml under the slow marker.
"""

import json
from pathlib import Path

import pytest
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.boards import load_board
from qnnflow.flow.config import load_config
from qnnflow.flow.evaluate import evaluate
from qnnflow.flow.runner import run_build
from qnnflow.hls.cppsim import cppsim
from qnnflow.models.export import export_brevitas, seeded_inputs
from qnnflow.models.vgg10_1d import VGG10_1D
from qnnflow.models.zoo import randomize
from qnnflow.transforms.fold import fold
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "builds" / "vgg10_1d_w4a4.yaml"
BOARD = load_board("pynq-z1")


def test_small_vgg10_1d_simulates_bit_exact_in_cpp(tmp_path):
    shape = (1, 2, 32)
    net = randomize(VGG10_1D(4, 4, stages=3, channels=8, dense=(16, 16), length=32), 0, shape, (-1.0, 1.0))
    hw, partition = to_hw(streamline(tidy(export_brevitas(net.eval(), shape))))
    folded, report = fold(hw, BOARD)
    assert report.within_budget()
    kinds = [n.op_type for n in folded.graph.node]
    assert kinds.count("ConvolutionInputGenerator1D") == 3 and "ConvolutionInputGenerator" not in kinds
    assert kinds.count("StreamingMaxPool") == 3 and kinds.count("MVAU") == 6
    # no unit holds a whole row of its feature map (the 2-D units keep KH + SH rows)
    for node in folded.graph.node:
        if node.op_type in ("ConvolutionInputGenerator1D", "StreamingMaxPool"):
            inst = getCustomOp(node)
            (memory,) = inst.memories()
            words_per_row = inst.folded_input_shape()[2] * inst.folded_input_shape()[3]
            assert memory.count * memory.depth < words_per_row, node.name
    result = cppsim(folded, seeded_inputs(shape, 4, 0, (-1.0, 1.0)), BOARD, tmp_path)
    assert result.bit_exact and not result.native, result.message()


def test_eval_names_the_missing_data_set(tmp_path):
    with pytest.raises(QnnflowError) as info:
        evaluate(load_config(BUILD), tmp_path)
    assert "radioml2018" in str(info.value) and "\n" not in str(info.value)
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_full_vgg10_1d_builds_to_cppsim_within_the_pynq_z1_budget(tmp_path):
    log = run_build(load_config(BUILD), tmp_path, to_step="cppsim", progress=lambda line: None)
    cppsim_step = next(s for s in log["steps"] if s["name"] == "cppsim")
    assert cppsim_step["verified"] and "bit-exact" in cppsim_step["checked"], cppsim_step
    folding = json.loads((tmp_path / "report" / "folding.json").read_text())
    assert folding["board"] == "Pynq-Z1" and folding["within_budget"]
