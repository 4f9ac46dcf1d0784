"""No Flatten/Reshape inside the dataflow region: the classifier's MVAU reads the conv stream directly.

The nets here are not shaped like the zoo: the last conv (or pool) output is spatially larger
than 1x1 (3x3xC), so the first fully connected layer reads an (N, 3, 3, C) tensor as MW = 9C.
"""

import copy

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from torch import nn

from qnnflow.base.errors import QnnflowError
from qnnflow.base.execute import compare_outputs, execute_batch
from qnnflow.models.export import export_source
from qnnflow.models.source import parse_model_source
from qnnflow.hls.partition import find_partition
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import TO_HW, RemoveStreamReshapes, to_hw

HW = "qnnflow.hls.nodes"
FACTORY = "tests.transforms.test_flatten:conv3x3_classifier"


class Conv3x3Classifier(nn.Module):
    """8-bit input 5x5x2, unpadded 3x3 conv to 3x3x4 (4-bit weights, batch norm, 2-bit ReLU), FC 36-6-3."""

    def __init__(self):
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv = QuantConv2d(2, 4, kernel_size=3, bias=False, weight_bit_width=4)
        self.bn = nn.BatchNorm2d(4)
        self.act = QuantReLU(bit_width=2, return_quant_tensor=True)
        self.fc1 = QuantLinear(4 * 3 * 3, 6, bias=False, weight_bit_width=3)
        self.act1 = QuantReLU(bit_width=3, return_quant_tensor=True)
        self.fc2 = QuantLinear(6, 3, bias=False, weight_bit_width=4)

    def forward(self, x):
        x = self.act(self.bn(self.conv(self.inp(x))))
        return self.fc2(self.act1(self.fc1(x.flatten(1))))


def conv3x3_classifier():
    torch.manual_seed(11)
    net = Conv3x3Classifier()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.3, 0.3)
        net.bn.running_var.uniform_(0.5, 1.5)
        net.bn.bias.uniform_(0.0, 0.5)
    return net.eval(), (1, 2, 5, 5), (-1.0, 1.0)


@pytest.fixture(scope="module")
def exported():
    model, golden = export_source(parse_model_source(FACTORY), "random", 6, 0)
    return streamline(tidy(model)), golden


def converted_keeping_reshapes(streamlined):
    """to_hw without RemoveStreamReshapes: the Flatten between the conv and the classifier stays."""
    model = streamlined
    for transform in TO_HW:
        if transform is not RemoveStreamReshapes:
            model = model.transform(transform())
    return model


def region_between_first_and_last_hw_node(model):
    nodes = list(model.graph.node)
    hw = [i for i, n in enumerate(nodes) if n.domain == HW]
    return nodes[hw[0] : hw[-1] + 1]


def test_classifier_reads_the_3x3_conv_stream_directly(exported):
    streamlined, golden = exported
    hw, partition = to_hw(streamlined)
    assert not [n.name for n in hw.graph.node if n.op_type in ("Flatten", "Reshape")]
    region = region_between_first_and_last_hw_node(hw)
    assert all(n.domain == HW for n in region)
    assert [n.name for n in region] == partition.hardware
    fc = [n for n in hw.graph.node if n.op_type == "MVAU"][1]
    assert hw.get_tensor_shape(fc.input[0]) == [1, 3, 3, 4]
    assert getCustomOp(fc).get_nodeattr("MW") == 36
    assert hw.get_tensor_shape(fc.output[0]) == [1, 6]

    out = execute_batch(hw, golden.input)
    assert compare_outputs(hw, out, golden.output).ok
    # bit for bit what the graph with the Flatten computes
    np.testing.assert_array_equal(out, execute_batch(converted_keeping_reshapes(streamlined), golden.input))


def test_a_reshape_chain_is_removed_too(exported):
    """Flatten -> Reshape (with its shape constant) between the conv and the classifier."""
    streamlined, golden = exported
    model = converted_keeping_reshapes(streamlined)
    flatten = next(n for n in model.graph.node if n.op_type == "Flatten")
    fc = model.find_consumers(flatten.output[0])[0]
    model.set_initializer("reshape_shape", np.array([1, 36], np.int64))
    model.graph.node.insert(list(model.graph.node).index(fc),
                            helper.make_node("Reshape", [flatten.output[0], "reshape_shape"], ["reshaped"],
                                             name="Reshape_test"))
    fc.input[0] = "reshaped"
    model = model.transform(InferShapes()).transform(InferDataTypes())
    want = execute_batch(model, golden.input)

    done = model.transform(RemoveStreamReshapes())
    assert not [n for n in done.graph.node if n.op_type in ("Flatten", "Reshape")]
    assert done.get_initializer("reshape_shape") is None
    assert not [v for v in done.graph.value_info if v.name in ("reshaped", flatten.output[0])]
    assert all(n.domain == HW for n in region_between_first_and_last_hw_node(done))
    np.testing.assert_array_equal(execute_batch(done, golden.input), want)


class FlattenBeforeRequantization(nn.Module):
    """FC, ReLU, a Flatten of the (N, 8) result (an identity), a 2-bit re-quantization, FC."""

    def __init__(self):
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.fc0 = QuantLinear(20, 8, bias=False, weight_bit_width=3)
        self.act = QuantReLU(bit_width=4, return_quant_tensor=True)
        self.requant = QuantIdentity(bit_width=2, return_quant_tensor=True)
        self.fc1 = QuantLinear(8, 3, bias=False, weight_bit_width=3)

    def forward(self, x):
        return self.fc1(self.requant(self.act(self.fc0(self.inp(x))).flatten(1)))


def test_a_flatten_keeping_the_shape_goes_before_any_dataflow_node():
    from qnnflow.models.export import export_brevitas

    torch.manual_seed(0)
    exported = tidy(export_brevitas(FlattenBeforeRequantization().eval(), (1, 20)))
    assert "Flatten" in [n.op_type for n in exported.graph.node]
    hw, partition = to_hw(streamline(exported))
    assert [n.op_type for n in hw.graph.node if n.name in partition.hardware] == ["MVAU", "Thresholding", "MVAU"]
    assert all(n.domain == HW for n in region_between_first_and_last_hw_node(hw))
    x = np.random.default_rng(0).uniform(-1, 1, (5, 1, 20)).astype(np.float32)
    reference = execute_batch(exported, x)
    assert compare_outputs(hw, execute_batch(hw, x), reference).ok


def test_a_reshape_before_a_node_that_is_no_stream_reader_is_named():
    """Thresholding checks its input shape, so a Flatten before it cannot go; the partition names it."""
    t = np.array([[0.0, 1.0, 2.0]] * 4, np.float32)
    nodes = [
        helper.make_node("Thresholding", ["x", "T0"], ["a"], domain=HW, name="Thresholding_0", NumChannels=4,
                         inputDataType="INT4", outputDataType="UINT2", numInputVectors=[1, 3, 3]),
        helper.make_node("Flatten", ["a"], ["f"], name="Flatten_0", axis=1),
        helper.make_node("Thresholding", ["f", "T1"], ["y"], domain=HW, name="Thresholding_1", NumChannels=36,
                         inputDataType="UINT2", outputDataType="UINT2", numInputVectors=[1]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 36])])
    model = ModelWrapper(helper.make_model(graph))
    model.set_initializer("T0", t)
    model.set_initializer("T1", np.repeat(t[:1], 36, axis=0))
    model = model.transform(InferShapes()).transform(RemoveStreamReshapes())
    assert [n.op_type for n in model.graph.node].count("Flatten") == 1
    with pytest.raises(QnnflowError, match="'Flatten_0' \\(Flatten\\) sits inside the dataflow region.*MVAU"):
        find_partition(model)


@pytest.mark.parametrize("folding", [None, {"MVAU_0": (2, 6), "MVAU_1": (3, 12), "MVAU_2": (3, 2)}])
def test_cppsim_matches_with_the_classifier_reading_the_conv_stream(exported, tmp_path_factory, folding):
    """The FC's SIMD=12 words span three pixels of the conv's 2-lane output: a width converter regroups."""
    from qnnflow.flow.boards import load_board
    from qnnflow.hls.cppsim import cppsim
    from qnnflow.hls.widths import insert_converters

    board = load_board("pynq-z1")
    hw, _ = to_hw(exported[0])
    if folding:
        hw = ModelWrapper(copy.deepcopy(hw.model))
        for node in hw.graph.node:
            if node.name in folding:
                pe, simd = folding[node.name]
                getCustomOp(node).set_nodeattr("PE", pe)
                getCustomOp(node).set_nodeattr("SIMD", simd)
        converters = insert_converters(hw, board)
        reader = [n for n in hw.graph.node if n.name == "MVAU_1"][0]
        assert hw.find_producer(reader.input[0]).name in converters  # the converter before MVAU_1 regroups
    result = cppsim(hw, exported[1].input, board, tmp_path_factory.mktemp("cppsim-flatten"), layers=True)
    assert result.bit_exact and result.mismatch is None, result.message()


def test_fold_accepts_classifier_words_spanning_pixels(exported):
    """The converter before MVAU_1 works on its view of the stream (1, 36), not the (1, 3, 3, 4) tensor."""
    from qnnflow.transforms.fold import fold

    board = {"name": "tiny", "part": "xc7z020clg400-1", "clock_ns": 10.0, "axi_width": 64,
             "resources": {"LUT": 10**6, "FF": 2 * 10**6, "BRAM18": 10**4, "DSP": 10**4}}
    folded, _ = fold(to_hw(exported[0])[0], board, folding={"MVAU_0": {"PE": 2, "SIMD": 6},
                                                            "MVAU_1": {"PE": 3, "SIMD": 12}})
    np.testing.assert_array_equal(execute_batch(folded, exported[1].input),
                                  execute_batch(to_hw(exported[0])[0], exported[1].input))
