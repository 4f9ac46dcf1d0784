"""Report parsers on small fixtures written here in the tools' formats (tests/board/fixtures/):
Vitis HLS csynth.xml (top with RTLDesignHierarchy, and per-module reports), Vivado
report_utilization -hierarchical (Zynq-7000 after routing, UltraScale+ out of context) and
report_timing_summary (met and failing).  No tool ran to make them."""

from pathlib import Path

import pytest

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.board import reports

FIXTURES = Path(__file__).parent / "fixtures"
NODES = ["MVAU_0", "MVAU_1", "StreamingDataWidthConverter_0", "MVAU_2", "MVAU_3"]


def test_csynth_top_and_modules():
    top = reports.parse_csynth(FIXTURES / "csynth.xml")
    assert top.name == "qnnflow_top"
    assert (top.latency_min, top.latency_max, top.interval_min, top.interval_max) == (231, 231, 53, 53)
    assert top.target_clock_ns == 5.0 and top.estimated_clock_ns == 3.65
    assert top.resources == {"LUT": 33120, "FF": 21450, "BRAM18": 0, "DSP": 0}
    assert [i for i, _ in top.instances][:2] == ["repack_128u_784u_7u_784u_U0", "mvau_U0"]
    mvau = reports.parse_csynth(FIXTURES / "mvau_csynth.xml")
    assert (mvau.name, mvau.interval_min, mvau.latency_max, mvau.resources["LUT"]) == ("mvau", 50, 53, 27310)


def test_hls_synth_report_attributes_kernels_in_call_order():
    report = reports.hls_synth_report(FIXTURES, "qnnflow_top", NODES, {"MVAU_0": 49, "MVAU_3": 40})
    assert report["kernels_attributed"]
    by_node = {k["node"]: k for k in report["kernels"]}
    assert by_node["MVAU_0"]["instance"] == "mvau_U0" and by_node["MVAU_0"]["ii_min"] == 50
    assert by_node["MVAU_0"]["estimated_cycles"] == 49
    assert by_node["StreamingDataWidthConverter_0"]["module"] == "dwc"
    assert by_node["MVAU_3"]["latency_min"] == 44


def test_kernels_are_not_attributed_when_the_hierarchy_does_not_fit():
    report = reports.hls_synth_report(FIXTURES, "qnnflow_top", NODES[:3], {})
    assert not report["kernels_attributed"]
    assert all(k["instance"] is None for k in report["kernels"])


def test_ooc_utilization_per_node():
    rows = reports.parse_utilization((FIXTURES / "ooc_utilization_hier.rpt").read_text())
    assert rows[0].instance == "qnnflow_top" and rows[0].depth == 0
    assert rows[0].resources == {"LUT": 31840, "FF": 13870, "BRAM18": 3, "DSP": 2}  # RAMB36 counts as two
    instances = {"MVAU_0": "mvau_U0", "MVAU_1": "mvau_1_U0", "StreamingDataWidthConverter_0": "dwc_U0"}
    result = reports.post_synth_resources(rows, "qnnflow_top", instances, "ooc")
    assert result["accelerator"]["LUT"] == 31840
    assert result["nodes"]["MVAU_0"] == {"LUT": 26080, "FF": 8230, "BRAM18": 2, "DSP": 2, "instance": "mvau_U0"}
    assert result["nodes"]["StreamingDataWidthConverter_0"]["LUT"] == 133
    assert "weights_U" not in {v["instance"] for v in result["nodes"].values()}  # one level below only


def test_routed_block_design_utilization_finds_the_accelerator():
    rows = reports.parse_utilization((FIXTURES / "utilization_hier.rpt").read_text())
    result = reports.post_synth_resources(rows, "qnnflow_top", {"MVAU_0": "mvau_U0"}, "routed")
    assert result["design"] == {"LUT": 27450, "FF": 19870, "BRAM18": 9, "DSP": 4}  # DSP48 Blocks, 3.5 RAMB36
    assert result["accelerator"]["LUT"] == 24012
    assert result["nodes"]["MVAU_0"]["DSP"] == 4


def test_timing_met_and_failing():
    met = reports.parse_timing_summary((FIXTURES / "timing_summary.rpt").read_text(), 5.0)
    assert met["met"] and met["wns_ns"] == 0.842 and met["clock"] == "ap_clk"
    assert met["fmax_mhz"] == pytest.approx(1000 / (5.0 - 0.842), abs=1e-3)
    failing = reports.parse_timing_summary((FIXTURES / "timing_summary_failing.rpt").read_text(), 10.0)
    assert not failing["met"] and failing["tns_ns"] == -310.442 and failing["clock"] == "clk_fpga_0"
    assert failing["fmax_mhz"] == pytest.approx(1000 / 11.25, abs=1e-3)


def test_malformed_reports_name_the_file(tmp_path):
    bad = tmp_path / "csynth.xml"
    bad.write_text("<profile><UserAssignments/></profile>")
    with pytest.raises(QnnflowError, match="csynth.xml: no UserAssignments"):
        reports.parse_csynth(bad)
    bad.write_text("<profile>")
    with pytest.raises(QnnflowError, match="csynth.xml: not a readable csynth XML"):
        reports.parse_csynth(bad)
    with pytest.raises(QnnflowError, match="util.rpt: no 'Instance"):
        reports.parse_utilization("nothing here", "util.rpt")
    with pytest.raises(QnnflowError, match="t.rpt: no 'Design Timing Summary'"):
        reports.parse_timing_summary("nothing", 5.0, "t.rpt")


def test_side_by_side_prints_estimate_and_real():
    table = reports.side_by_side({"MVAU_0": {"LUT": 28992, "BRAM18": 0, "DSP": 0}},
                                 {"MVAU_0": {"LUT": 26080, "FF": 8230, "BRAM18": 2, "DSP": 2}}, "t")
    row = table.splitlines()[2]
    assert row.split()[:3] == ["MVAU_0", "28,992", "26,080"] and "8,230" in row


def test_cycles_side_by_side():
    report = reports.hls_synth_report(FIXTURES, "qnnflow_top", NODES, {"MVAU_0": 49})
    rows = reports.cycles_side_by_side(report).splitlines()
    assert rows[2].split() == ["MVAU_0", "49", "50", "53"] and rows[3].split() == ["MVAU_1", "-", "33", "36"]
