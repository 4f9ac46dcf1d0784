"""Folding the zoo: legal, within budget, bit-exact, at least as fast as FINN's greedy, calibrated.

Hardware graphs are built once per session (export + tidy + streamline + to_hw).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.flow.boards import load_board
from qnnflow.flow.config import load_config
from qnnflow.base.errors import QnnflowError
from qnnflow.base.execute import execute_batch
from qnnflow.flow.runner import run_build
from qnnflow.models.export import export_source
from qnnflow.models.source import parse_model_source
from bench.greedy import greedy_fold
from qnnflow.hls.nodes import cost
from qnnflow.hls.nodes.calibration import (
    PUBLISHED,
    SHELL_LUTS,
    calibration_rows,
    fit_error,
    fit_lut_coefficients,
    leave_one_out,
)
from qnnflow.hls.nodes.cost import RESOURCES
from qnnflow.hls.partition import hardware_region
from qnnflow.transforms.fold import fold
from qnnflow.transforms.fold.space import DEFAULT_MAX_WEIGHT_WIDTH, FoldSpace
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw

REPO = Path(__file__).resolve().parents[2]
FAST = ["tfc_w1a1", "tfc_w2a2", "lfc_w1a1", "cnv_w1a1", "cnv_w1a2", "cnv_w2a2"]
SLOW = ["tfc_w1a2", "lfc_w1a2", "lfc_w2a2", "cnv_w4a4", "cnv_w8a8"]
BOARDS = ["pynq-z1", "ultra96"]


@functools.lru_cache(maxsize=None)
def _hw(name: str):
    exported, golden = export_source(parse_model_source(name), "random", count=3, seed=0)
    model, _ = to_hw(streamline(tidy(exported)))
    return model, golden


def hw(name: str):
    """A private copy of the zoo model's hardware graph, and its golden I/O."""
    model, golden = _hw(name)
    return ModelWrapper(copy.deepcopy(model.model)), golden


def check_folded(model, report, board, max_weight_width=DEFAULT_MAX_WEIGHT_WIDTH):
    """Every node legal, weight words within the limit, streams matched, totals within budget and consistent."""
    chain = hardware_region(model).nodes
    for node in chain:
        op = getCustomOp(node)
        assert op.problems() == [], node.name
        bits = op.parameter_word_bits()
        assert bits is None or bits <= max_weight_width, node.name
    for a, b in zip(chain, chain[1:]):  # after fold, adjacent widths agree (a converter sits wherever they differ)
        assert getCustomOp(a).outstream_width() == getCustomOp(b).instream_width(), (a.name, b.name)
    assert report.within_budget()
    for r in RESOURCES:
        assert report.totals[r] <= report.budget.limits[r]
        assert report.totals[r] == sum(layer.resources[r] for layer in report.layers)
    assert report.fps == pytest.approx(1e9 / (report.performance["max_cycles"] * report.clock_ns))
    assert report.performance["max_cycles"] >= report.ceiling["max_cycles"]


@pytest.mark.parametrize("board_name", BOARDS)
@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW])
def test_fold_zoo_is_legal_and_within_budget(name, board_name):
    board = load_board(board_name)
    model, _ = hw(name)
    try:
        folded, report = fold(model, board)
    except QnnflowError as err:  # the 8-bit CNV cannot fit these boards at any folding
        assert str(err).startswith("fold: even the slowest folding"), err
        assert name in ("cnv_w8a8", "cnv_w4a4"), err
        return
    check_folded(folded, report, board)  # the search's time is bench/fold.py's to measure, not a test's


@pytest.mark.parametrize("name", ["cnv_w1a1", "lfc_w1a1"])
def test_folded_graph_executes_bit_exactly(name):
    model, golden = hw(name)
    folded, report = fold(model, load_board("pynq-z1"))
    assert report.converters  # the chain really was re-plumbed
    np.testing.assert_array_equal(execute_batch(folded, golden.input), execute_batch(model, golden.input))


def test_fold_is_at_least_as_fast_as_finn_greedy_and_cnv_meets_the_goal():
    board = load_board("pynq-z1")
    model, _ = hw("cnv_w1a1")
    for mww in (1024, 1 << 20, DEFAULT_MAX_WEIGHT_WIDTH):
        folded, report = fold(model, board, max_weight_width=mww)
        greedy = greedy_fold(model, board, max_weight_width=mww)
        assert report.fps >= greedy.fps
        assert all(greedy.totals[r] <= report.budget.limits[r] for r in RESOURCES)
    assert report.fps >= 9150  # BNN-PYNQ's measured figure, at the default limit and 100 MHz


def test_target_modes_give_the_cheapest_design_meeting_the_target():
    board = load_board("pynq-z1")
    model, _ = hw("cnv_w1a1")
    _, fastest = fold(model, board)
    _, slow = fold(model, board, target_fps=1000)
    assert 1000 <= slow.fps < fastest.fps
    assert slow.mode == "target_fps" and slow.totals["LUT"] < fastest.totals["LUT"]
    T = slow.performance["max_cycles"]
    _, same = fold(model, board, target_cycles=T)
    assert same.totals == slow.totals and same.performance["max_cycles"] <= T
    # the cheapest: a target just one cycle tighter costs at least as much
    _, tighter = fold(model, board, target_cycles=T - 1)
    assert sum(tighter.totals[r] / tighter.budget.available[r] for r in RESOURCES) >= \
        sum(slow.totals[r] / slow.budget.available[r] for r in RESOURCES)


def test_bad_budgets_and_targets_name_what_is_missing():
    board = load_board("pynq-z1")
    model, _ = hw("cnv_w1a1")
    with pytest.raises(QnnflowError, match=r"^fold: even the slowest folding needs at least [\d,]+ LUT \(budget 2,660 = 5% "
                                           r"of 53,200; most: 'MVAU_\d', [\d,]+ LUT\); raise fold.lut"):
        fold(model, board, lut=0.05)
    with pytest.raises(QnnflowError, match=r"^fold: fold.target_fps=50000 .* is beyond the ceiling: node "
                                           r"'ConvolutionInputGenerator_0' needs at least 8,196 cycles"):
        fold(model, board, target_fps=50000, max_weight_width=1 << 20)
    with pytest.raises(QnnflowError, match=r"^fold: fold.target_fps=12000 .* needs at least [\d,]+ LUT \(budget "
                                           r"26,600 = 50% of 53,200; most: 'MVAU_\d'"):
        fold(model, board, lut=0.5, target_fps=12000, max_weight_width=1 << 20)
    with pytest.raises(QnnflowError, match=r"^fold: fold.target_fps=12000 .* fits no combination of the budgets: "
                                           r"the fewest-LUT design needs [\d,]+ LUT, [\d,]+ BRAM18, [\d,]+ DSP; "):
        fold(model, board, target_fps=12000, max_weight_width=1 << 20)
    with pytest.raises(QnnflowError, match="fold.target_fps and fold.target_cycles are both set"):
        fold(model, board, target_fps=100, target_cycles=10**6)
    with pytest.raises(QnnflowError, match=r"^fold.lut=1.5: must be a fraction"):
        fold(model, board, lut=1.5)
    mvau = next(n for n in model.graph.node if n.name == "MVAU_1")
    getCustomOp(mvau).set_nodeattr("inputDataType", "UINT2")  # its producer writes BINARY words
    with pytest.raises(QnnflowError, match=r"^node 'MVAU_1': reads UINT2 elements but '\w+' writes BINARY"):
        fold(model, board)


def test_nodes_no_converter_can_join_are_named(monkeypatch):
    model, _ = hw("tfc_w1a1")
    monkeypatch.setattr(FoldSpace, "dwc", lambda self, edge, in_width, out_width: None)
    with pytest.raises(QnnflowError, match=r"^node 'MVAU_1': no width converter joins it to 'MVAU_0' at any folding"):
        fold(model, load_board("pynq-z1"))


def test_fold_step_in_a_build(tmp_path):
    build = tmp_path / "tfc.yaml"
    build.write_text("model: tfc_w1a1\nboard: ultra96\nsteps: [export, tidy, streamline, to_hw, fold, estimate]\n"
                     "outputs: [folding, estimates]\ngolden: {count: 2}\nfold: {lut: 0.5}\n")
    out = tmp_path / "out"
    run_build(load_config(build), out, progress=lambda line: None)
    config = json.loads((out / "folding_config.json").read_text())
    report = json.loads((out / "report" / "folding.json").read_text())
    assert config["Defaults"] == {} and config["MVAU_0"]["PE"] >= 1
    assert report["mode"] == "maximise" and report["within_budget"]
    assert report["resources"]["LUT"]["used"] <= report["resources"]["LUT"]["budget"] == int(0.5 * 70560)
    assert report["estimated_throughput_fps"] > 0 and report["nodes"][0]["cycles"] > 0
    assert (out / "report" / "folding.png").read_bytes()[:4] == b"\x89PNG"
    perf = json.loads((out / "report" / "estimate_network_performance.json").read_text())
    assert perf["max_cycles"] == report["max_cycles"]  # the estimate step sees the folded graph


def test_calibration_against_bnn_pynq(capsys):
    """Our estimate at BNN-PYNQ's foldings next to its published Pynq-Z1 figures (hls/nodes/cost.py)."""
    rows = calibration_rows({name: hw(name)[0] for name in PUBLISHED}, load_board("pynq-z1"))
    with capsys.disabled():
        print(f"\ncalibration (ours = nodes + {SHELL_LUTS:,} LUT shell):")
        for row in rows:
            print(f"  {row['overlay']:<8} {row['resource']:<6} published {row['published']:>7,}  "
                  f"ours {row['ours']:>7,}  {row['ratio'] - 1:+.0%}")
    assert len(rows) == 8
    for row in rows:
        assert 0.75 <= row["ratio"] <= 1.25, row


def test_fitted_coefficients_are_the_least_squares_fit():
    """cost.FITTED is what the fit gives today: a change to the cost model must come with a refit.

    The popcount coefficient is weakly determined (per-node rounding makes the error flat across
    a few hundredths), so FITTED must fit as well as the refit does, and NODE_LUTS be close to it."""
    models, board = {name: hw(name)[0] for name in PUBLISHED}, load_board("pynq-z1")
    fitted = fit_lut_coefficients(models, board)
    assert abs(fitted["NODE_LUTS"] - cost.FITTED["NODE_LUTS"]) < 5, fitted
    assert fit_error(models, board, cost.FITTED) <= fit_error(models, board, fitted) * 1.01 + 1e-6, fitted


def test_the_published_calibration_tables_are_the_computed_ones():
    """README and hls/nodes/cost.py quote the calibration: they must say what the model computes."""
    models, board = {name: hw(name)[0] for name in PUBLISHED}, load_board("pynq-z1")
    readme = " ".join((REPO / "README.md").read_text().split())
    table = {line.split()[0]: line.split() for line in cost.__doc__.splitlines() if line.strip()[:3] in ("cnv", "lfc")}
    luts = {r["overlay"]: r for r in calibration_rows(models, board) if r["resource"] == "LUT"}
    out_of_sample = leave_one_out(models, board)
    for row in out_of_sample:
        fit = luts[row["overlay"]]
        assert f"{row['overlay']} {fit['ours']:,} vs {fit['published']:,}" in readme, row
        assert table[row["overlay"]][1:5] == [f"{fit['published']:,}", f"{fit['ours']:,}",
                                              f"({fit['ratio'] - 1:+.0%})", f"{row['ratio'] - 1:+.0%}"]
    errors = [f"{row['ratio'] - 1:+.0%}" for row in out_of_sample]
    assert f"errors are {', '.join(errors[:-1])} and {errors[-1]}." in readme
