"""The generated Vitis HLS / Vivado scripts: they parse in tclsh, their fixed parts are pinned by
golden files, and everything board-specific follows the board YAML, for every board.  No test
runs Vivado: none is installed here."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from qnnflow.flow.boards import BOARD_DIR, known_boards, load_board
from qnnflow.hls.board.spec import block_design
from qnnflow.hls.board.tcl import SCRIPTS, DesignParams, tcl_word, vivado_scripts

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
TCLSH = shutil.which("tclsh")
pytestmark = pytest.mark.skipif(TCLSH is None, reason="tclsh is missing: apt-get install -y tcl")

# Tcl's own commands come from tclsh itself; these are the tools' commands the scripts may use.
TOOL_COMMANDS = {
    # Vitis HLS
    "open_project", "set_top", "add_files", "open_solution", "set_part", "create_clock", "csynth_design",
    "export_design",
    # Vivado
    "create_project", "set_param", "get_board_parts", "set_property", "update_ip_catalog", "create_bd_design",
    "create_bd_cell", "apply_bd_automation", "get_ipdefs", "connect_bd_intf_net", "connect_bd_net",
    "get_bd_intf_pins", "get_bd_pins", "assign_bd_address", "get_bd_addr_spaces", "get_bd_addr_segs",
    "validate_bd_design", "save_bd_design", "make_wrapper", "get_files", "launch_runs", "wait_on_run", "get_runs",
    "open_run", "report_utilization", "report_timing_summary", "get_property", "read_verilog", "read_xdc",
    "synth_design", "current_project", "current_fileset", "get_ports", "update_compile_order",
}


def params(board_name: str) -> DesignParams:
    return DesignParams("golden_build", load_board(board_name), 4.0, "qnnflow_top",
                        (("MVAU_0_out", 2), ("MVAU_1_out", 32)))


def scripts(board_name: str, tmp_path: Path) -> dict[str, Path]:
    files = vivado_scripts(params(board_name), {"top.cpp": b"// top\n"})
    out = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        out[name] = tmp_path / name
    return out


def tcl(*args) -> subprocess.CompletedProcess:
    return subprocess.run([TCLSH, str(HERE / "tcl_check.tcl"), *map(str, args)], capture_output=True, text=True)


def tcl_builtins() -> set[str]:
    proc = subprocess.run([TCLSH], input="puts [info commands]\n", capture_output=True, text=True)
    return set(proc.stdout.split())


@pytest.mark.parametrize("board", known_boards())
def test_every_script_parses_and_calls_known_commands(board, tmp_path):
    builtins = tcl_builtins()
    for name, path in scripts(board, tmp_path).items():
        if not name.endswith(".tcl"):
            continue
        proc = tcl(path)
        assert proc.returncode == 0, proc.stderr
        text = path.read_text()
        procs = set(re.findall(r"^proc (\w+)", text, re.M))
        top_level = set(proc.stdout.split())
        nested = set()
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.lstrip().startswith("#"):
                continue
            nested |= set(re.findall(r"\[(\w+)", line))
            continued = i > 0 and lines[i - 1].endswith("\\")
            if not continued and re.match(r"\s+\w", line):
                nested.add(line.split()[0])
        unknown = (top_level | nested) - builtins - TOOL_COMMANDS - procs
        assert not unknown, f"{name}: unknown commands {sorted(unknown)}"
        defined = set(re.findall(r"^set (qnnflow_\w+) ", text, re.M))
        used = set(re.findall(r"\$\{?(qnnflow_\w+)", text))
        assert used <= defined, f"{name}: variables used but not set: {sorted(used - defined)}"


def test_run_sh_is_valid_bash_and_stops_without_the_tools(tmp_path):
    paths = scripts("pynq-z1", tmp_path)
    assert subprocess.run(["bash", "-n", str(paths["run.sh"])]).returncode == 0
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if shutil.which("vitis_hls", path=env["PATH"]):
        pytest.skip("Vitis HLS is installed here")
    proc = subprocess.run(["bash", str(paths["run.sh"])], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "vitis_hls is not on PATH" in proc.stderr
    bad = subprocess.run(["bash", str(paths["run.sh"]), "nonsense"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "usage" in bad.stderr


@pytest.mark.parametrize("board", known_boards())
def test_board_values_reach_the_scripts(board, tmp_path):
    """part, board part, clock, PS IP and preset, HP port and width, address base: as the board YAML says."""
    raw = yaml.safe_load((BOARD_DIR / f"{board}.yaml").read_text())
    viv = raw["vivado"]
    paths = scripts(board, tmp_path)
    values = {}
    for name in SCRIPTS:
        proc = tcl(paths[name], "header")
        assert proc.returncode == 0, proc.stderr
        values[name] = dict(line.split("\t", 1) for line in proc.stdout.splitlines())
    hls, bd, ooc = values["hls_synth.tcl"], values["make_project.tcl"], values["ooc_synth.tcl"]
    assert hls["qnnflow_part"] == bd["qnnflow_part"] == ooc["qnnflow_part"] == raw["part"]
    assert bd["qnnflow_board_part"] == raw["board_part"]
    assert float(hls["qnnflow_clock_ns"]) == float(ooc["qnnflow_clock_ns"]) == 4.0
    assert float(bd["qnnflow_clock_mhz"]) == 250.0
    assert bd["qnnflow_ps_ip"] == viv["ps_ip"] and viv["ps_ip"].endswith(":" + raw["ps"])
    assert bd["qnnflow_ps_preset_rule"] == viv["ps_preset"]["rule"]
    assert bd["qnnflow_ps_preset_config"] == viv["ps_preset"]["config"]
    assert bd["qnnflow_hp_port"] == viv["hp_port"]["name"]
    assert int(bd["qnnflow_hp_width"]) == viv["hp_port"]["width"]
    assert int(bd["qnnflow_axi_width"]) == raw["axi_width"]
    assert int(bd["qnnflow_address_base"], 16) == viv["address_base"]
    assert bd["qnnflow_clock_port"] == viv["clock_port"] and bd["qnnflow_reset_port"] == viv["reset_port"]
    assert bd["qnnflow_master_port"] == viv["master_port"]["name"]
    assert bd["qnnflow_ps_config"].replace("{", "").replace("}", "").split() == [str(x) for kv in sorted(viv["ps_config"].items()) for x in kv]
    assert hls["qnnflow_fifo_depths"].replace("{", "").replace("}", "").split() == ["MVAU_0_out=2", "MVAU_1_out=32"]


@pytest.mark.parametrize("board", ["pynq-z1", "ultra96"])
def test_golden_scripts(board, tmp_path):
    """The generated scripts, pinned.  After an intended change: QNNFLOW_UPDATE_GOLDEN=1 pytest tests/board."""
    for name, path in scripts(board, tmp_path).items():
        golden = GOLDEN / f"{board}.{name}"
        if os.environ.get("QNNFLOW_UPDATE_GOLDEN"):
            golden.write_bytes(path.read_bytes())
        assert path.read_text() == golden.read_text(), f"{name} for {board} differs from {golden}"


def test_block_design_essentials_are_in_the_fixed_part():
    """What the issue asks of the design, in the template every board shares."""
    text = (Path(block_design.__code__.co_filename).parent / "templates" / "make_project.tcl").read_text()
    for needed in ("xilinx.com:ip:axi_dma", "xilinx.com:ip:smartconnect", "xilinx.com:ip:proc_sys_reset",
                   "dma/M_AXIS_MM2S] [get_bd_intf_pins accel/in0]", "accel/out0] [get_bd_intf_pins dma/S_AXIS_S2MM]",
                   "mem_ic/M00_AXI] [get_bd_intf_pins ps/$qnnflow_hp_port]", "write_bitstream",
                   "CONFIG.c_m_axis_mm2s_tdata_width $qnnflow_axi_width", "board_part $qnnflow_board_part",
                   "CONFIG.$qnnflow_clock_config $qnnflow_clock_mhz", "hw_handoff"):
        assert needed in text, needed
    hls = (Path(block_design.__code__.co_filename).parent / "templates" / "hls_synth.tcl").read_text()
    assert "csynth_design" in hls and "export_design -format ip_catalog" in hls
    assert "-override_user_fifo_depth" not in hls  # the build's FIFO depths stand


def test_tcl_words_are_literal():
    assert tcl_word('make_external "FIXED_IO, DDR"') == '{make_external "FIXED_IO, DDR"}'
    for bad in ("a}b", "$x", "[exec rm]", "a\\b", "a\nb"):
        with pytest.raises(ValueError):
            tcl_word(bad)


def test_the_parse_check_fails_on_broken_tcl(tmp_path):
    broken = tmp_path / "broken.tcl"
    broken.write_text("set x 1\nif {$x} {\n    puts yes\n")
    proc = tcl(broken)
    assert proc.returncode == 1 and "incomplete script" in proc.stderr
