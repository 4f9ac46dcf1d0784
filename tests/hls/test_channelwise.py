"""ChannelwiseOp (per-channel integer multiply-add): its execution equals ONNX Mul + Add run by
onnxruntime, its C++ equals its execution at several foldings, and its costed memories are the
arrays its C++ declares."""

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
from qnnflow.base.execute import execute_batch
from qnnflow.flow.boards import load_board
from qnnflow.hls.codegen.project import generate
from qnnflow.hls.cppsim import cppsim
from qnnflow.hls.nodes.base import DOMAIN

from tests.hls.test_memories_as_emitted import declared_memories

BOARD = load_board("pynq-z1")
CHANNELS, SHAPE = 8, (3, 2, 8)  # (H, W, C) of one image


def channelwise_model(params: np.ndarray, idt="INT4", odt="INT12", pdt="INT6", pe=1, ram_style="auto"):
    node = helper.make_node("ChannelwiseOp", ["x", "P"], ["y"], domain=DOMAIN, name="ChannelwiseOp_0",
                            NumChannels=CHANNELS, PE=pe, inputDataType=idt, outputDataType=odt, paramDataType=pdt,
                            numInputVectors=[1, *SHAPE[:-1]], ram_style=ram_style)
    graph = helper.make_graph([node], "channelwise", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *SHAPE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, *SHAPE])],
                              [helper.make_tensor("P", TensorProto.FLOAT, params.shape, params.ravel())])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="qnnflow-tests"))
    model.set_tensor_datatype("x", DataType[idt])
    return model.transform(InferShapes()).transform(InferDataTypes())


def onnx_mul_add(params: np.ndarray) -> ModelWrapper:
    """The same function as a plain ONNX Mul + Add (onnxruntime computes it)."""
    nodes = [helper.make_node("Mul", ["x", "A"], ["m"]), helper.make_node("Add", ["m", "B"], ["y"])]
    inits = [helper.make_tensor(n, TensorProto.FLOAT, [CHANNELS], params[:, i].ravel()) for i, n in enumerate("AB")]
    graph = helper.make_graph(nodes, "mul_add", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *SHAPE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, *SHAPE])], inits)
    return ModelWrapper(qonnx_make_model(graph, producer_name="qnnflow-tests")).transform(InferShapes())


def random_case(seed):
    rng = np.random.default_rng(seed)
    params = rng.integers(-32, 32, (CHANNELS, 2)).astype(np.float32)
    x = rng.integers(-8, 8, (5, *SHAPE)).astype(np.float32)
    return params, x


@pytest.mark.parametrize("seed", range(3))
def test_execution_equals_onnx_mul_add(seed):
    params, x = random_case(seed)
    got = execute_batch(channelwise_model(params), x)
    np.testing.assert_array_equal(got, execute_batch(onnx_mul_add(params), x))


def test_outputs_the_output_type_cannot_hold_are_refused():
    params, x = random_case(0)
    with pytest.raises(QnnflowError, match=r"node 'ChannelwiseOp_0'.*outputDataType=INT4 cannot hold"):
        execute_batch(channelwise_model(params, odt="INT4"), x)


@pytest.mark.parametrize("pe, ram_style", [(1, "auto"), (2, "distributed"), (8, "block")])
def test_cppsim_is_bit_exact_and_memories_are_the_declared_arrays(pe, ram_style, tmp_path_factory):
    params, x = random_case(pe)
    model = channelwise_model(params, pe=pe, ram_style=ram_style)
    project = generate(model, BOARD)
    (kernel,) = project.kernels
    costed = {(m.name, m.count, m.depth, m.width, m.style) for m in getCustomOp(model.graph.node[0]).memories()}
    header = project.files[f"params/{kernel.ident}.h"].decode()
    assert declared_memories(header, project.files["top.cpp"].decode(), kernel.ident) == costed
    cache = tmp_path_factory.getbasetemp() / "cppsim-channelwise"
    result = cppsim(model, x, BOARD, cache, project=project)
    assert result.bit_exact, result.message()
