"""A node kind is one Python module plus one kernel header: this module defines a new kind, registers
it, and takes a graph using it through fold, the estimates, FINN folding JSON, hls_codegen and
cppsim, editing no other file of qnnflow."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

from qnnflow.base.execute import execute_batch
from qnnflow.flow.boards import load_board
from qnnflow.hls import estimate
from qnnflow.hls.codegen.cpp import config_struct, element_type
from qnnflow.hls.codegen.kernel import Kernel, check_emittable, formats, header
from qnnflow.hls.codegen.project import generate
from qnnflow.hls.cppsim import cppsim
from qnnflow.hls.nodes import cost, node_kinds, register_node
from qnnflow.hls.nodes.base import DOMAIN, HWNode, fold_problem
from qnnflow.transforms.fold import fold
from qnnflow.transforms.fold.finn_json import canonical_name, folding_config

KERNEL = b"""// ChannelOffset (a test's node kind): out = in + C::OFFSET, PE lanes a word.
#ifndef TEST_CHANNEL_OFFSET_HPP
#define TEST_CHANNEL_OFFSET_HPP

#include "streams.hpp"

namespace qnnflow {

template <class C>
void channel_offset(hls::stream<ap_uint<C::PE * C::in_t::bits> >& in,
                    hls::stream<ap_uint<C::PE * C::out_t::bits> >& out) {
    for (unsigned i = 0; i < C::WORDS; i++) {
#pragma HLS PIPELINE II=1
        const ap_uint<C::PE * C::in_t::bits> x = in.read();
        ap_uint<C::PE * C::out_t::bits> o = 0;
        for (unsigned pe = 0; pe < C::PE; pe++) {
#pragma HLS UNROLL
            set_lane<typename C::out_t>(o, pe, get_lane<typename C::in_t>(x, pe) + C::OFFSET);
        }
        out.write(o);
    }
}

}  // namespace qnnflow

#endif
"""


class ChannelOffset(HWNode):
    """Adds ``Offset`` to every element of an (N, C) stream, PE elements a cycle."""

    FINN_OP_TYPES = ("ChannelOffset_Batch",)
    KERNEL_HEADER = "channel_offset.hpp"

    def get_nodeattr_types(self):
        return {"NumChannels": ("i", True, 0), "PE": ("i", False, 1), "Offset": ("i", True, 0),
                "inputDataType": ("s", True, ""), "outputDataType": ("s", True, "")}

    @classmethod
    def kernel_sources(cls):
        return {cls.KERNEL_HEADER: KERNEL}

    def folding_problems(self):
        p = fold_problem("PE", self.get_nodeattr("PE"), "NumChannels", self.get_nodeattr("NumChannels"))
        return [p] if p else []

    def parallel_knobs(self):
        return {"PE": "NumChannels"}

    def compute(self, x):
        return self.int_array(x, self.input_datatype(), "input") + self.get_nodeattr("Offset")

    def make_shape_compatible_op(self, model):
        return helper.make_node("Identity", [self.onnx_node.input[0]], [self.onnx_node.output[0]])

    def normal_input_shape(self):
        return (1, self.get_nodeattr("NumChannels"))

    normal_output_shape = normal_input_shape

    def folded_input_shape(self):
        pe = self.get_nodeattr("PE")
        return (1, self.get_nodeattr("NumChannels") // pe, pe)

    folded_output_shape = folded_input_shape

    def cycles(self):
        self.check()
        return self.get_nodeattr("NumChannels") // self.get_nodeattr("PE")

    def resources(self, board):
        self.check()
        adder = self.get_nodeattr("PE") * self.output_datatype().bitwidth()
        return {"LUT": int(cost.control_luts(board, cost.STREAMING_CONTROL_LUTS) + adder), "BRAM18": 0, "DSP": 0}

    def emit(self, model, ident):
        check_emittable(self, model)
        node, g = self.onnx_node, self.get_nodeattr
        constants = dict(PE=g("PE"), WORDS=g("NumChannels") // g("PE"), OFFSET=g("Offset"))
        types = dict(in_t=element_type(self.input_datatype().name), out_t=element_type(self.output_datatype().name))
        in_fmt, out_fmt = formats(self)
        return Kernel(node.name, node.op_type, ident, in_fmt, out_fmt,
                      f"qnnflow::channel_offset<{ident}_cfg>({{inp}}, {{out}});",
                      header(ident, node, self.KERNEL_HEADER, config_struct(f"{ident}_cfg", constants, types)))


@pytest.fixture(scope="module")
def graph():
    """An MVAU (16 UINT2 inputs, 8 INT8 scores) followed by the new kind adding 5."""
    register_node(ChannelOffset)
    rng = np.random.default_rng(0)
    weights = rng.integers(-2, 2, (16, 8)).astype(np.float32)
    mvau = helper.make_node("MVAU", ["x", "W"], ["acc"], domain=DOMAIN, name="MVAU_0", MW=16, MH=8,
                            inputDataType="UINT2", weightDataType="INT2", outputDataType="INT8", noActivation=1)
    offset = helper.make_node("ChannelOffset", ["acc"], ["y"], domain=DOMAIN, name="ChannelOffset_0",
                              NumChannels=8, Offset=5, inputDataType="INT8", outputDataType="INT9")
    graph = helper.make_graph([mvau, offset], "offset_net",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor("W", TensorProto.FLOAT, weights.shape, weights.ravel())])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="qnnflow-tests"))
    model.set_tensor_datatype("x", DataType["UINT2"])
    model.set_tensor_datatype("W", DataType["INT2"])
    return model.transform(InferShapes()).transform(InferDataTypes()), weights


def test_a_new_kind_goes_through_fold_estimate_codegen_and_cppsim(graph, tmp_path):
    model, weights = graph
    board = load_board("pynq-z1")
    assert "ChannelOffset" in node_kinds()
    x = np.random.default_rng(1).integers(0, 4, (6, 16)).astype(np.float32)
    np.testing.assert_array_equal(execute_batch(model, x), x @ weights + 5)

    folded, report = fold(model, board, target_cycles=4)  # the search folds the new kind through its knobs
    offset = getCustomOp([n for n in folded.graph.node if n.op_type == "ChannelOffset"][0])
    pe = offset.get_nodeattr("PE")
    assert pe > 1 and report.performance["max_cycles"] <= 4 and report.within_budget()
    layers = {layer.name: layer for layer in estimate.layer_estimates(folded, board)}
    assert layers["ChannelOffset_0"].cycles == offset.cycles()
    assert layers["ChannelOffset_0"].resources["LUT"] >= offset.resources(board)["LUT"]  # plus its stream

    config = folding_config(folded)  # FINN folding JSON carries it, and its FINN name maps back
    assert config["ChannelOffset_0"] == {"PE": pe}
    assert canonical_name("ChannelOffset_Batch_0") == canonical_name("ChannelOffset_hls_0") == "ChannelOffset_0"

    project = generate(folded, board)
    assert project.files["include/channel_offset.hpp"] == KERNEL
    assert b"qnnflow::channel_offset<ChannelOffset_0_cfg>" in project.files["top.cpp"]
    result = cppsim(folded, x, board, tmp_path / "cache")
    assert result.bit_exact and not result.native, result.message()
    assert math.isclose(report.fps, 1e9 / (report.performance["max_cycles"] * report.clock_ns))
