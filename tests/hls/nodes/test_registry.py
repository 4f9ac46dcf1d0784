"""The node library as qonnx sees it: registry lookup, shape and datatype inference, common interface."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.registry import get_ops_in_domain, getCustomOp, is_custom_op

import qnnflow.hls.nodes as nodes
from tests.hls.nodes.harness import DOMAIN, board, make_node, random_values, single_node_model
from qnnflow.base.errors import QnnflowError
from qnnflow.base.values import to_carrier
from qnnflow.hls.nodes.base import HWNode

# one legal instance of every node kind, with its input shape (batch 2) and DataType
EXAMPLES = {
    "MVAU": (dict(inputs=["x", "W"], MW=6, MH=4, SIMD=3, PE=2, inputDataType="UINT2", weightDataType="INT2",
                  outputDataType="INT8", noActivation=1, accDataType="INT8"), (2, 6), "UINT2"),
    "VVAU": (dict(inputs=["x", "V"], Channels=2, KernelPositions=3, Dim=[1, 2], PE=2, SIMD=3, inputDataType="UINT2",
                  weightDataType="INT2", outputDataType="INT8", noActivation=1, accDataType="INT8"), (2, 1, 2, 6),
             "UINT2"),
    "ConvolutionInputGenerator": (dict(ConvKernelDim=[2, 2], IFMChannels=2, IFMDim=[3, 3], OFMDim=[2, 2],
                                       inputDataType="INT4", outputDataType="INT4"), (2, 3, 3, 2), "INT4"),
    "ConvolutionInputGenerator1D": (dict(ConvKernelDim=[1, 3], IFMChannels=2, IFMDim=[1, 5], OFMDim=[1, 2],
                                         Stride=[1, 2], inputDataType="INT4", outputDataType="INT4"), (2, 1, 5, 2), "INT4"),
    "FMPadding": (dict(ImgDim=[3, 3], Padding=[1, 1, 1, 1], NumChannels=2, inputDataType="INT4"), (2, 3, 3, 2), "INT4"),
    "FMPaddingPixel": (dict(ImgDim=[2, 3], Stride=[2, 3], NumChannels=2, inputDataType="INT4"), (2, 2, 3, 2), "INT4"),
    "StreamingMaxPool": (dict(ImgDim=[4, 4], PoolDim=[2, 2], NumChannels=2, dataType="INT4"), (2, 4, 4, 2), "INT4"),
    "SumPool": (dict(ImgDim=[4, 4], PoolDim=[2, 2], NumChannels=2, inputDataType="INT4", outputDataType="INT6"),
                (2, 4, 4, 2), "INT4"),
    "Thresholding": (dict(inputs=["x", "T"], NumChannels=2, inputDataType="INT4", outputDataType="UINT2"), (2, 2), "INT4"),
    "ChannelwiseOp": (dict(inputs=["x", "P"], NumChannels=2, inputDataType="INT4", outputDataType="INT8",
                           paramDataType="INT3"), (2, 2), "INT4"),
    "GlobalAccPool": (dict(NumChannels=2, inputDataType="INT4", outputDataType="INT8", numInputVectors=[2, 3, 2]),
                      (2, 3, 2, 2), "INT4"),
    "UpsampleNearestNeighbour": (dict(ImgDim=[2, 3], Factor=[2, 2], NumChannels=2, inputDataType="INT4"),
                                 (2, 2, 3, 2), "INT4"),
    "DuplicateStreams": (dict(outputs=["y1"], NumChannels=2, inputDataType="INT4", numInputVectors=[2, 3]), (2, 3, 2),
                         "INT4"),
    "AddStreams": (dict(inputs=["x", "x"], NumChannels=2, inputDataType="INT4", input1DataType="INT4",
                        outputDataType="INT5", numInputVectors=[2]), (2, 2), "INT4"),
    "StreamingConcat": (dict(inputs=["x", "x"], ChannelsPerStream=[2, 2], NumChannels=4, inputDataType="INT4",
                             input1DataType="INT4", outputDataType="INT4", numInputVectors=[2]), (2, 2), "INT4"),
    "LabelSelect": (dict(Labels=5, K=2, inputDataType="INT4"), (2, 5), "INT4"),
    "StreamingFIFO": (dict(depth=4, folded_shape=[1, 2, 1, 2], dataType="INT4"), (2, 2, 2), "INT4"),
    "StreamingDataWidthConverter": (dict(inWidth=4, outWidth=8, shape=[1, 2, 2], dataType="INT4"), (2, 2, 2), "INT4"),
}
INITS = {"W": (np.ones((6, 4)), "INT2"), "V": (np.array([[1, -2, 0], [-1, 1, 1]]), "INT2"), "T": (np.array([[0, 1, 2], [-1, 0, 1]]), "INT4"),
         "P": (np.array([[-1, 3], [2, -4]]), "INT3")}


def example(op_type):
    attrs, shape, dt = EXAMPLES[op_type]
    attrs = dict(attrs)
    inputs, more_outputs = attrs.pop("inputs", ["x"]), attrs.pop("outputs", [])
    node = make_node(op_type, inputs, **attrs)
    node.output.extend(more_outputs)  # a fork's second output
    return node, shape, dt, {k: INITS[k] for k in inputs[1:] if k in INITS}


def test_every_exported_class_is_found_by_the_qonnx_registry():
    assert set(nodes.__all__) == set(EXAMPLES)
    # besides the built-ins, only kinds added through register_node (another test file's, when one ran
    # in this process first)
    assert {name for name, _ in get_ops_in_domain(DOMAIN)} == set(EXAMPLES) | set(nodes.node_kinds())
    for op_type in nodes.__all__:
        assert is_custom_op(DOMAIN, op_type)
        node, *_ = example(op_type)
        op = getCustomOp(node)
        assert type(op) is getattr(nodes, op_type) and isinstance(op, HWNode)
        assert op.verify_node() == [] and op.problems() == []


@pytest.mark.parametrize("op_type", sorted(EXAMPLES))
def test_single_node_model_infers_shapes_types_and_executes(op_type):
    node, shape, dt, inits = example(op_type)
    x = random_values(np.random.default_rng(0), dt, shape)
    model = single_node_model(node, x, dt, inits)
    op = getCustomOp(model.graph.node[0])
    out_shape = model.get_tensor_shape("y")
    assert out_shape[0] == 2 and tuple(out_shape[1:]) == op.normal_output_shape()[1:]
    assert model.get_tensor_datatype("y") == op.output_datatype()
    from tests.hls.nodes.harness import run_model
    y = run_model(model, x)
    assert y.shape == tuple(out_shape) and y.dtype == np.float32
    assert DataType[op.output_datatype().name].allowed(y).all()


@pytest.mark.parametrize("op_type", sorted(EXAMPLES))
def test_common_hardware_interface(op_type):
    node, *_ = example(op_type)
    op = getCustomOp(node)
    fin, fout = op.folded_input_shape(), op.folded_output_shape()
    assert np.prod(fin) == np.prod(op.normal_input_shape()) and np.prod(fout) == np.prod(op.normal_output_shape())
    assert op.instream_width() == fin[-1] * op.input_datatype().bitwidth()
    assert op.outstream_width() == fout[-1] * op.output_datatype().bitwidth()
    assert isinstance(op.cycles(), int) and op.cycles() > 0
    for name in ("pynq-z1", "ultra96", "ultra96-v2"):
        res = op.resources(board(name))
        assert set(res) == {"LUT", "BRAM18", "DSP"}
        assert all(isinstance(v, int) and v >= 0 for v in res.values())


def test_input_annotation_the_node_cannot_hold_is_an_error():
    node, shape, _, inits = example("MVAU")
    with pytest.raises(QnnflowError, match=r"^node 'MVAU_0': input 'x' is annotated INT4, which inputDataType=UINT2 "
                                           r"cannot hold; fix the annotation or widen inputDataType$"):
        single_node_model(node, np.zeros(shape, np.float32), "INT4", inits)
    with pytest.raises(QnnflowError, match=r"annotated FLOAT32"):
        single_node_model(node, np.zeros(shape, np.float32), "FLOAT32", inits)
    # a narrower annotation is fine
    single_node_model(node, np.zeros(shape, np.float32), "BINARY", inits)


def test_unknown_board_part_is_rejected():
    node, *_ = example("MVAU")
    with pytest.raises(QnnflowError, match=r"board part 'xcvu9p': unknown FPGA family"):
        getCustomOp(node).resources({"part": "xcvu9p", "resources": {}})


def test_carrier_is_float32_unless_that_would_round():
    assert to_carrier(np.array([2**24, -(2**24)])).dtype == np.float32
    big = to_carrier(np.array([2**24 + 1]))
    assert big.dtype == np.float64 and int(big[0]) == 2**24 + 1


def test_nodes_without_a_name_use_their_op_type_in_errors():
    node = helper.make_node("StreamingMaxPool", ["x"], ["y"], domain=DOMAIN, ImgDim=[4, 4], PoolDim=[2, 2],
                            NumChannels=4, PE=3, dataType="INT2")
    with pytest.raises(QnnflowError, match=r"^node 'StreamingMaxPool': PE=3"):
        getCustomOp(node).check()
