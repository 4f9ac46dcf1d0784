"""CNV-shaped networks through ``backend: rtl`` (sliding windows, MVAUs, max pools, label select): FIFO sizing,
the RTL top and a bit-exact Verilator simulation whose measured cycles per image meet the estimate."""

from __future__ import annotations

import json

import pytest

from qnnflow.flow.config import load_config
from qnnflow.flow.runner import run_build


def build_rtl(tmp_path, model: str, images: int) -> tuple:
    """The build with ``backend: rtl`` up to rtlsim (fifo_size, rtl_codegen, rtlsim; no synthesis)."""
    path = tmp_path / "build.yaml"
    path.write_text(f"model: {model}\nboard: pynq-z1\nbackend: rtl\nweights: random\ngolden: {{count: {images}}}\n")
    out = tmp_path / "out"
    log = run_build(load_config(path), out, to_step="rtlsim", progress=lambda line: None)
    return out, log


def check_cnv(out, log, images: int) -> None:
    steps = [s["name"] for s in log["steps"]]
    assert steps[-3:] == ["fifo_size", "rtl_codegen", "rtlsim"]
    result = json.loads((out / "rtlsim" / "result.json").read_text())
    assert result["bit_exact"] and result["images"] >= images
    kinds = {u["op_type"] for u in json.loads((out / "rtl" / "manifest.json").read_text())["units"]}
    assert {"ConvolutionInputGenerator", "StreamingMaxPool", "MVAU"} <= kinds
    perf = json.loads((out / "report" / "rtlsim_performance.json").read_text())
    estimate = perf["estimate"]["cycles_per_image"]
    # with the FIFOs fifo_size measured, the slowest node's cycle model is the design's throughput
    assert abs(perf["cycles_per_image"] - estimate) <= 0.05 * estimate, (perf["cycles_per_image"], estimate)
    fifos = json.loads((out / "report" / "fifo_depths.json").read_text())
    assert fifos["cycles_per_image"]["sized"] == perf["cycles_per_image"]


def test_small_cnv_w1a1_rtl(tmp_path):
    """SmallCNV (14x14 images: four 3x3 convolutions, a max pool, two dense layers) at the board's folding."""
    check_cnv(*build_rtl(tmp_path, "tests.transforms.prune_nets:small_cnv_w1a1", 4), images=4)


@pytest.mark.slow
def test_cnv_w1a1_rtl_100_images(tmp_path):
    """CNV w1a1 folded for Pynq-Z1, 100 golden images through rtlsim: minutes (Verilator build and run)."""
    check_cnv(*build_rtl(tmp_path, "cnv_w1a1", 100), images=100)
