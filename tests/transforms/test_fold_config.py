"""FINN folding JSON: written by fold, read back to the same design; bad files fail naming node and field.

Files written by FINN itself (its node names, FIFO and width-converter entries, FINN-only
fields) give the same design as the same folding in qnnflow's names.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.flow.boards import load_board
from qnnflow.base.errors import QnnflowError
from qnnflow.base.execute import execute_batch
from qnnflow.transforms.fold import fold
from qnnflow.transforms.fold.finn_json import apply_folding, canonical_name, folding_config, read_folding

from .test_fold import hw
from .test_fold_search import small_chain, tiny_board

BOARD = tiny_board(7000, 4, 8)
DATA = Path(__file__).parent / "data"


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
    assert not any("FINN" in note or "ignored" in note for note in replay.notes)  # our names: nothing translated
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
    ({"Defaults": {"MW": [2, "all"]}}, r"^f.json: Defaults: field 'MW' is not a folding attribute"),
    # FINN names: the error names the FINN name and qnnflow's
    ({"MVAU_hls_9": {"PE": 1}}, r"^f.json: unknown node 'MVAU_hls_9' \(qnnflow's 'MVAU_9'\); did you mean 'MVAU_[01]'\? "
                                r"\(dataflow nodes: FMPadding_0, "),
    ({"StreamingMaxPool_Batch_3": {"PE": 1}},
     r"^f.json: unknown node 'StreamingMaxPool_Batch_3' \(qnnflow's 'StreamingMaxPool_3'\); "),
    ({"Lookup_hls_0": {"PE": 1}}, r"^f.json: unknown node 'Lookup_hls_0'; "),  # no counterpart
    ({"MVAU_0": {"PE": 2}, "MVAU_hls_0": {"PE": 4}},
     r"^f.json: entries 'MVAU_0' and 'MVAU_hls_0' both configure node 'MVAU_0'; keep one$"),
    ({"MVAU_hls_1": {"PE": 2}, "MatrixVectorActivation_1": {"PE": 2}},
     r"^f.json: entries 'MVAU_hls_1' and 'MatrixVectorActivation_1' both configure node 'MVAU_1'; keep one$"),
    ({"MVAU_hls_0": {"PE": 2, "mem_mode": "internal_decoupled", "weird": 1}},
     r"^f.json: node 'MVAU_hls_0' \(qnnflow's 'MVAU_0'\): field 'weird' is not a folding attribute of MVAU; "
     r"use one of PE, SIMD, ram_style, resType$"),
    ({"StreamingMaxPool_Batch_0": {"ram_style": "block"}},
     r"^f.json: node 'StreamingMaxPool_Batch_0' \(qnnflow's 'StreamingMaxPool_0'\): field 'ram_style' is not a "
     r"folding attribute of StreamingMaxPool; use one of PE$"),
    ({"MVAU_rtl_0": {"resType": "bram"}}, r"^f.json: node 'MVAU_rtl_0' \(qnnflow's 'MVAU_0'\): field 'resType': 'bram' "
                                          r"is not allowed for MVAU; use one of 'auto', 'dsp', 'lut'$"),
    ({"MVAU_hls_0": {"PE": 3}}, r"^f.json: node 'MVAU_hls_0' \(qnnflow's 'MVAU_0'\): PE=3 does not divide MH=8"),
    ({"MVAU_hls_1": {"PE": 6, "SIMD": 32}}, r"^f.json: node 'MVAU_hls_1' \(qnnflow's 'MVAU_1'\): field 'PE'/'SIMD': "),
    ({"Defaults": {"weird": ["x", ["MVAU_hls"]]}}, r"^f.json: Defaults: field 'weird' is not a folding attribute"),
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


# ----- files written by FINN ------------------------------------------------------------------


@pytest.mark.parametrize("finn, ours", [
    ("MVAU_hls_3", "MVAU_3"), ("MVAU_rtl_3", "MVAU_3"), ("MatrixVectorActivation_3", "MVAU_3"),
    ("StreamingFCLayer_Batch_3", "MVAU_3"), ("ConvolutionInputGenerator_rtl_1", "ConvolutionInputGenerator_1"),
    ("ConvolutionInputGenerator_hls_1", "ConvolutionInputGenerator_1"), ("Thresholding_rtl_0", "Thresholding_0"),
    ("Thresholding_hls_0", "Thresholding_0"), ("Thresholding_Batch_0", "Thresholding_0"),
    ("StreamingMaxPool_hls_1", "StreamingMaxPool_1"), ("StreamingMaxPool_Batch_1", "StreamingMaxPool_1"),
    ("FMPadding_rtl_0", "FMPadding_0"), ("FMPadding_Batch_0", "FMPadding_0"), ("LabelSelect_hls_0", "LabelSelect_0"),
    ("LabelSelect_Batch_0", "LabelSelect_0"), ("StreamingFIFO_rtl_12", "StreamingFIFO_12"),
    ("StreamingDataWidthConverter_hls_2", "StreamingDataWidthConverter_2"),
    ("StreamingDataWidthConverter_Batch_2", "StreamingDataWidthConverter_2"),
    ("AddStreams_hls_0", "AddStreams_0"), ("AddStreams_Batch_1", "AddStreams_1"),
    ("DuplicateStreams_Batch_2", "DuplicateStreams_2"),
    # ours, and names with no qnnflow counterpart, are unchanged
    ("MVAU_0", "MVAU_0"), ("ConvolutionInputGenerator_10", "ConvolutionInputGenerator_10"),
    ("VectorVectorActivation_0", "VVAU_0"), ("Lookup_hls_0", "Lookup_hls_0"),
    ("ConvolutionInputGenerator1D_0", "ConvolutionInputGenerator1D_0"), ("Flatten_0", "Flatten_0"),
    ("MVAU_hls", "MVAU_hls"), ("MVAU_hls_x", "MVAU_hls_x"), ("MVAU_hls_٣", "MVAU_hls_٣"),
])
def test_finn_names_translate_to_ours(finn, ours):
    assert canonical_name(finn) == ours


# The folding of tests/transforms/data/finn_cnv_w1a1_folding.json, in qnnflow's names and fields.
# (FINN's own CNV build also has an input Thresholding and a LabelSelect: qnnflow's runs them on the host.)
CNV_OURS = {
    "Defaults": {},
    "ConvolutionInputGenerator_0": {"SIMD": 3, "ram_style": "distributed"},
    "MVAU_0": {"PE": 8, "SIMD": 9, "ram_style": "block", "resType": "lut"},
    "ConvolutionInputGenerator_1": {"SIMD": 16, "ram_style": "block"},
    "MVAU_1": {"PE": 16, "SIMD": 16, "ram_style": "auto", "resType": "lut"},
    "StreamingMaxPool_0": {"PE": 8},
    "ConvolutionInputGenerator_2": {"SIMD": 32, "ram_style": "distributed"},
    "MVAU_2": {"PE": 8, "SIMD": 32, "ram_style": "block", "resType": "auto"},
    "ConvolutionInputGenerator_3": {"SIMD": 16, "ram_style": "distributed"},
    "MVAU_3": {"PE": 8, "SIMD": 16, "ram_style": "distributed", "resType": "lut"},
    "StreamingMaxPool_1": {"PE": 16},
    "ConvolutionInputGenerator_4": {"SIMD": 16, "ram_style": "auto"},
    "MVAU_4": {"PE": 4, "SIMD": 16, "ram_style": "block", "resType": "lut"},
    "ConvolutionInputGenerator_5": {"SIMD": 8, "ram_style": "block"},
    "MVAU_5": {"PE": 2, "SIMD": 16, "ram_style": "block", "resType": "lut"},
    "MVAU_6": {"PE": 2, "SIMD": 8, "ram_style": "auto", "resType": "dsp"},
    "MVAU_7": {"PE": 1, "SIMD": 16, "ram_style": "distributed", "resType": "lut"},
    "MVAU_8": {"PE": 5, "SIMD": 4, "ram_style": "distributed", "resType": "lut"},
}


def node_attributes(model) -> list:
    return [(n.name, n.op_type, sorted((a.name, a.SerializeToString()) for a in n.attribute)) for n in model.graph.node]


def test_a_finn_file_gives_the_design_of_the_same_folding_in_our_names():
    finn = read_folding(DATA / "finn_cnv_w1a1_folding.json")
    theirs, ours = hw("cnv_w1a1")[0], hw("cnv_w1a1")[0]
    before = folding_config(theirs)
    notes = apply_folding(theirs, finn, 4096, "f.json")
    assert apply_folding(ours, CNV_OURS, 4096, "f.json") == []
    assert folding_config(ours) == CNV_OURS != before  # the file changes the design
    assert node_attributes(theirs) == node_attributes(ours)  # every attribute of every node, not only the folding
    assert notes == [
        "FINN names translated to qnnflow's: ConvolutionInputGenerator_rtl_<n> -> ConvolutionInputGenerator_<n> (6), "
        "MVAU_hls_<n> -> MVAU_<n> (9), StreamingMaxPool_hls_<n> -> StreamingMaxPool_<n> (2)",
        "ignored 11 FIFO/width-converter entries (StreamingFIFO_rtl x6, StreamingDataWidthConverter_hls x5): fold "
        "inserts the width converters its folding needs; FIFO sizing is not part of folding",
        "ignored Thresholding_rtl_0, LabelSelect_hls_0: this graph has no dataflow node of that kind (qnnflow runs "
        "it on the host, or the build has no such layer)",
        "ignored FINN fields with no qnnflow counterpart: mem_mode (weights are always in on-chip memories of the kernel); "
        "runtime_writeable_weights (weights are fixed when the kernel is generated); ram_style_thresholds (an MVAU's "
        "threshold memory style is always auto); parallel_window (the sliding window's only parallelism "
        "is SIMD); inFIFODepths, outFIFODepths (FIFO sizing is not part of folding)",
    ]


def test_a_finn_file_folds_end_to_end_like_ours():
    board = load_board("pynq-z1")
    model = hw("cnv_w1a1")[0]
    finn = read_folding(DATA / "finn_cnv_w1a1_folding.json")
    folded, report = fold(model, board, folding=finn, folding_source="f.json")
    again, replay = fold(model, board, folding=CNV_OURS, folding_source="f.json")
    assert report.mode == replay.mode == "file" and report.folding == replay.folding == CNV_OURS
    assert report.totals == replay.totals and report.performance == replay.performance
    assert node_attributes(folded) == node_attributes(again)  # the same converters, derived by fold
    assert any(note.startswith("FINN names translated") for note in report.notes)


def test_legacy_finn_names_fifo_fields_and_defaults():
    model = small_chain()
    config = {
        "Defaults": {"ram_style": ["distributed", ["MatrixVectorActivation", "StreamingFCLayer_Batch"]],
                     "resType": ["dsp", ["MVAU_hls"]], "mem_mode": ["const", "all"],
                     "depth": [256, ["StreamingFIFO"]]},
        "FMPadding_Batch_0": {"SIMD": 2, "inFIFODepth": 2, "outFIFODepth": 2},
        "StreamingFIFO_0": {"depth": 64, "ram_style": "block", "impl_style": "vivado"},
        "ConvolutionInputGenerator_0": {"SIMD": 1, "ram_style": "block"},
        "StreamingDataWidthConverter_Batch_0": {"impl_style": "hls"},
        "StreamingFCLayer_Batch_0": {"PE": 4, "SIMD": 6, "mem_mode": "decoupled", "runtime_writeable_weights": 1},
        "StreamingMaxPool_Batch_0": {"PE": 8},
        "MatrixVectorActivation_1": {"PE": 2, "SIMD": 8, "resType": "lut"},
        "LabelSelect_Batch_0": {"PE": 3},
    }
    notes = apply_folding(model, config, 1024, "f.json")
    ops = {n.name: getCustomOp(n) for n in model.graph.node if n.domain}
    got = {name: {a: op.get_nodeattr(a) for a in ("PE", "SIMD", "ram_style", "resType") if a in op.get_nodeattr_types()}
           for name, op in ops.items()}
    assert got == {
        "FMPadding_0": {"SIMD": 2},
        "ConvolutionInputGenerator_0": {"SIMD": 1, "ram_style": "block"},
        "MVAU_0": {"PE": 4, "SIMD": 6, "ram_style": "distributed", "resType": "dsp"},  # Defaults by FINN op types
        "StreamingMaxPool_0": {"PE": 8},
        "MVAU_1": {"PE": 2, "SIMD": 8, "ram_style": "distributed", "resType": "lut"},  # the entry beats Defaults
        "LabelSelect_0": {"PE": 3},
    }
    assert "mem_mode" not in ops["MVAU_0"].get_nodeattr_types()  # FINN's mem_mode has no counterpart
    assert notes == [
        "FINN names translated to qnnflow's: FMPadding_Batch_<n> -> FMPadding_<n> (1), StreamingFCLayer_Batch_<n> -> "
        "MVAU_<n> (1), StreamingMaxPool_Batch_<n> -> StreamingMaxPool_<n> (1), MatrixVectorActivation_<n> -> "
        "MVAU_<n> (1), LabelSelect_Batch_<n> -> LabelSelect_<n> (1), Defaults op type MatrixVectorActivation -> MVAU, "
        "Defaults op type StreamingFCLayer_Batch -> MVAU, Defaults op type MVAU_hls -> MVAU",
        "ignored 2 FIFO/width-converter entries (StreamingFIFO x1, StreamingDataWidthConverter_Batch x1): fold "
        "inserts the width converters its folding needs; FIFO sizing is not part of folding",
        "ignored FINN fields with no qnnflow counterpart: mem_mode (weights are always in on-chip memories of the kernel); "
        "runtime_writeable_weights (weights are fixed when the kernel is generated); depth, inFIFODepth, "
        "outFIFODepth (FIFO sizing is not part of folding)",
    ]
