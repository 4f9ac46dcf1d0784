"""Class labels computed in the accelerator: TopK with the float tail absorbed -> LabelSelect."""

import json

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.flow.config import load_config
from qnnflow.base.execute import compare_outputs, execute_batch
from qnnflow.base.hostops import top_k_indices
from qnnflow.flow.runner import run_build
from qnnflow.models.export import export_source
from qnnflow.models.source import parse_model_source
from qnnflow.transforms.labels import insert_label_select
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw


@pytest.mark.parametrize("name, k", [("tfc_w1a1", 1), ("tfc_w2a2", 3)])
def test_labels_come_out_of_the_accelerator(name, k):
    model, golden = export_source(parse_model_source(name), "random", 16, 0)
    labelled = insert_label_select(streamline(tidy(model)), k)
    hw, partition = to_hw(labelled)
    assert partition.tail == []
    assert hw.graph.node[-1].op_type == "LabelSelect"
    labels = execute_batch(hw, golden.input)
    np.testing.assert_array_equal(labels, top_k_indices(golden.output, k))
    assert compare_outputs(hw, labels, golden.output).ok


def test_negative_final_scale_keeps_the_ranking_on_the_host():
    model, golden = export_source(parse_model_source("tfc_w2a2"), "random", 8, 0)
    streamlined = streamline(tidy(model))
    tail_mul = next(n for n in reversed(streamlined.graph.node) if n.op_type == "Mul")
    flipped = -np.abs(streamlined.get_initializer(tail_mul.input[1]))
    streamlined.set_initializer(tail_mul.input[1], flipped)
    expected = top_k_indices(execute_batch(streamlined, golden.input), 1)
    hw, partition = to_hw(insert_label_select(streamlined, 1))
    assert [hw.get_node_from_name(n).op_type for n in partition.tail][-1] == "TopK"
    np.testing.assert_array_equal(execute_batch(hw, golden.input), expected)


def test_label_select_step_in_a_build(tmp_path):
    path = tmp_path / "labels.yaml"
    path.write_text(
        "model: tfc_w1a1\nboard: pynq-z1\ngolden: {count: 4}\ntop_k: 2\n"
        "steps: [export, tidy, streamline, label_select, to_hw, fold, estimate, hls_codegen, cppsim]\n"
    )
    log = run_build(load_config(path), tmp_path / "out", progress=lambda line: None)
    assert all(step["verified"] or step["name"] in ("estimate", "hls_codegen") for step in log["steps"])
    # LabelSelect reads the last MVAU's accumulator type, so fold can cost it and C++ matches
    hw = ModelWrapper(str(tmp_path / "out" / "04_to_hw.onnx"))
    label_select = next(n for n in hw.graph.node if n.op_type == "LabelSelect")
    assert getCustomOp(label_select).get_nodeattr("inputDataType") == hw.get_tensor_datatype(label_select.input[0]).name
    assert json.loads((tmp_path / "out" / "cppsim" / "result.json").read_text())["bit_exact"] is True
