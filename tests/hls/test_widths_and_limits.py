"""Stream widths are decided in one place and the back end's limits are part of folding: the AXI
ports are the board's width, and no folding fold accepts is refused by code generation."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

from qnnflow.base.errors import QnnflowError
from qnnflow.base.streams import MAX_WORD_BITS, PortFormat
from qnnflow.flow.boards import load_board
from qnnflow.hls.codegen.project import generate
from qnnflow.hls.cppsim import cppsim
from qnnflow.hls.nodes.base import DOMAIN
from qnnflow.transforms.fold import fold


def wide_mvau(mw: int = 1024, mh: int = 4) -> ModelWrapper:
    """One INT8 x INT2 MVAU with MW inputs: SIMD=MW would read 8*MW-bit words."""
    w = np.random.default_rng(0).integers(-2, 2, (mw, mh)).astype(np.float32)
    node = helper.make_node("MVAU", ["x", "W"], ["y"], domain=DOMAIN, name="MVAU_0", MW=mw, MH=mh,
                            inputDataType="INT8", weightDataType="INT2", outputDataType="INT20", noActivation=1)
    graph = helper.make_graph([node], "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, mw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, mh])],
                              [helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel())])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="qnnflow-tests"))
    model.set_tensor_datatype("x", DataType["INT8"])
    model.set_tensor_datatype("W", DataType["INT2"])
    return model.transform(InferShapes()).transform(InferDataTypes())


def test_a_word_wider_than_the_back_end_is_illegal_folding_not_a_late_codegen_error():
    model, board = wide_mvau(), load_board("ultra96")
    op = getCustomOp(model.graph.node[0])
    op.set_nodeattr("SIMD", 1024)
    assert any(f"8192 bits wide, beyond the {MAX_WORD_BITS}-bit words" in p for p in op.problems())
    op.set_nodeattr("SIMD", 1)
    with pytest.raises(QnnflowError, match=r"^my.json: node 'MVAU_0': the input word is 8192 bits wide"):
        fold(model, board, folding={"MVAU_0": {"SIMD": 1024, "PE": 1}}, folding_source="my.json",
             max_weight_width=1 << 20)
    # the fastest folding fold finds with no cap on weight words still builds
    folded, report = fold(model, board, max_weight_width=1 << 20)
    simd = getCustomOp(folded.graph.node[0]).get_nodeattr("SIMD")
    assert simd * 8 <= MAX_WORD_BITS < 1024 * 8
    generate(folded, board)


@pytest.mark.parametrize("board_name", ["pynq-z1", "ultra96"])
def test_ports_are_the_boards_axi_width_and_simulate_bit_exact(board_name, tmp_path):
    board = load_board(board_name)
    model = wide_mvau(mw=36, mh=6)  # 36 x 8 bits = 288 bits per image: not a whole number of AXI words
    folded, _ = fold(model, board)
    project = generate(folded, board)
    assert project.input_format.axi_bits == project.output_format.axi_bits == board["axi_width"]
    assert f"QNNFLOW_IN_WORD_BITS = {board['axi_width']}," in project.files["top.h"].decode()
    x = np.random.default_rng(2).integers(-128, 128, (5, 36)).astype(np.float32)
    result = cppsim(folded, x, board, tmp_path)
    assert result.bit_exact, result.message()


def test_port_words_carry_the_image_bits_back_to_back():
    fmt = PortFormat((3,), "INT5", 8)  # 15 bits per image: elements straddle the 8-bit words
    values = np.array([[-16, 15, 3]])
    words = fmt.pack(values)
    assert words.shape == (1, 2, 1)
    bits = "".join(format(b, "08b")[::-1] for b in words.reshape(-1))  # LSB first, word 0 first
    assert bits == "00001" + "11110" + "11000" + "0"  # -16, 15, 3 in 5-bit two's complement, LSB first; padding
    np.testing.assert_array_equal(fmt.unpack(words), values)
    with pytest.raises(QnnflowError, match="not a whole number of 2-byte images"):
        fmt.unpack(b"\x00\x00\x00")
