"""The small MobileNet (tests/models/test_mobilenet.py: padding, sliding windows in both modes, VVAUs, MVAUs,
the global pool) through ``backend: rtl``: FIFO sizing, the RTL top and a bit-exact Verilator simulation whose
measured cycles per image meet the estimate.  About 50 s, most of it fifo_size verilating the design twice."""

from __future__ import annotations

import json

from tests.hls.rtl.test_cnv_rtl import build_rtl


def test_small_mobilenet_w4a4_rtl(tmp_path):
    out, log = build_rtl(tmp_path, "tests.models.test_mobilenet:small_mobilenet", 3)
    assert [s["name"] for s in log["steps"]][-3:] == ["fifo_size", "rtl_codegen", "rtlsim"]
    result = json.loads((out / "rtlsim" / "result.json").read_text())
    assert result["bit_exact"] and result["images"] >= 3
    kinds = [u["op_type"] for u in json.loads((out / "rtl" / "manifest.json").read_text())["units"]]
    assert kinds.count("VVAU") == 2 and kinds.count("GlobalAccPool") == 1
    perf = json.loads((out / "report" / "rtlsim_performance.json").read_text())
    estimate = perf["estimate"]["cycles_per_image"]
    assert abs(perf["cycles_per_image"] - estimate) <= 0.05 * estimate, (perf["cycles_per_image"], estimate)
