"""base/hostops.py (the host head and tail, run by graph execution and by the board driver)
against qonnx's and onnxruntime's own execution of the same nodes."""

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import qonnx_make_model

from qnnflow.base.execute import host_node
from qnnflow.base.hostops import HostNode, run_node

QONNX = "qonnx.custom_op.general"
RNG = np.random.default_rng(7)


def _both(node, ctx):
    """(qonnx's output, hostops') for ``node`` on the arrays in ctx."""
    theirs = dict(ctx)
    getCustomOp(node).execute_node(theirs, None)
    ours = dict(ctx)
    run_node(host_node(node), ours)
    return theirs[node.output[0]], ours[node.output[0]]


@pytest.mark.parametrize("signed, narrow, bits, mode", [
    (1, 0, 8, "ROUND"), (0, 0, 8, "ROUND"), (1, 1, 4, "FLOOR"), (0, 1, 3, "CEIL"), (1, 0, 1, "ROUND"),
    (1, 0, 5, "HALF_UP"), (1, 0, 6, "DOWN"), (0, 0, 6, "UP"), (1, 0, 7, "HALF_DOWN"),
])
def test_quant_matches_qonnx(signed, narrow, bits, mode):
    node = helper.make_node("Quant", ["x", "s", "z", "b"], ["y"], domain=QONNX, signed=signed, narrow=narrow,
                            rounding_mode=mode)
    x = (RNG.standard_normal((5, 3, 4, 4)) * 40).astype(np.float32)
    x[0, 0, 0, :3] = [0.5, 1.5, -2.5]  # ties
    ctx = {"x": x, "s": np.float32(0.25), "z": np.float32(0.0), "b": np.float32(bits)}
    theirs, ours = _both(node, ctx)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("layout, shape", [("", (6, 4, 3, 3)), ("NHWC", (6, 3, 3, 4)), ("", (6, 4))])
def test_multithreshold_matches_qonnx(layout, shape):
    attrs = {"out_dtype": "UINT2", "out_scale": 2.0, "out_bias": -1.0}
    if layout:
        attrs["data_layout"] = layout
    node = helper.make_node("MultiThreshold", ["x", "t"], ["y"], domain=QONNX, **attrs)
    x = np.round(RNG.standard_normal(shape) * 4).astype(np.float32)
    thresholds = np.sort(np.round(RNG.standard_normal((4, 3)) * 3), axis=1).astype(np.float32)
    theirs, ours = _both(node, {"x": x, "t": thresholds})
    np.testing.assert_array_equal(ours, theirs)


def test_bipolar_quant_matches_qonnx():
    node = helper.make_node("BipolarQuant", ["x", "s"], ["y"], domain=QONNX)
    x = RNG.standard_normal((4, 10)).astype(np.float32)
    x[0, 0] = 0.0
    theirs, ours = _both(node, {"x": x, "s": np.float32(0.5)})
    np.testing.assert_array_equal(ours, theirs)


def test_topk_matches_onnxruntime_including_ties():
    scores = np.array([[1.0, 3.0, 3.0, 0.5, 2.0]], np.float32)
    graph = helper.make_graph(
        [helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=-1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, [1, 2]),
         helper.make_tensor_value_info("indices", TensorProto.INT64, [1, 2])],
        [helper.make_tensor("k", TensorProto.INT64, [1], [2])])
    model = ModelWrapper(qonnx_make_model(graph))
    theirs = execute_onnx(model, {"x": scores})
    ctx = {"x": scores, "k": np.array([2], np.int64)}
    run_node(HostNode("TopK", ["x", "k"], ["values", "indices"], {"axis": -1}), ctx)
    np.testing.assert_array_equal(ctx["indices"], theirs["indices"])
    np.testing.assert_array_equal(ctx["values"], theirs["values"])


def test_unknown_host_ops_are_refused():
    with pytest.raises(ValueError, match="'Conv' cannot run on the host"):
        run_node(HostNode("Conv", ["x"], ["y"]), {"x": np.zeros(1)})
    with pytest.raises(ValueError, match="rounding_mode 'STOCHASTIC'"):
        run_node(HostNode("Quant", ["x", "s", "z", "b"], ["y"], {"rounding_mode": "STOCHASTIC"}),
                 {"x": np.zeros(2, np.float32), "s": np.float32(1), "z": np.float32(0), "b": np.float32(4)})
