"""FINN folding JSON: written by fold, read back to the same design; bad files fail naming node and field."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.flow.errors import QnnflowError
from qnnflow.flow.execute import execute_batch
from qnnflow.transforms.fold import fold
from qnnflow.transforms.fold_config import apply_folding, folding_config, read_folding

from .test_fold_search import small_chain, tiny_board

BOARD = tiny_board(7000, 4, 8)


def folded_pair():
    model = small_chain()
    folded, report = fold(model, BOARD, lut=1.0, bram=1.0, dsp=1.0)
    return model, folded, report


def test_round_trip_reproduces_the_design(tmp_path):
    model, folded, report = folded_pair()
    path = tmp_path / "folding_config.json"
    path.write_text(json.dumps(report.folding, indent=2))
    config = read_folding(path)
    assert config == folding_config(folded) and config["Defaults"] == {}
    assert set(config) == {"Defaults", "FMPadding_0", "ConvolutionInputGenerator_0", "MVAU_0", "StreamingMaxPool_0",
                           "MVAU_1", "LabelSelect_0"}
    assert set(config["MVAU_0"]) == {"PE", "SIMD", "ram_style", "resType"}
    again, replay = fold(model, BOARD, lut=1.0, bram=1.0, dsp=1.0, folding=config)
    assert replay.mode == "file" and replay.totals == report.totals
    assert replay.performance == report.performance and replay.converters == report.converters
    assert folding_config(again) == config
    x = np.random.default_rng(0).integers(0, 8, (4, 4, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(execute_batch(again, x), execute_batch(model, x))


def test_refolding_a_folded_graph_replaces_its_converters():
    _, folded, report = folded_pair()
    again, replay = fold(folded, BOARD, lut=1.0, bram=1.0, dsp=1.0)
    assert replay.totals == report.totals and len(again.graph.node) == len(folded.graph.node)
    assert any("removed" in note for note in replay.notes) == bool(report.converters)


def test_defaults_and_partial_files():
    model = small_chain()
    config = {"Defaults": {"ram_style": ["distributed", ["MVAU"]], "PE": 2}, "MVAU_1": {"SIMD": 4}}
    notes = apply_folding(model, config, 1024)
    ops = {n.name: getCustomOp(n) for n in model.graph.node if n.domain}
    assert ops["MVAU_0"].get_nodeattr("ram_style") == ops["MVAU_1"].get_nodeattr("ram_style") == "distributed"
    assert ops["ConvolutionInputGenerator_0"].get_nodeattr("ram_style") == "auto"  # not an MVAU
    assert ops["MVAU_1"].get_nodeattr("SIMD") == 4 and ops["StreamingMaxPool_0"].get_nodeattr("PE") == 2
    assert ops["LabelSelect_0"].get_nodeattr("PE") == 2
    assert any("MVAU_0 is not in the folding file" in note for note in notes)
    # FINN's FIFO depth lists are accepted and ignored
    apply_folding(small_chain(), {"MVAU_0": {"PE": 2, "inFIFODepths": [2], "outFIFODepths": [2]}}, 1024)


@pytest.mark.parametrize("config, message", [
    ({"MVAU_9": {"PE": 1}}, r"^f.json: unknown node 'MVAU_9'; did you mean 'MVAU_[01]'\? \(dataflow nodes: FMPadding_0, "),
    ({"MVAU_0": {"SIMD": 4}}, r"^f.json: node 'MVAU_0': SIMD=4 does not divide MW=18; legal SIMD values: 1, 2, 3, 6, 9, 18$"),
    ({"MVAU_0": {"PE": 3}}, r"^f.json: node 'MVAU_0': PE=3 does not divide MH=8; legal PE values: 1, 2, 4, 8$"),
    ({"StreamingMaxPool_0": {"PE": 5}}, r"^f.json: node 'StreamingMaxPool_0': PE=5 does not divide NumChannels=8"),
    ({"MVAU_0": {"ram_style": "bram"}}, r"^f.json: node 'MVAU_0': field 'ram_style': 'bram' is not allowed for MVAU; "
                                        r"use one of 'auto', 'block', 'distributed', 'ultra'$"),
    ({"MVAU_0": {"PE": "4"}}, r"^f.json: node 'MVAU_0': field 'PE': expected an integer, got '4'$"),
    ({"MVAU_0": {"PE": True}}, r"^f.json: node 'MVAU_0': field 'PE': expected an integer, got True$"),
    ({"MVAU_0": {"MW": 9}}, r"^f.json: node 'MVAU_0': field 'MW' is not a folding attribute of MVAU; "
                            r"use one of PE, SIMD, ram_style, resType$"),
    ({"LabelSelect_0": {"SIMD": 2}}, r"^f.json: node 'LabelSelect_0': field 'SIMD' is not a folding attribute of "
                                     r"LabelSelect; use one of PE$"),
    ({"MVAU_0": [1, 2]}, r"^f.json: node 'MVAU_0': expected a mapping of attribute to value, got \[1, 2\]$"),
    ({"MVAU_1": {"PE": 6, "SIMD": 32}}, r"^f.json: node 'MVAU_1': field 'PE'/'SIMD': PE\*SIMD\*weight bits = 768 exceeds "
                                        r"fold.max_weight_width=512; lower PE or SIMD, or raise fold.max_weight_width$"),
    ({"Defaults": {"depth": [2, "all"]}}, r"^f.json: Defaults: field 'depth' is not a folding attribute"),
    ({"Defaults": {"PE": [2, "MVAU"]}}, r"^f.json: Defaults: field 'PE': expected \[value, \"all\" \| \[op types\]\]"),
])
def test_bad_folding_names_node_and_field(config, message):
    with pytest.raises(QnnflowError, match=message):
        fold(small_chain(), BOARD, folding=config, folding_source="f.json", max_weight_width=512)


def test_bad_files(tmp_path):
    path = tmp_path / "f.json"
    path.write_text('{"MVAU_0": {"PE": 2,}}')
    with pytest.raises(QnnflowError, match=r"^folding file .*f.json: not valid JSON \(line 1, column 21: "):
        read_folding(path)
    path.write_text("[1, 2]")
    with pytest.raises(QnnflowError, match=r"^folding file .*f.json: expected a mapping of node names"):
        read_folding(path)
    with pytest.raises(QnnflowError, match=r"^folding file .*nope.json: not found"):
        read_folding(tmp_path / "nope.json")


def test_a_file_over_budget_is_applied_with_a_note():
    model = small_chain()
    config = {"MVAU_0": {"PE": 8, "SIMD": 18}, "MVAU_1": {"PE": 6, "SIMD": 32}}
    _, report = fold(copy.deepcopy(model), tiny_board(6000, 0, 0), folding=config, max_weight_width=4096)
    assert not report.within_budget()
    assert any(note.startswith("the folding file's design exceeds the budget: ") for note in report.notes)


def test_model_is_not_modified_in_place():
    model = small_chain()
    before = ModelWrapper(copy.deepcopy(model.model))
    fold(model, BOARD, lut=1.0, bram=1.0, dsp=1.0)
    assert model.model == before.model
