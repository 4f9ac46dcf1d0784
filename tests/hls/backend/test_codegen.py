"""Code generation: deterministic files, memory layout in PE/SIMD order, errors before compiling."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import qonnx_make_model

import qnnflow.hls.cppsim as cppsim_module
from qnnflow.base.errors import QnnflowError
from qnnflow.flow.boards import load_board
from qnnflow.hls.codegen.project import generate
from qnnflow.hls.nodes.mvau import packed_weights
from qnnflow.hls.widths import insert_converters
from tests.hls.backend.helpers import BOARD, DOMAIN, chain_model, model_inputs, node_model
from tests.hls.backend.test_networks import hw_graph

REPO = Path(__file__).resolve().parents[3]
MVAU_ATTRS = dict(MW=12, MH=8, SIMD=4, PE=2, inputDataType="INT4", weightDataType="INT3", outputDataType="INT10",
                  accDataType="INT10", noActivation=1, numInputVectors=[1])


def digest(files: dict) -> str:
    h = hashlib.sha256()
    for rel, data in sorted(files.items()):
        h.update(rel.encode() + b"\0" + data)
    return h.hexdigest()


def test_same_graph_same_bytes(tmp_path):
    model, _ = hw_graph("tfc_w2a2")
    first, second = generate(model, BOARD), generate(ModelWrapper(model.model.SerializeToString()), BOARD)
    assert first.files == second.files
    # a fresh Python process with another hash seed gives the same bytes
    path = tmp_path / "m.onnx"
    model.save(str(path))
    script = ("import sys; from qonnx.core.modelwrapper import ModelWrapper; "
              "from qnnflow.hls.codegen.project import generate; from tests.hls.backend.test_codegen import digest; "
              "from tests.hls.backend.helpers import BOARD; print(digest(generate(ModelWrapper(sys.argv[1]), BOARD).files))")
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == digest(first.files)


def test_project_files_and_top_function():
    model, _ = hw_graph("tfc_w1a1")
    project = generate(model, BOARD)
    assert set(project.files) >= {"top.cpp", "top.h", "testbench.cpp", "manifest.json", "include/mvau.hpp",
                                  "params/MVAU_0.h", "params/MVAU_3.h"}
    top = project.files["top.cpp"].decode()
    for pragma in ("INTERFACE axis port=in0", "INTERFACE axis port=out0", "INTERFACE ap_ctrl_none port=return",
                   "DATAFLOW", "ARRAY_PARTITION variable=MVAU_0_weights complete dim=1"):
        assert f"#pragma HLS {pragma}" in top
    # each MVAU runs as its own process (its input vector buffer is local to it), in chain order,
    # between the port adapters; every kernel's stream is tapped
    calls = [line.strip() for line in top.splitlines() if "(" in line and line.strip().startswith(("MVAU_", "qnnflow::"))]
    streams = ["s_input", "MVAU_0_out", "MVAU_1_out", "MVAU_2_out", "MVAU_3_out"]
    assert calls[0].startswith("qnnflow::repack<64, ") and calls[0].endswith("(in0, s_input);")
    assert calls[1:-1] == [f"MVAU_{i}_process({streams[i]}, {streams[i + 1]});" for i in range(4)]
    assert calls[-1].startswith("qnnflow::repack<") and calls[-1].endswith("(MVAU_3_out, out0);")
    assert [f'QNNFLOW_TAP(MVAU_{i}_out, "MVAU_{i}");' in top for i in range(4)] == [True] * 4
    for i in range(4):
        assert f"qnnflow::mvau<MVAU_{i}_cfg>(in, out, MVAU_{i}_weights," in project.files[f"params/MVAU_{i}.h"].decode()
    manifest = json.loads(project.files["manifest.json"])
    assert manifest["top"] == "qnnflow_top"
    # the ports carry the image's bits densely in the board's 64-bit AXI words: 784 INT8 pixels in,
    # 10 UINT7 class counts out (70 bits, the last word zero padded)
    assert manifest["input"]["datatype"] == "INT8" and manifest["input"]["axi_bits"] == 64
    assert manifest["input"]["words"] == 784 * 8 // 64
    assert manifest["output"]["datatype"] == "UINT7" and manifest["output"]["words"] == 2
    assert [k["node"] for k in manifest["kernels"]] == ["MVAU_0", "MVAU_1", "MVAU_2", "MVAU_3"]
    header = project.files["top.h"].decode()
    assert "QNNFLOW_IN_WORD_BITS = 64," in header and f"QNNFLOW_IN_WORDS = {784 * 8 // 64}," in header


def test_port_width_follows_the_board():
    """Ultra96's 128-bit HP ports: the same image in half as many AXI words; the kernels do not change."""
    model, _ = hw_graph("tfc_w1a1")
    pynq, ultra = generate(model, BOARD), generate(model, load_board("ultra96"))
    assert (ultra.input_format.axi_bits, ultra.input_format.words) == (128, 784 * 8 // 128)
    assert ultra.files["top.cpp"] != pynq.files["top.cpp"]
    assert {k: v for k, v in ultra.files.items() if k.startswith("params/")} == \
        {k: v for k, v in pynq.files.items() if k.startswith("params/")}
    with pytest.raises(QnnflowError, match=r"board 'Odd': axi_width=12 must be a positive multiple of 8"):
        generate(model, dict(BOARD, name="Odd", axi_width=12))


def header_array(text: str, name: str) -> np.ndarray:
    match = re.search(rf"{name}((?:\[\d+\])+) = \{{(.*?)\}};", text, re.S)
    dims = [int(d) for d in re.findall(r"\d+", match.group(1))]
    values = [int(v.replace("ULL", ""), 0) for v in match.group(2).replace("\n", "").split(",")]
    return np.array(values).reshape(dims)


def test_weights_are_in_pe_simd_order():
    rng = np.random.default_rng(0)
    weights = rng.integers(-4, 4, size=(12, 8))
    project = generate(node_model("MVAU", MVAU_ATTRS, {1: weights}), BOARD)
    limbs = header_array(project.files["params/MVAU_0.h"].decode(), "MVAU_0_weights")
    assert limbs.shape == (2, 12 * 8 // 8, 1)  # [PE][WMEM][limbs]; 4 x 3 bits fit a uint16_t
    want = packed_weights(weights, 2, 4)  # [PE][WMEM][SIMD]
    for s in range(4):  # lane s at bits 3s..3s+2, two's complement
        lane = (limbs[..., 0] >> (3 * s)) & 0b111
        assert np.array_equal(np.where(lane >= 4, lane - 8, lane), want[..., s])


@pytest.mark.parametrize("res_type, dsp", [("lut", 0), ("dsp", 1), ("auto", 0)])  # auto: 4x3-bit lanes stay in LUTs
def test_res_type_binds_the_lane_products(res_type, dsp):
    weights = np.random.default_rng(2).integers(-4, 4, size=(12, 8))
    header = generate(node_model("MVAU", MVAU_ATTRS | {"resType": res_type}, {1: weights}), BOARD).files["params/MVAU_0.h"]
    assert f"DSP = {dsp}," in header.decode()


SWG_ATTRS = dict(ConvKernelDim=[3, 3], IFMChannels=4, IFMDim=[6, 6], OFMDim=[2, 2], Stride=[2, 2], SIMD=2,
                 inputDataType="UINT2", outputDataType="UINT2")


@pytest.mark.parametrize("ram_style, impl", [("block", "bram"), ("distributed", "lutram"), ("auto", None)])
def test_ram_style_binds_the_line_buffer(ram_style, impl):
    project = generate(node_model("ConvolutionInputGenerator", SWG_ATTRS | {"ram_style": ram_style}), BOARD)
    header = project.files["params/ConvolutionInputGenerator_0.h"].decode()
    process = header[header.index("static void ConvolutionInputGenerator_0_process("):]
    # KH + SH rows of W * CH/SIMD words (one bank a row: banks are the depthwise mode's), local to the
    # node's process, one memory per row
    assert ("    ap_uint<4> buffer[5][1][12];\n#pragma HLS ARRAY_PARTITION variable=buffer complete dim=1\n"
            "#pragma HLS ARRAY_PARTITION variable=buffer complete dim=2\n") in process
    binds = [line for line in process.splitlines() if "BIND_STORAGE" in line]
    assert binds == ([f"#pragma HLS BIND_STORAGE variable=buffer type=ram_s2p impl={impl}"] if impl else [])
    assert "ConvolutionInputGenerator_0_process(s_input, ConvolutionInputGenerator_0_out);" in \
        project.files["top.cpp"].decode()


@pytest.mark.parametrize("depth, ram_style, impl", [(8, "auto", "srl"), (100, "auto", "lutram"),
                                                    (100, "block", "bram"), (300, "auto", "bram")])
def test_fifo_binds_its_stream_as_the_cost_model_counts_it(depth, ram_style, impl):
    fifo = node_model("StreamingFIFO", dict(depth=depth, folded_shape=[1, 6, 2], dataType="INT3", ram_style=ram_style))
    top = generate(fifo, BOARD).files["top.cpp"].decode().splitlines()
    at = top.index(f"#pragma HLS STREAM variable=StreamingFIFO_0_out depth={depth}")
    assert top[at + 1] == f"#pragma HLS BIND_STORAGE variable=StreamingFIFO_0_out type=fifo impl={impl}"


def test_thresholds_are_sorted_per_pe_row():
    rng = np.random.default_rng(1)
    attrs = dict(MVAU_ATTRS, outputDataType="UINT2", noActivation=0)
    thresholds = rng.integers(-50, 50, size=(8, 3))  # unsorted rows
    project = generate(node_model("MVAU", attrs, {1: rng.integers(-4, 4, (12, 8)), 2: thresholds}), BOARD)
    packed = header_array(project.files["params/MVAU_0.h"].decode(), "MVAU_0_thresholds")
    assert packed.shape == (2, 4, 3)
    for n in range(8):
        assert packed[n % 2, n // 2].tolist() == sorted(thresholds[n].tolist())


# ----- errors before compiling -------------------------------------------------------------------------


@pytest.fixture
def no_compiler(monkeypatch):
    """Fail the test if anything tries to compile."""
    def refuse(*args, **kwargs):
        raise AssertionError("the compiler must not run")

    monkeypatch.setattr(cppsim_module, "compile_project", refuse)


def expect_error(model, pattern, tmp_path):
    with pytest.raises(QnnflowError, match=pattern) as info:
        cppsim_module.cppsim(model, model_inputs(model, np.random.default_rng(0), 1), BOARD, tmp_path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_node_without_kernel(no_compiler, tmp_path):
    node = helper.make_node("UnknownKernel", ["x", "x"], ["y"], domain=DOMAIN, name="UnknownKernel_0")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = ModelWrapper(qonnx_make_model(graph))
    with pytest.raises(QnnflowError, match=r"node 'UnknownKernel_0' \(UnknownKernel\): no HLS kernel implements UnknownKernel"):
        generate(model, BOARD)


def test_folding_wider_than_ap_uint(no_compiler, tmp_path):
    attrs = dict(MVAU_ATTRS, MW=1200, SIMD=1200, inputDataType="INT4")
    model = node_model("MVAU", attrs, {1: np.zeros((1200, 8))})
    expect_error(model, r"^node 'MVAU_0' \(MVAU\): the input word is 4800 bits wide, beyond the 4096-bit words the "
                        r"HLS kernels support \(ap_uint\); lower SIMD", tmp_path)


def test_illegal_folding_names_the_node(no_compiler, tmp_path):
    model = node_model("MVAU", dict(MVAU_ATTRS, PE=3), {1: np.zeros((12, 8))})
    expect_error(model, r"node 'MVAU_0' \(MVAU\): PE=3 does not divide MH=8; legal PE values: 1, 2, 4, 8", tmp_path)
    pool = node_model("StreamingMaxPool", dict(ImgDim=[4, 4], PoolDim=[2, 2], NumChannels=6, PE=4, dataType="INT2"))
    expect_error(pool, r"node 'StreamingMaxPool_0' \(StreamingMaxPool\): PE=4 does not divide", tmp_path)


def test_mvau_reading_a_stream_of_the_wrong_size(no_compiler, tmp_path):
    """An MVAU may read any tensor with prod(numInputVectors[1:]) x MW elements per image, and no other."""
    model = node_model("MVAU", MVAU_ATTRS, {1: np.zeros((12, 8))})
    model.set_tensor_shape("x", [1, 2, 7])  # 14 elements, MW = 12
    with pytest.raises(QnnflowError, match=r"^node 'MVAU_0' \(MVAU\): input 'x' of shape \[1, 2, 7\] has 14 elements "
                                           r"per image, but numInputVectors\[1:\] x MW = 12; fix MW or numInputVectors$"):
        generate(model, BOARD)


def test_mismatched_datatypes_between_layers(no_compiler, tmp_path):
    second = dict(MVAU_ATTRS, MW=8, MH=4, SIMD=1, PE=1, inputDataType="INT8", accDataType="INT16",
                  outputDataType="INT16")
    model = chain_model([("MVAU", MVAU_ATTRS, {1: np.zeros((12, 8))}), ("MVAU", second, {1: np.zeros((8, 4))})])
    # a width converter cannot fix this (nor can folding), so it is reported rather than the widths
    expect_error(model, r"^node 'MVAU_1': reads INT8 elements but 'MVAU_0' writes INT10; set its input datatype to "
                        r"INT10", tmp_path)


def test_mismatched_widths_are_refused_until_converters_are_inserted(no_compiler, tmp_path):
    """Codegen connects streams as they are; hls.widths.insert_converters (the fold step) places the converter."""
    rng = np.random.default_rng(0)
    second = dict(MVAU_ATTRS, MW=8, MH=4, SIMD=1, PE=1, inputDataType="INT10", accDataType="INT16",
                  outputDataType="INT16")
    model = chain_model([("MVAU", MVAU_ATTRS, {1: rng.integers(-4, 4, (12, 8))}),
                         ("MVAU", second, {1: rng.integers(-4, 4, (8, 4))})])
    expect_error(model, r"^node 'MVAU_1' reads 10-bit words but 'MVAU_0' writes 20-bit words; run the fold step "
                        r"\(or hls.widths.insert_converters\) to insert the width converter$", tmp_path)
    assert insert_converters(model, BOARD) == ["StreamingDataWidthConverter_0"]
    assert [n.op_type for n in model.graph.node] == ["MVAU", "StreamingDataWidthConverter", "MVAU"]
    top = generate(model, BOARD).files["top.cpp"].decode()
    assert "qnnflow::dwc<20, 10, 4>(MVAU_0_out, StreamingDataWidthConverter_0_out);" in top
    assert "MVAU_1_process(StreamingDataWidthConverter_0_out, MVAU_1_out);" in top
    assert insert_converters(model, BOARD) == []  # the widths now agree


def test_branching_region(no_compiler, tmp_path):
    rng = np.random.default_rng(0)
    model = chain_model([("MVAU", MVAU_ATTRS, {1: rng.integers(-4, 4, (12, 8))}),
                         ("MVAU", dict(MVAU_ATTRS, MW=8, MH=2, SIMD=1, PE=1, inputDataType="INT10",
                                       accDataType="INT16", outputDataType="INT16"), {1: np.zeros((8, 2))})])
    model.graph.node[1].input[0] = "x"  # the second layer reads the accelerator input too
    with pytest.raises(QnnflowError, match=r"node 'MVAU_1' reads 'x', which 'MVAU_0' reads too.*DuplicateStreams"):
        generate(model, BOARD)
