"""cppsim itself: binary cache, layer mode naming the first differing layer, stream checks, toolchain errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.codegen.project import generate
from qnnflow.hls.cppsim import ap_include_dir, compile_project, compiler, cppsim
from tests.hls.backend.helpers import BOARD, cppsim_all, node_model
from tests.hls.backend.test_networks import hw_graph


def corrupted(project, header, old, new):
    text = project.files[header].decode()
    assert old in text
    project.files[header] = text.replace(old, new, 1).encode()
    return project


def test_unchanged_project_is_not_recompiled(cppsim_cache):
    model, inputs = hw_graph("tfc_w1a1")
    first = cppsim(model, inputs, BOARD, cppsim_cache, precompiled_header=True)
    again = cppsim(model, inputs, BOARD, cppsim_cache, precompiled_header=True)
    assert first.bit_exact and again.bit_exact
    assert again.cached and again.compile_seconds == 0 and again.binary == first.binary


def test_layer_mode_names_the_first_differing_layer(cppsim_cache, tmp_path):
    model, inputs = hw_graph("tfc_w1a1")
    project = corrupted(generate(model, BOARD), "params/MVAU_1.h", "ACT_VAL = 0,", "ACT_VAL = 1,")  # inverts its outputs
    result = cppsim(model, inputs, BOARD, cppsim_cache, work_dir=tmp_path, project=project, precompiled_header=True)
    assert not result.bit_exact
    assert result.mismatch["node"] == "MVAU_1" and result.mismatch["image"] == 0
    assert "first differing layer: 'MVAU_1' (MVAU)" in result.message()
    assert (tmp_path / "taps" / "MVAU_0.bin").is_file()


def test_layer_mode_on_a_matching_build_finds_nothing(cppsim_cache):
    model, inputs = hw_graph("tfc_w2a2")
    result = cppsim(model, inputs[:1], BOARD, cppsim_cache, layers=True, precompiled_header=True)
    assert result.bit_exact and result.mismatch is None


def test_wrong_word_count_is_reported_with_the_stream(cppsim_cache):
    model, inputs = hw_graph("tfc_w1a1")
    project = corrupted(generate(model, BOARD), "params/MVAU_1.h", "MH = 64,", "MH = 32,")  # writes half its words
    with pytest.raises(QnnflowError, match=r"C\+\+ simulation: Hls::stream 'MVAU_1_out' is read while empty"):
        cppsim(model, inputs, BOARD, cppsim_cache, project=project, precompiled_header=True)


def test_compile_errors_are_one_line_with_a_log(cppsim_cache):
    model, _ = hw_graph("tfc_w1a1")
    project = corrupted(generate(model, BOARD), "top.cpp", "#pragma HLS DATAFLOW", "this is not C++;")
    with pytest.raises(QnnflowError, match=r"g\+\+ failed on top.cpp: .*error.*\(full log: .*failed-.*\.log\)") as info:
        compile_project(project, cppsim_cache)
    assert "\n" not in str(info.value)


def test_cache_key_follows_the_bytes_of_the_headers(tmp_path):
    """Headers edited or upgraded in place (same directory) give new keys for binaries and precompiled headers."""
    import os
    import shutil

    from qnnflow.hls.cppsim import _source_hash, ap_headers_digest

    headers = tmp_path / "include"
    shutil.copytree(ap_include_dir(), headers)
    project, cxx, flags = generate(hw_graph("tfc_w1a1")[0], BOARD), compiler(), ["-O2", "-std=c++14"]
    keys = [_source_hash(project, flags, cxx, headers)]
    assert _source_hash(project, flags, cxx, headers) == keys[0]
    assert ap_headers_digest(headers) == ap_headers_digest(ap_include_dir())  # the bytes, not the path

    def edit(path, old, new):  # an edit of the same size, written a second later
        stat = path.stat()
        data = path.read_bytes()
        assert old in data and len(old) == len(new)
        path.write_bytes(data.replace(old, new, 1))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        keys.append(_source_hash(project, flags, cxx, headers))

    edit(headers / "ap_int.h", b"#include", b"#include")  # rewritten with the same bytes: same key
    assert keys[-1] == keys[0]
    edit(headers / "hls_stream.h", b"std::", b"std :")
    edit(headers / "etc" / "ap_private.h", b"(", b" ")
    assert keys[-2] != keys[0] and keys[-1] != keys[-2]


def test_missing_compiler(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-qnnflow")
    with pytest.raises(QnnflowError, match=r"'no-such-compiler-qnnflow' is not on PATH; install g\+\+ "
                                           r"\(apt-get install g\+\+\)"):
        compiler()


def test_missing_headers(monkeypatch):
    monkeypatch.delenv("XILINX_HLS", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(QnnflowError, match=r"pip install hls4ml==1.3.0"):
        ap_include_dir()


def test_xilinx_hls_is_preferred_and_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("XILINX_HLS", str(tmp_path))
    with pytest.raises(QnnflowError, match=r"XILINX_HLS=.*/ap_int.h does not exist"):
        ap_include_dir()
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "ap_int.h").write_text("")
    assert ap_include_dir() == tmp_path / "include"


def test_native_fast_path_on_the_kernels_corner_cases(cppsim_cache):
    """cppsim runs the ap_int code Vitis HLS compiles by default (test_kernels.py); native=True (QNNFLOW_NATIVE)
    computes on native integers instead and must give the same words where its shortcuts differ most: XNOR
    words of more than one 64-bit chunk and narrow ones, lane products bound to fabric and to DSP slices
    (test_native.py compares the two paths on the zoo)."""
    rng = np.random.default_rng(3)
    models = []
    for simd in (96, 8):
        attrs = dict(MW=96, MH=4, SIMD=simd, PE=2, inputDataType="BINARY", weightDataType="BINARY",
                     outputDataType="UINT7", accDataType="UINT7", binaryXnorMode=1, noActivation=1,
                     numInputVectors=[1, 2])
        models.append(node_model("MVAU", attrs, {1: rng.integers(0, 2, (96, 4))}))
    attrs = dict(MW=12, MH=6, SIMD=4, PE=3, inputDataType="INT4", weightDataType="INT3", outputDataType="UINT2",
                 accDataType="INT10", numInputVectors=[1, 2])
    thresholds = np.sort(rng.integers(-40, 40, (6, 3)), axis=1)
    weights = rng.integers(-4, 4, (12, 6))
    for res_type in ("lut", "dsp"):
        models.append(node_model("MVAU", attrs | {"resType": res_type}, {1: weights, 2: thresholds}))
    for result in cppsim_all(models, cppsim_cache, native=True):
        assert result.bit_exact and result.native, result.message()
        assert result.to_dict()["arithmetic"] == "native"
