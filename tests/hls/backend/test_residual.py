"""Residual blocks and channel concats in hardware (issue 13): a fork (DuplicateStreams) and an integer join
(AddStreams, StreamingConcat), a DAG region through fold, code generation and cppsim, bit-exact with the ap_int
arithmetic."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU
from brevitas.quant import Uint8ActPerTensorFloat
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model
from torch import nn

from qnnflow.base.errors import QnnflowError
from qnnflow.base.execute import compare_outputs, execute_batch
from qnnflow.flow.boards import load_board
from qnnflow.hls import estimate
from qnnflow.hls.branch_fifos import reset_branch_fifos
from qnnflow.hls.codegen.project import generate
from qnnflow.hls.cppsim import cppsim
from qnnflow.hls.nodes.base import DOMAIN, STREAM_DEPTH
from qnnflow.hls.partition import hardware_region
from qnnflow.hls.widths import insert_converters
from qnnflow.models.export import export_brevitas, seeded_inputs
from qnnflow.transforms.fold import fold
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw
from tests.transforms.nets import activation, weight_kwargs
from tests.transforms.test_generality import _input_quant, _randomized

BOARD = load_board("pynq-z1")
INPUT = (1, 2, 6, 6)


def conv(cin, cout):
    return QuantConv2d(cin, cout, 3, padding=1, bias=False, **weight_kwargs(4))


class ResidualBlock(nn.Module):
    """Input quantizer, a stem conv, then QuantConv -> QuantReLU -> QuantConv plus the identity skip, the add,
    QuantReLU, and a quantized classifier."""

    def __init__(self, channels=4):
        super().__init__()
        self.inp, self.stem, self.act0 = _input_quant(), conv(2, channels), activation("relu", 4)
        self.conv1, self.act1 = conv(channels, channels), activation("relu", 4)
        self.conv2, self.act2 = conv(channels, channels), activation("relu", 4)
        self.fc = QuantLinear(channels * 36, 3, bias=False, **weight_kwargs(4))

    def forward(self, x):
        y = self.act0(self.stem(self.inp(x)))
        return self.fc(self.act2(y + self.conv2(self.act1(self.conv1(y)))).flatten(1))


@pytest.fixture(scope="module")
def block():
    exported = tidy(export_brevitas(_randomized(ResidualBlock()).eval(), INPUT))
    hw, _ = to_hw(streamline(exported))
    return exported, hw


def test_the_residual_block_builds_to_cppsim_bit_exact(block, cppsim_cache):
    exported, hw = block
    ops = [n.op_type for n in hw.graph.node]
    assert ops.count("DuplicateStreams") == 1 and ops.count("AddStreams") == 1
    x = seeded_inputs(INPUT, 6, 0, (-1.0, 1.0))
    folded, report = fold(hw, BOARD)
    assert report.within_budget()
    result = compare_outputs(folded, execute_batch(folded, x), execute_batch(exported, x))
    assert result.ok, f"max |diff| {result.max_abs_diff}"
    sim = cppsim(folded, x, BOARD, cppsim_cache)
    assert sim.bit_exact and not sim.native, sim.message()
    top = generate(folded, BOARD).files["top.cpp"].decode()
    fork = next(n for n in folded.graph.node if n.op_type == "DuplicateStreams").name
    assert f"qnnflow::duplicate_streams<{fork}_cfg>(" in top and "qnnflow::add_streams<" in top


def test_the_branch_scales_are_lined_up_by_an_integer_multiply(block):
    """The skip carries the activation's scale 1/16, the long branch the conv's 1/128: the skip is multiplied
    by the exact ratio 8 (a ChannelwiseOp) between the fork and the join."""
    _, hw = block
    nodes = {n.name: n for n in hw.graph.node}
    join = next(n for n in hw.graph.node if n.op_type == "AddStreams")
    producers = [hw.find_producer(t) for t in join.input]
    scaled = next(p for p in producers if p.op_type == "ChannelwiseOp")
    assert hw.find_producer(scaled.input[0]).op_type == "DuplicateStreams"
    factors = hw.get_initializer(scaled.input[1])[:, 0]
    assert set(factors.tolist()) == {8.0}
    assert nodes[join.name] is join


def _join_graph(pe_skip=1):
    """x -> DuplicateStreams -> (MVAU, skip) -> AddStreams: a tiny DAG with a converter-prone skip."""
    rng = np.random.default_rng(3)
    weights = rng.integers(-2, 2, (8, 8)).astype(np.float32)
    nodes = [
        helper.make_node("DuplicateStreams", ["x"], ["a", "b"], domain=DOMAIN, name="DuplicateStreams_0",
                         NumChannels=8, PE=pe_skip, inputDataType="UINT2", numInputVectors=[1, 2, 2]),
        helper.make_node("MVAU", ["a", "W"], ["m"], domain=DOMAIN, name="MVAU_0", MW=8, MH=8,
                         inputDataType="UINT2", weightDataType="INT2", outputDataType="INT8", accDataType="INT8",
                         noActivation=1, numInputVectors=[1, 2, 2]),
        helper.make_node("AddStreams", ["m", "b"], ["y"], domain=DOMAIN, name="AddStreams_0", NumChannels=8,
                         inputDataType="INT8", input1DataType="UINT2", outputDataType="INT9",
                         numInputVectors=[1, 2, 2]),
    ]
    graph = helper.make_graph(nodes, "join", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 2, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 8])],
                              [helper.make_tensor("W", TensorProto.FLOAT, weights.shape, weights.ravel())])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="qnnflow-tests"))
    model.set_tensor_datatype("x", DataType["UINT2"])
    model.set_tensor_datatype("W", DataType["INT2"])
    for t in ("a", "b"):
        model.set_tensor_shape(t, [1, 2, 2, 8])
    return model.transform(InferShapes()).transform(InferDataTypes()), weights


def test_fork_and_join_execute_as_the_sum(cppsim_cache):
    model, weights = _join_graph()
    x = np.random.default_rng(0).integers(0, 4, (5, 2, 2, 8)).astype(np.float32)
    np.testing.assert_array_equal(execute_batch(model, x), x @ weights + x)
    sim = cppsim(model, x, BOARD, cppsim_cache)
    assert sim.bit_exact, sim.message()


def test_an_add_output_type_too_narrow_is_refused():
    model, _ = _join_graph()
    getCustomOp(model.graph.node[2]).set_nodeattr("outputDataType", "INT8")
    with pytest.raises(QnnflowError, match=r"node 'AddStreams_0'.*outputDataType=INT8 cannot hold"):
        execute_batch(model, np.zeros((1, 2, 2, 8), dtype=np.float32))


def _brute_force(model, board):
    """(bottleneck, cheapest objective at it) over every assignment of every node's legal foldings, each
    costed by building the folded graph and its estimates (no use of the search's chain encoding)."""
    from qnnflow.transforms.fold.budget import Budget
    from qnnflow.transforms.fold.space import build_space

    space = build_space(model, board, 1024)
    weights = Budget.of(board, 1.0, 1.0, 1.0).device_weights()
    best = None
    for choice in itertools.product(*(range(len(ns)) for ns in space.nodes)):
        trial = ModelWrapper(copy.deepcopy(model.model))
        nodes = {n.name: n for n in trial.graph.node}
        for ns, k in zip(space.nodes, choice):
            for attr, value in ns.attrs[k].items():
                getCustomOp(nodes[ns.name]).set_nodeattr(attr, value)
        insert_converters(trial, board)
        layers = estimate.layer_estimates(trial, board)
        totals = estimate.total_resources(layers)
        key = (max(layer.cycles for layer in layers), float(weights @ [totals[r] for r in ("LUT", "BRAM18", "DSP")]))
        best = key if best is None or key < best else best
    return best


def test_fold_over_a_fork_and_join_is_the_brute_force_optimum():
    """Folding is exact on a DAG: the skip stream's converter (fork PE against join PE) is costed where the
    stream ends, and both branches count in the resources."""
    model, _ = _join_graph()
    want = _brute_force(model, BOARD)
    folded, report = fold(model, BOARD, lut=1.0, bram=1.0, dsp=1.0)
    reset_branch_fifos(folded)  # the search prices the design before the branch FIFOs are sized
    layers = estimate.layer_estimates(folded, BOARD)
    totals = estimate.total_resources(layers)
    weights = report.budget.device_weights()
    got = (max(layer.cycles for layer in layers), float(weights @ [totals[r] for r in ("LUT", "BRAM18", "DSP")]))
    assert got[0] == want[0] == report.performance["max_cycles"] and got[1] == pytest.approx(want[1])
    assert len(hardware_region(folded).links) >= 3


def test_the_short_branch_gets_a_fifo_sized_from_the_long_branch(block):
    """After folding, the skip (the ChannelwiseOp side) holds the words the fork writes while the long branch
    (padding, sliding window, MVAU, twice) fills; the long branch keeps the default depth.  The FIFO is in the
    fork's memories and cost, in top.cpp's STREAM pragma, and the fold report says why."""
    _, hw = block
    folded, report = fold(hw, BOARD)
    fork_node = next(n for n in folded.graph.node if n.op_type == "DuplicateStreams")
    fork = getCustomOp(fork_node)
    skip_port = next(k for k, t in enumerate(fork_node.output) if folded.find_consumers(t)[0].op_type == "ChannelwiseOp")
    depths = fork.fifo_depths()
    assert STREAM_DEPTH < depths[skip_port] <= fork.cycles() + STREAM_DEPTH and depths[1 - skip_port] == STREAM_DEPTH
    (memory,) = fork.memories()
    assert memory.depth == depths[skip_port] and memory.width == fork.outstream_width()
    shallow = copy.deepcopy(fork_node)
    getCustomOp(shallow).set_nodeattr("outFIFODepths", [STREAM_DEPTH] * 2)
    assert fork.resources_with_stream(BOARD)["LUT"] > getCustomOp(shallow).resources_with_stream(BOARD)["LUT"]
    layer = next(layer for layer in report.layers if layer.name == fork_node.name)
    assert layer.resources == fork.resources_with_stream(BOARD)
    kernel = next(k for k in generate(folded, BOARD).kernels if k.node == fork_node.name)
    stream = kernel.streams()[skip_port][0]
    assert f"#pragma HLS STREAM variable={stream} depth={depths[skip_port]}" in \
        generate(folded, BOARD).files["top.cpp"].decode()
    (note,) = [n for n in report.notes if n.startswith(fork_node.name)]
    assert f"{depths[skip_port]}-word FIFO" in note and "AddStreams" in note


class ConcatBlock(nn.Module):
    """A conv and its output concatenated (channels) with a second conv's, whose activation has a float scale
    (1/15) unlike the first's power of two: each branch keeps its own scale, per channel, into the activation
    after the concat."""

    def __init__(self):
        super().__init__()
        self.inp, self.conv1, self.act1 = _input_quant(), conv(2, 4), activation("relu", 4)
        self.conv2 = conv(4, 2)
        self.act2 = QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=4, max_val=1.0)
        self.act3, self.fc = activation("relu", 4), QuantLinear(6 * 36, 3, bias=False, **weight_kwargs(4))

    def forward(self, x):
        y = self.act1(self.conv1(self.inp(x)))
        return self.fc(self.act3(torch.cat([y, self.act2(self.conv2(y))], 1)).flatten(1))


def test_a_channel_concat_with_different_branch_scales_builds_to_cppsim(cppsim_cache):
    exported = tidy(export_brevitas(_randomized(ConcatBlock()).eval(), INPUT))
    hw, _ = to_hw(streamline(exported))
    concat = next(n for n in hw.graph.node if n.op_type == "StreamingConcat")
    assert getCustomOp(concat).get_nodeattr("ChannelsPerStream") == [4, 2]
    assert hw.find_consumers(concat.output[0])[0].op_type == "Thresholding"
    folded, report = fold(hw, BOARD)
    x = seeded_inputs(INPUT, 6, 1, (-1.0, 1.0))
    result = compare_outputs(folded, execute_batch(folded, x), execute_batch(exported, x))
    assert result.ok, f"max |diff| {result.max_abs_diff}"
    sim = cppsim(folded, x, BOARD, cppsim_cache)
    assert sim.bit_exact and not sim.native, sim.message()
