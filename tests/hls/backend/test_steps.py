"""The hls_codegen and cppsim build steps, run by the build runner."""

from __future__ import annotations

import json

import pytest

import qnnflow.hls.cppsim as cppsim_module
from qnnflow.flow.config import load_config
from qnnflow.base.errors import QnnflowError
from qnnflow.flow.runner import run_build
from qnnflow.hls.codegen.project import generate
from tests.hls.backend.helpers import BOARD

STEPS = "[export, tidy, streamline, to_hw, hls_codegen, cppsim]"


def build(tmp_path, out, steps=STEPS, outputs="[qonnx, hls, cppsim]"):
    path = tmp_path / "tfc.yaml"
    path.write_text(f"model: tfc_w1a1\nboard: pynq-z1\nsteps: {steps}\noutputs: {outputs}\ngolden: {{count: 3}}\n")
    lines = []
    log = run_build(load_config(path), out, progress=lines.append)
    return log, lines


def test_steps_write_hls_project_and_cppsim_result(tmp_path):
    out = tmp_path / "out"
    log, _ = build(tmp_path, out)
    assert log["outputs"]["hls"] == "hls/top.cpp" and log["outputs"]["cppsim"] == "cppsim/result.json"
    for rel in ("top.cpp", "top.h", "testbench.cpp", "manifest.json", "params/MVAU_0.h", "include/streams.hpp",
                "include/mvau.hpp"):
        assert (out / "hls" / rel).is_file(), rel
    result = json.loads((out / "cppsim" / "result.json").read_text())
    assert result["bit_exact"] is True and result["images"] == 3
    assert result["arithmetic"] == "ap_int"  # the build checks the code Vitis HLS compiles, not the fast path
    assert result["compile_seconds"] > 0 and result["run_seconds"] > 0 and result["cached"] is False
    steps = {s["name"]: s for s in log["steps"]}
    assert any("bit-exact on 3 images" in n for n in steps["cppsim"]["notes"])
    assert any("4 kernels in qnnflow_top" in n for n in steps["hls_codegen"]["notes"])
    # the build's files are the generator's files, byte for byte
    from qonnx.core.modelwrapper import ModelWrapper

    files = generate(ModelWrapper(str(out / "03_to_hw.onnx")), BOARD).files  # the build's board
    assert all((out / "hls" / rel).read_bytes() == data for rel, data in files.items())

    # a second build elsewhere gives the same files; a forced cppsim rerun reuses the binary
    other = tmp_path / "other"
    build(tmp_path, other, steps="[export, tidy, streamline, to_hw, hls_codegen]", outputs="[hls]")
    assert sorted(p.relative_to(other / "hls") for p in (other / "hls").rglob("*")) == \
        sorted(p.relative_to(out / "hls") for p in (out / "hls").rglob("*"))
    assert all((other / "hls" / rel).read_bytes() == data for rel, data in files.items())
    (out / ".qnnflow" / "state.json").unlink()
    build(tmp_path, out)
    assert json.loads((out / "cppsim" / "result.json").read_text())["cached"] is True


def test_codegen_removes_files_of_an_earlier_run(tmp_path):
    out = tmp_path / "out"
    stale = out / "hls" / "params" / "MVAU_9.h"
    stale.parent.mkdir(parents=True)
    stale.write_text("// from an earlier graph")
    build(tmp_path, out, steps="[export, tidy, streamline, to_hw, hls_codegen]", outputs="[hls]")
    assert not stale.exists() and (out / "hls" / "params" / "MVAU_0.h").is_file()


def test_cppsim_step_fails_naming_the_first_differing_layer(tmp_path, monkeypatch):
    def broken(model, board):
        project = generate(model, board)
        text = project.files["params/MVAU_2.h"].decode().replace("ACT_VAL = 0,", "ACT_VAL = 1,")
        project.files["params/MVAU_2.h"] = text.encode()
        return project

    monkeypatch.setattr(cppsim_module, "generate", broken)
    out = tmp_path / "out"
    with pytest.raises(QnnflowError, match=r"step 'cppsim': C\+\+ simulation output differs .* on image 0; "
                                           r"first differing layer: 'MVAU_2' \(MVAU\)") as info:
        build(tmp_path, out)
    assert "\n" not in str(info.value)
    result = json.loads((out / "cppsim" / "result.json").read_text())
    assert result["bit_exact"] is False and result["mismatch"]["node"] == "MVAU_2"
