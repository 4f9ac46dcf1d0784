"""Depthwise convolution in hardware: the sliding window in depthwise mode followed by a VVAU equals a
depthwise convolution computed directly, its C++ equals its execution at several foldings, and its
costed memories are the arrays its C++ declares."""

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
from qnnflow.transforms.fold import fold
from qnnflow.transforms.fold.finn_json import canonical_name
from tests.hls.test_memories_as_emitted import declared_memories

BOARD = load_board("pynq-z1")
H, W, C, KH, KW, SH = 6, 7, 4, 3, 2, 2
OH, OW = (H - KH) // SH + 1, (W - KW) // SH + 1
IDT, WDT, ODT = "UINT3", "INT4", "UINT2"


def depthwise_model(thresholds: bool = True):
    """ConvolutionInputGenerator (depthwise) -> VVAU, with thresholds or as accumulators."""
    rng = np.random.default_rng(0)
    weights = rng.integers(-8, 8, (C, KH * KW)).astype(np.float32)
    acc = "INT12"
    swg = helper.make_node("ConvolutionInputGenerator", ["x"], ["win"], domain=DOMAIN, name="SWG_0",
                           ConvKernelDim=[KH, KW], IFMChannels=C, IFMDim=[H, W], OFMDim=[OH, OW], Stride=[SH, SH],
                           inputDataType=IDT, outputDataType=IDT, depthwise=1)
    inits = [helper.make_tensor("W", TensorProto.FLOAT, weights.shape, weights.ravel())]
    inputs = ["win", "W"]
    attrs = dict(Channels=C, KernelPositions=KH * KW, Dim=[OH, OW], inputDataType=IDT, weightDataType=WDT,
                 accDataType=acc)
    if thresholds:
        t = np.sort(rng.integers(-40, 40, (C, 3)), axis=1).astype(np.float32)
        inits.append(helper.make_tensor("T", TensorProto.FLOAT, t.shape, t.ravel()))
        inputs.append("T")
        attrs.update(outputDataType=ODT)
    else:
        attrs.update(outputDataType=acc, noActivation=1)
    vvau = helper.make_node("VVAU", inputs, ["y"], domain=DOMAIN, name="VVAU_0", **attrs)
    graph = helper.make_graph([swg, vvau], "depthwise", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                        [1, H, W, C])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, OH, OW, C])], inits)
    model = ModelWrapper(qonnx_make_model(graph, producer_name="qnnflow-tests"))
    model.set_tensor_datatype("x", DataType[IDT])
    model.set_tensor_datatype("W", DataType[WDT])
    return model.transform(InferShapes()).transform(InferDataTypes())


def direct_depthwise(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """out[n, oy, ox, c] = sum over the window of x * w[c], by explicit loops over the kernel."""
    out = np.zeros((x.shape[0], OH, OW, C), np.int64)
    w = weights.reshape(C, KH, KW)
    for ky in range(KH):
        for kx in range(KW):
            patch = x[:, ky: ky + SH * (OH - 1) + 1: SH, kx: kx + SH * (OW - 1) + 1: SH, :]
            out += patch.astype(np.int64) * w[:, ky, kx].astype(np.int64)
    return out


def images(seed: int, n: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 8, (n, H, W, C)).astype(np.float32)


def test_execution_equals_a_direct_depthwise_convolution():
    model = depthwise_model(thresholds=False)
    x = images(1)
    np.testing.assert_array_equal(execute_batch(model, x), direct_depthwise(x, model.get_initializer("W")))
    thresholded = depthwise_model()
    t = thresholded.get_initializer("T")
    acc = direct_depthwise(x, thresholded.get_initializer("W"))
    np.testing.assert_array_equal(execute_batch(thresholded, x), (acc[..., None] >= t).sum(-1))


def test_several_channels_a_cycle_need_whole_windows():
    model = depthwise_model()
    op = getCustomOp(model.graph.node[1])
    op.set_nodeattr("PE", 2)
    op.set_nodeattr("SIMD", 3)
    with pytest.raises(QnnflowError, match=r"node 'VVAU_0': PE=2 with SIMD=3.*use SIMD=6 or PE=1"):
        op.check()


FOLDINGS = [  # (sliding window SIMD, VVAU PE, VVAU SIMD); two in the default suite
    (1, 1, 1), (4, 4, 6), pytest.param(2, 1, 3, marks=pytest.mark.slow), pytest.param(2, 2, 6, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("swg_simd,pe,simd", FOLDINGS)
def test_cppsim_is_bit_exact_and_memories_are_the_declared_arrays(swg_simd, pe, simd, tmp_path_factory):
    model, _ = fold(depthwise_model(thresholds=(pe != 2)), BOARD, folding={
        "SWG_0": {"SIMD": swg_simd}, "VVAU_0": {"PE": pe, "SIMD": simd, "resType": "lut"}})
    project = generate(model, BOARD)
    nodes = {n.name: n for n in model.graph.node}
    for kernel in project.kernels:
        costed = {(m.name, m.count, m.depth, m.width, m.style) for m in getCustomOp(nodes[kernel.node]).memories()}
        header = project.files[f"params/{kernel.ident}.h"].decode()
        assert declared_memories(header, project.files["top.cpp"].decode(), kernel.ident) == costed, kernel.node
    result = cppsim(model, images(swg_simd + pe), BOARD, tmp_path_factory.getbasetemp() / "cppsim-vvau",
                    project=project)
    assert result.bit_exact and not result.native, result.message()


def test_cost_follows_the_folding_and_multi_bit_products_take_dsps():
    op = getCustomOp(depthwise_model().graph.node[1])
    costs = {}
    for pe, simd in [(1, 1), (1, 3), (1, 6), (2, 6), (4, 6)]:
        op.set_nodeattr("PE", pe)
        op.set_nodeattr("SIMD", simd)
        costs[pe * simd] = (op.cycles(), op.resources(BOARD))
    lanes = sorted(costs)
    assert [costs[n][0] * n for n in lanes] == [costs[1][0]] * len(lanes)  # cycles scale as 1 / (PE * SIMD)
    assert all(costs[a][1]["LUT"] < costs[b][1]["LUT"] for a, b in zip(lanes, lanes[1:]))
    assert all(c[1]["DSP"] == 0 for c in costs.values())  # 3 x 4-bit products stay in fabric under auto
    op.set_nodeattr("resType", "dsp")
    assert op.resources(BOARD)["DSP"] == 4 * 6 and op.resources(BOARD)["LUT"] < costs[24][1]["LUT"]


def test_finn_names_map_to_the_vvau():
    assert canonical_name("VectorVectorActivation_hls_2") == canonical_name("Vector_Vector_Activation_Batch_2") \
        == "VVAU_2"
