"""GlobalAccPool (global sum pool): its execution equals ONNX ReduceSum run by onnxruntime, its C++
equals its execution at several foldings, and its costed memories are the arrays its C++ declares."""

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
SHAPE = (3, 5, 8)  # (H, W, C) of one image


def pool_model(idt="INT4", odt="INT8", pe=1):
    node = helper.make_node("GlobalAccPool", ["x"], ["y"], domain=DOMAIN, name="GlobalAccPool_0", NumChannels=SHAPE[2],
                            PE=pe, inputDataType=idt, outputDataType=odt, numInputVectors=[1, *SHAPE[:2]])
    graph = helper.make_graph([node], "sum_pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *SHAPE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, SHAPE[2]])])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="qnnflow-tests"))
    model.set_tensor_datatype("x", DataType[idt])
    return model.transform(InferShapes()).transform(InferDataTypes())


def onnx_reduce_sum() -> ModelWrapper:
    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)
    graph = helper.make_graph([node], "reduce_sum", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *SHAPE])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, SHAPE[2]])],
                              [helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])])
    return ModelWrapper(qonnx_make_model(graph, producer_name="qnnflow-tests", opset_imports=[helper.make_opsetid("", 13)]))


def inputs(seed, lo=-8, hi=8):
    return np.random.default_rng(seed).integers(lo, hi, (4, *SHAPE)).astype(np.float32)


@pytest.mark.parametrize("seed", range(3))
def test_execution_equals_onnx_reduce_sum(seed):
    x = inputs(seed)
    np.testing.assert_array_equal(execute_batch(pool_model(), x), execute_batch(onnx_reduce_sum(), x))


def test_an_output_type_too_narrow_for_the_sums_is_refused():
    with pytest.raises(QnnflowError, match=r"node 'GlobalAccPool_0'.*outputDataType=INT6 cannot hold"):
        execute_batch(pool_model(odt="INT6"), inputs(0))


@pytest.mark.parametrize("pe", [1, 2, 8])
def test_cppsim_is_bit_exact_and_memories_are_the_declared_arrays(pe, tmp_path_factory):
    model = pool_model(idt="UINT4", odt="UINT8", pe=pe)
    x = inputs(pe, 0, 16)
    project = generate(model, BOARD)
    (kernel,) = project.kernels
    costed = {(m.name, m.count, m.depth, m.width, m.style) for m in getCustomOp(model.graph.node[0]).memories()}
    header = project.files[f"params/{kernel.ident}.h"].decode()
    assert declared_memories(header, project.files["top.cpp"].decode(), kernel.ident) == costed
    result = cppsim(model, x, BOARD, tmp_path_factory.getbasetemp() / "cppsim-global-acc-pool", project=project)
    assert result.bit_exact, result.message()
