"""The RTL top over a DAG: forks (DuplicateStreams) and joins (AddStreams, StreamingConcat) simulated with
Verilator against their Python execution at several foldings, with random bubbles and back-pressure; small
residual and concat networks through the rtl back end (rtlsim bit-exact, FIFO sizing without deadlock)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from brevitas.nn import QuantLinear
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import qonnx_make_model
from torch import nn

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.config import load_config
from qnnflow.flow.runner import run_build
from qnnflow.hls.branch_fifos import reset_branch_fifos, size_branch_fifos
from qnnflow.hls.codegen.rtl import generate_rtl
from qnnflow.hls.fifo_sizing import size_fifos
from qnnflow.hls.nodes.base import DOMAIN
from qnnflow.hls.rtlsim import rtlsim
from tests.hls.backend.helpers import BOARD, model_inputs, random_ints
from tests.hls.rtl.test_units import simulate, thresholds_for
from tests.transforms.nets import activation, weight_kwargs
from tests.transforms.test_generality import _input_quant, _randomized


def slow(*values):  # a further folding, run by make test-all: one Verilator build each
    return pytest.param(*values, marks=pytest.mark.slow)


def dag_model(nodes: list[tuple], x_dt: str, params: dict | None = None) -> ModelWrapper:
    """A graph of dataflow nodes (op_type, name, inputs, outputs, attributes) in topological order reading
    tensor "x" and writing "y"; params are initializers by name, (array, DataType name).  Shapes and types
    come from each node's normal shapes and attributes."""
    onnx_nodes = [helper.make_node(op, ins, outs, domain=DOMAIN, name=name, **attrs)
                  for op, name, ins, outs, attrs in nodes]
    ops = [getCustomOp(n) for n in onnx_nodes]
    tensors = {out: (list(op.normal_output_shape()), op.output_datatype()) for op, n in zip(ops, onnx_nodes)
               for out in n.output}
    params = params or {}
    graph = helper.make_graph(
        onnx_nodes, "dag", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(ops[0].normal_input_shape()))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, tensors["y"][0])],
        initializer=[helper.make_tensor(k, TensorProto.FLOAT, a.shape, np.asarray(a, np.float32).ravel())
                     for k, (a, _) in params.items()],
        value_info=[helper.make_tensor_value_info(t, TensorProto.FLOAT, s) for t, (s, _) in tensors.items()
                    if t != "y"])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="qnnflow-tests"))
    model.set_tensor_datatype("x", DataType[x_dt])
    for t, (_, dt) in tensors.items():
        model.set_tensor_datatype(t, dt)
    for k, (_, dt) in params.items():
        model.set_tensor_datatype(k, DataType[dt])
    return model


def fork(ch, pe, dt, vectors):
    """x -> a, b."""
    return ("DuplicateStreams", "DuplicateStreams_0", ["x"], ["a", "b"],
            dict(NumChannels=ch, PE=pe, inputDataType=dt, numInputVectors=vectors))


def add(ch, pe, dt0, dt1, out_dt, vectors, ins=("a", "b")):
    return ("AddStreams", "AddStreams_0", list(ins), ["y"],
            dict(NumChannels=ch, PE=pe, inputDataType=dt0, input1DataType=dt1, outputDataType=out_dt,
                 numInputVectors=vectors))


def concat(c0, c1, pe, dt0, dt1, out_dt, vectors, ins=("a", "b")):
    return ("StreamingConcat", "StreamingConcat_0", list(ins), ["y"],
            dict(ChannelsPerStream=[c0, c1], NumChannels=c0 + c1, PE=pe, inputDataType=dt0, input1DataType=dt1,
                 outputDataType=out_dt, numInputVectors=vectors))


# ----- the node kinds, a fork straight into a join and with a node on one branch --------------------------


@pytest.mark.parametrize("dt,out_dt,pe", [slow("INT4", "INT5", 1), slow("UINT3", "UINT4", 2), ("BIPOLAR", "INT3", 4)])
def test_fork_into_add(dt, out_dt, pe, rtl_cache, tmp_path):
    """Both copies summed: 2x; a BIPOLAR stream decoded as -1/+1."""
    vectors = [1, 3]
    model = dag_model([fork(8, pe, dt, vectors), add(8, pe, dt, dt, out_dt, vectors)], dt)
    full = simulate(model, rtl_cache, tmp_path)
    assert full.performance["cycles_per_image"] == 3 * 8 // pe  # one word a cycle through fork and join


@pytest.mark.parametrize("pe,thresholded_port", [slow(1, 0), (2, 1), slow(4, 0)])
def test_add_of_thresholded_branch_and_skip(pe, thresholded_port, rtl_cache, tmp_path):
    """Input types differ per port (UINT2 levels and the INT5 skip), either way round."""
    rng = np.random.default_rng(pe)
    vectors, ch = [1, 2, 2], 4
    branch = ("Thresholding", "Thresholding_0", ["a", "T"], ["t"],
              dict(NumChannels=ch, PE=pe, inputDataType="INT5", outputDataType="UINT2", numInputVectors=vectors))
    ins = ("t", "b") if thresholded_port == 0 else ("b", "t")
    types = ("UINT2", "INT5") if thresholded_port == 0 else ("INT5", "UINT2")
    model = dag_model([fork(ch, pe, "INT5", vectors), branch, add(ch, pe, *types, "INT6", vectors, ins=ins)], "INT5",
                      {"T": (thresholds_for(rng, ch, 3, -16, 15), "INT5")})
    simulate(model, rtl_cache, tmp_path)


def test_a_mismatch_on_a_branch_names_its_node(rtl_cache, tmp_path):
    """The RTL of one graph simulated against another whose branch thresholds differ: the taps name the
    branch's node, not the fork before it or the join after it."""
    rng = np.random.default_rng(4)
    vectors, ch = [1, 2], 4

    def graph(thresholds):
        branch = ("Thresholding", "Thresholding_0", ["b", "T"], ["t"],
                  dict(NumChannels=ch, PE=2, inputDataType="INT5", outputDataType="UINT2", numInputVectors=vectors))
        return dag_model([fork(ch, 2, "INT5", vectors), branch, add(ch, 2, "INT5", "UINT2", "INT6", vectors,
                                                                     ins=("a", "t"))],
                         "INT5", {"T": (thresholds, "INT5")})

    thresholds = thresholds_for(rng, ch, 3, -16, 15)
    project = generate_rtl(graph(thresholds), BOARD, ports="stream")
    x = model_inputs(graph(thresholds), rng, 3)
    result = rtlsim(graph(thresholds + 1), x, BOARD, rtl_cache, tmp_path, project=project)
    assert not result.bit_exact and result.mismatch["node"] == "Thresholding_0", result.mismatch


@pytest.mark.parametrize("pe,mvau_port", [slow(1, 0), (2, 1), slow(2, 0)])
def test_concat_of_mvau_branch_and_skip(pe, mvau_port, rtl_cache, tmp_path):
    """4 MVAU channels (INT7, read in bursts: the skip waits in the fork's deeper output stream) beside the 6
    input channels (UINT3), re-encoded as INT8."""
    rng = np.random.default_rng(10 + pe)
    vectors = [1, 2, 3]
    mvau = ("MVAU", "MVAU_0", ["a", "W"], ["m"],
            dict(MW=6, MH=4, SIMD=pe, PE=pe, inputDataType="UINT3", weightDataType="INT2", outputDataType="INT7",
                 accDataType="INT7", noActivation=1, numInputVectors=vectors))
    if mvau_port == 0:
        join = concat(4, 6, pe, "INT7", "UINT3", "INT8", vectors, ins=("m", "b"))
    else:
        join = concat(6, 4, pe, "UINT3", "INT7", "INT8", vectors, ins=("b", "m"))
    model = dag_model([fork(6, pe, "UINT3", vectors), mvau, join], "UINT3",
                      {"W": (random_ints(rng, "INT2", (6, 4)), "INT2")})
    size_branch_fifos(model)
    full = simulate(model, rtl_cache, tmp_path)
    assert full.performance["cycles_per_image"] == getCustomOp(model.graph.node[1]).cycles()  # the MVAU's pace


@pytest.mark.parametrize("out_dt", ["BIPOLAR", slow("INT2")])
def test_concat_of_bipolar_streams(out_dt, rtl_cache, tmp_path):
    vectors = [1, 4]
    model = dag_model([fork(2, 2, "BIPOLAR", vectors), concat(2, 2, 2, "BIPOLAR", "BIPOLAR", out_dt, vectors)],
                      "BIPOLAR")
    full = simulate(model, rtl_cache, tmp_path)
    assert full.performance["cycles_per_image"] == 4 * 2


def _burst_residual(rng):
    """x -> fork -> (MVAU reading a whole vector before its first output, skip) -> AddStreams."""
    vectors = [1, 2]
    mvau = ("MVAU", "MVAU_0", ["a", "W"], ["m"],
            dict(MW=8, MH=8, SIMD=1, PE=1, inputDataType="UINT2", weightDataType="INT2", outputDataType="INT8",
                 accDataType="INT8", noActivation=1, numInputVectors=vectors))
    return dag_model([fork(8, 1, "UINT2", vectors), mvau, add(8, 1, "INT8", "UINT2", "INT9", vectors, ins=("m", "b"))],
                     "UINT2", {"W": (random_ints(rng, "INT2", (8, 8)), "INT2")})


def test_a_short_branch_fifo_too_shallow_deadlocks_naming_the_fork(rtl_cache, tmp_path):
    """The fork's output streams at the default depth while the MVAU reads a whole vector first: the fork
    stops with a word for the full skip stream, and the simulation says so instead of hanging; the depth
    branch_fifos chooses (in the fork's wrapper) lets it run."""
    rng = np.random.default_rng(0)
    model = _burst_residual(rng)
    x = model_inputs(model, rng, 2)
    reset_branch_fifos(model)
    with pytest.raises(QnnflowError, match="no word moved.*DuplicateStreams_0"):
        rtlsim(model, x, BOARD, rtl_cache, tmp_path / "shallow")
    size_branch_fifos(model)
    depth = getCustomOp(model.graph.node[0]).fifo_depths()[1]
    assert depth > 2 and f"qnnflow_fifo #(.WIDTH(2), .DEPTH({depth})) stream1" in \
        generate_rtl(model, BOARD).files["units/DuplicateStreams_0.v"].decode()
    assert rtlsim(model, x, BOARD, rtl_cache, tmp_path / "sized").bit_exact


def test_fifo_sizing_finds_the_skip_depth_the_fork_lacks(rtl_cache, tmp_path):
    """With the fork's output streams at the default depth (that design deadlocks, above), sizing measures
    the skip's occupancy behind a whole-image FIFO and puts a FIFO that deep in front of the join's second
    input: the sized design runs, bit-exact, as fast as the one with whole-image FIFOs."""
    rng = np.random.default_rng(0)
    model = _burst_residual(rng)
    reset_branch_fifos(model)
    x = model_inputs(model, rng, 4)
    sized, report = size_fifos(model, BOARD, x, rtl_cache, tmp_path / "sizing")
    skip = report["fifos"]["AddStreams_0_in1"]
    assert skip["inserted"] and skip["depth"] >= skip["peak_occupancy"] > 8  # more than a vector's words
    assert report["cycles_per_image"]["sized"] <= report["cycles_per_image"]["deep"]
    # measured with the input paced at the MVAU's rate, the fork's input needs no FIFO, though a fast input
    # port would fill a whole-image one
    assert report["peaks_measured_with"] == "input paced at the deep design's throughput"
    assert not report["fifos"]["DuplicateStreams_0"]["inserted"]
    fifo = next(n for n in sized.graph.node if n.name == "StreamingFIFO_AddStreams_0_in1")
    assert list(fifo.output) == [sized.graph.node[-1].input[1]]  # on the join's second input
    again = rtlsim(sized, x, BOARD, rtl_cache, tmp_path / "again", min_images=24)
    assert again.bit_exact and again.performance["cycles_per_image"] == report["cycles_per_image"]["sized"]


# ----- small residual and concat networks through the rtl back end ------------------------------------


class DenseResidual(nn.Module):
    """Input quantizer, a dense layer, then a residual block of two dense layers (the skip and the body end in
    the same activation quantizer, so their integers line up without a multiply), the add, an activation, and
    a dense classifier: MVAU, DuplicateStreams, AddStreams and Thresholding nodes."""

    def __init__(self, features=8):
        super().__init__()
        self.inp = _input_quant(4)
        self.fc0, self.act0 = QuantLinear(6, features, bias=False, **weight_kwargs(2)), activation("relu", 3)
        self.fc1, self.act1 = QuantLinear(features, features, bias=False, **weight_kwargs(2)), activation("relu", 3)
        self.fc2, self.act2 = QuantLinear(features, features, bias=False, **weight_kwargs(2)), activation("relu", 3)
        self.fc3 = QuantLinear(features, 4, bias=False, **weight_kwargs(2))

    def forward(self, x):
        y = self.act0(self.fc0(self.inp(x)))
        return self.fc3(self.act2(y + self.act0(self.fc2(self.act1(self.fc1(y))))))


class DenseConcat(nn.Module):
    """A dense layer whose output and a further dense layer's are concatenated: a StreamingConcat of an MVAU
    branch and the skip."""

    def __init__(self, features=8):
        super().__init__()
        self.inp = _input_quant(4)
        self.fc0, self.act0 = QuantLinear(6, features, bias=False, **weight_kwargs(2)), activation("relu", 3)
        self.fc1, self.act1 = QuantLinear(features, 4, bias=False, **weight_kwargs(2)), activation("relu", 3)
        self.fc2 = QuantLinear(features + 4, 4, bias=False, **weight_kwargs(2))

    def forward(self, x):
        y = self.act0(self.fc0(self.inp(x)))
        return self.fc2(torch.cat([y, self.act1(self.fc1(y))], 1))


def dense_residual():
    return _randomized(DenseResidual()), (1, 6), (-1.0, 1.0)


def dense_concat():
    return _randomized(DenseConcat()), (1, 6), (-1.0, 1.0)


# backend: rtl's steps but synth (minutes of Yosys); a slow folding (64 cycles) makes the MVAUs read in bursts
STEPS = "[export, tidy, streamline, to_hw, fold, estimate, fifo_size, rtl_codegen, rtlsim]"


@pytest.mark.parametrize("factory,join", [("dense_residual", "AddStreams"), slow("dense_concat", "StreamingConcat")])
def test_network_through_the_rtl_back_end(factory, join, tmp_path):
    """export .. fold, FIFO sizing on the fork (sized design as fast as the whole-image one, no deadlock), the
    RTL top over the DAG, rtlsim bit-exact against the golden outputs' Python execution."""
    path = tmp_path / "net.yaml"
    path.write_text(f"model: tests.hls.rtl.test_dag:{factory}\nboard: pynq-z1\nsteps: {STEPS}\n"
                    f"outputs: [rtl, rtlsim, fifo_depths]\ngolden: {{count: 4}}\nfold: {{target_cycles: 64}}\n")
    out = tmp_path / "out"
    run_build(load_config(path), out, progress=lambda line: None)
    assert json.loads((out / "rtlsim" / "result.json").read_text())["bit_exact"] is True
    fifos = json.loads((out / "report" / "fifo_depths.json").read_text())
    assert fifos["cycles_per_image"]["sized"] <= fifos["cycles_per_image"]["deep"]
    assert f"{join}_0_in1" in fifos["fifos"]  # the join's second input was measured too
    top = (out / "rtl" / "qnnflow_top.v").read_text()
    assert "a graph of streams (forks and joins)" in top and f"qf_{join}_0 {join}_0 (" in top
    perf = json.loads((out / "report" / "rtlsim_performance.json").read_text())
    assert perf["cycles_per_image"] == fifos["cycles_per_image"]["sized"]
    assert {"DuplicateStreams_0", f"{join}_0"} <= set(perf["nodes"])
