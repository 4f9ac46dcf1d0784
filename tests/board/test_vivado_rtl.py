"""The Vivado flow of the RTL back end: OUT/rtl's qnnflow_top in the block design as a module reference,
with no Vitis HLS.

No Vivado runs here.  The scripts are checked by what does run: tclsh executes them with each Vivado
command replaced by a stand-in that records its arguments (tests/board/vivado_stub.tcl; Tcl's own file
handling runs for real), Yosys and Verilator read the sources the scripts prepare, from another
directory, with the wrapper the block design instantiates."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.board_steps import vivado_step
from qnnflow.flow.config import load_config
from qnnflow.flow.runner import StepContext
from qnnflow.hls.board import rtl_wrapper
from qnnflow.hls.board.tcl import RTL_SCRIPTS, DesignParams, vivado_scripts
from qnnflow.hls.codegen.rtl import TOP, generate_rtl
from qnnflow.hls.rtl_tools import YOSYS, tool, yosys_env
from tests.board.test_tcl import TOOL_COMMANDS
from tests.hls.backend.helpers import BOARD, chain_model, random_ints

HERE = Path(__file__).parent
TCLSH = shutil.which("tclsh")
pytestmark = pytest.mark.skipif(TCLSH is None, reason="tclsh is missing: apt-get install -y tcl")


def two_mvaus():
    """Two binary MVAUs with thresholds: four memory files, ports adapters on both sides."""
    rng = np.random.default_rng(3)
    attrs = dict(MW=16, MH=8, SIMD=4, PE=2, inputDataType="BINARY", weightDataType="BINARY",
                 outputDataType="BINARY", accDataType="UINT5", binaryXnorMode=1)
    w0, w1 = random_ints(rng, "BINARY", (16, 16)), random_ints(rng, "BINARY", (16, 8))
    t0, t1 = np.full((16, 1), 8, np.float32), np.full((8, 1), 8, np.float32)
    return chain_model([("MVAU", dict(attrs, MH=16, PE=4), {1: w0, 2: t0}), ("MVAU", attrs, {1: w1, 2: t1})])


def write(directory: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_bytes(data)


@pytest.fixture
def out(tmp_path):
    """OUT/rtl as rtl_codegen writes it and OUT/vivado as the vivado step writes it for backend rtl."""
    root = tmp_path / "out dir"  # a space in the path, as a user's may have
    project = generate_rtl(two_mvaus(), BOARD)
    write(root / "rtl", project.files)
    write(root / "vivado", vivado_scripts(DesignParams("b", BOARD, 10.0, TOP, (), "rtl"), project.files))
    return root


def tcl_list(text: str) -> list[str]:
    """The elements of a Tcl list of bare or brace-quoted words (what these scripts' calls hold: no backslashes
    or double quotes)."""
    words, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
        elif text[i] == "{":
            depth, j = 1, i + 1
            while depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            words.append(text[i + 1:j - 1])
            i = j
        else:
            j = i
            while j < len(text) and not text[j].isspace():
                j += 1
            words.append(text[i:j])
            i = j
    return words


def stub_run(script: Path, cwd: Path) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """The script run by tclsh against recording stand-ins for Vivado's commands: the calls, one list each."""
    record = cwd / "calls.txt"
    proc = subprocess.run([TCLSH, str(HERE / "vivado_stub.tcl"), str(script), str(record), BOARD["board_part"]],
                          capture_output=True, text=True, cwd=cwd)
    return proc, [tcl_list(line) for line in record.read_text().splitlines()]


def rtl_files(root: Path, suffix: str) -> set[str]:
    return {p.relative_to(root / "rtl").as_posix() for p in (root / "rtl").rglob(f"*{suffix}")}


def test_no_vitis_hls_in_the_rtl_flow(out, tmp_path):
    vivado = out / "vivado"
    names = {p.name for p in vivado.iterdir()}
    assert set(RTL_SCRIPTS) <= names and "hls_synth.tcl" not in names and rtl_wrapper.FILE in names
    for path in vivado.iterdir():
        assert "vitis_hls" not in path.read_text() and "hls_project" not in path.read_text(), path.name
    # run.sh asks for Vivado alone
    if shutil.which("vivado", path="/usr/bin:/bin"):
        pytest.skip("Vivado is installed here")
    proc = subprocess.run(["bash", str(vivado / "run.sh")], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 2 and "run.sh: vivado is not on PATH" in proc.stderr


def test_block_design_adds_every_rtl_file_and_the_module_reference(out, tmp_path):
    proc, calls = stub_run(out / "vivado" / "make_project.tcl", tmp_path)
    assert proc.returncode == 0 and "stopped at launch_runs" in proc.stdout, proc.stderr
    assert {c[0] for c in calls} <= TOOL_COMMANDS  # Vivado's commands, no misspelt one
    added = [c for c in calls if c[0] == "add_files" and "sources_1" in c]
    assert len(added) == 1
    paths = [Path(p) for p in tcl_list(added[0][-1])]
    copies = out / "vivado" / "rtl_sources"
    assert {p.relative_to(copies).as_posix() for p in paths if p.suffix == ".v" and copies in p.parents} == \
        rtl_files(out, ".v")
    assert {p.relative_to(out / "rtl").as_posix() for p in paths if p.suffix == ".mem"} == rtl_files(out, ".mem")
    assert out / "vivado" / rtl_wrapper.FILE in paths and all(p.is_file() for p in paths)
    assert ["create_bd_cell", "-type", "module", "-reference", rtl_wrapper.MODULE, "accel"] in calls
    assert not any(c[0] == "update_ip_catalog" or "ip_repo_paths" in c for c in calls)  # no HLS IP repository
    nets = [c[1:] for c in calls if c[0] in ("connect_bd_intf_net", "connect_bd_net")]
    accel_pins = {p.split("/", 1)[1] for net in nets for p in net if p.startswith("accel/")}
    assert accel_pins == {"in0", "out0", "ap_clk", "ap_rst_n"}
    # those are the wrapper's interfaces and signals, as its Xilinx attributes declare them
    wrapper = (out / "vivado" / rtl_wrapper.FILE).read_text()
    declared = set(re.findall(r'X_INTERFACE_INFO = "\S+ (\w+) \w+"', wrapper))
    assert accel_pins == declared
    assert ["connect_bd_intf_net", "dma/M_AXIS_MM2S", "accel/in0"] in calls
    assert ["connect_bd_intf_net", "accel/out0", "dma/S_AXIS_S2MM"] in calls


def test_ooc_synthesis_reads_the_prepared_rtl_and_its_top(out, tmp_path):
    proc, calls = stub_run(out / "vivado" / "ooc_synth.tcl", tmp_path)
    assert proc.returncode == 0 and "stopped at synth_design" in proc.stdout, proc.stderr
    assert {c[0] for c in calls} <= TOOL_COMMANDS
    read = next(c for c in calls if c[0] == "read_verilog")
    paths = [Path(p) for p in tcl_list(read[1])]
    copies = out / "vivado" / "rtl_sources"
    assert {p.relative_to(copies).as_posix() for p in paths} == rtl_files(out, ".v")
    synth = next(c for c in calls if c[0] == "synth_design")
    assert synth[synth.index("-top") + 1] == TOP and "out_of_context" in synth


def prepare(out: Path, cwd: Path) -> subprocess.CompletedProcess:
    """rtl_sources.tcl run by tclsh alone: it is plain Tcl, no Vivado command in it."""
    return subprocess.run([TCLSH, str(out / "vivado" / "rtl_sources.tcl")], capture_output=True, text=True, cwd=cwd)


def test_prepared_sources_find_their_memories_from_anywhere(out, tmp_path):
    """Yosys, run in an unrelated directory as Vivado's synthesis runs, reads every memory file through the
    prepared sources and elaborates the wrapper around qnnflow_top; the sources as generated would not."""
    elsewhere = tmp_path / "run_dir"
    elsewhere.mkdir()
    assert prepare(out, elsewhere).returncode == 0
    copies = sorted((out / "vivado" / "rtl_sources").rglob("*.v"))
    assert not any('"mem/' in p.read_text() for p in copies)

    def yosys(sources):
        files = " ".join(f'"{s}"' for s in sources)
        script = f"read_verilog -defer {files}; hierarchy -check -top {rtl_wrapper.MODULE}; proc"
        # both directories seen at their own paths, as a native tool would see them
        env = yosys_env({str(d): d for d in (out, elsewhere)})
        return subprocess.run([tool(YOSYS, "this test"), "-q", "-p", script], capture_output=True, text=True,
                              cwd=elsewhere, env=env)

    assert yosys([*copies, out / "vivado" / rtl_wrapper.FILE]).returncode == 0
    as_generated = sorted((out / "rtl").rglob("*.v"))
    failed = yosys([*as_generated, out / "vivado" / rtl_wrapper.FILE])
    assert failed.returncode != 0 and "for \\$readmem" in failed.stdout + failed.stderr


@pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator is missing: apt-get install verilator")
def test_wrapper_ports_match_the_top(out, tmp_path):
    """Verilator on the wrapper and the RTL: no port of qnnflow_top left open or of another width."""
    sources = [*sorted((out / "rtl").rglob("*.v")), out / "vivado" / rtl_wrapper.FILE]

    def lint(files):
        return subprocess.run(["verilator", "--lint-only", "-Wall", "-Wno-fatal", "--top-module", rtl_wrapper.MODULE,
                               *map(str, files)], capture_output=True, text=True, cwd=tmp_path)

    proc = lint(sources)
    assert proc.returncode == 0, proc.stderr
    assert rtl_wrapper.FILE not in proc.stderr  # the library's own warnings aside, none in the wrapper
    narrow = tmp_path / rtl_wrapper.FILE
    narrow.write_text(sources[-1].read_text().replace("[63:0] in0_tdata", "[31:0] in0_tdata"))
    assert "WIDTH" in lint([*sources[:-1], narrow]).stderr  # the check sees a mismatch


def test_missing_memory_file_is_one_line(out, tmp_path):
    (out / "rtl" / "mem" / "MVAU_1_weights.mem").unlink()
    proc = prepare(out, tmp_path)
    assert proc.returncode != 0
    first = proc.stderr.splitlines()[0]
    assert "MVAU_1_weights.mem is missing" in first and "rtl_codegen" in first


def step_context(tmp_path, backend: str) -> StepContext:
    build = tmp_path / "b.yaml"
    build.write_text(f"model: tfc_w1a1\nboard: pynq-z1\nbackend: {backend}\n")
    return StepContext(load_config(build), tmp_path / "OUT", "vivado", lambda line: None)


@pytest.mark.parametrize("backend", ["rtl", "both"])
def test_vivado_step_with_the_rtl_backend(tmp_path, monkeypatch, backend):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if shutil.which("vivado"):
        pytest.skip("Vivado is installed here")
    model = two_mvaus()
    ctx = step_context(tmp_path, backend)
    with pytest.raises(QnnflowError, match=r"OUT/rtl/.* is missing or not this graph's; put the 'rtl_codegen' step"):
        vivado_step(model, ctx)
    project = generate_rtl(model, ctx.board)
    write(ctx.out_dir / "rtl", project.files)
    (ctx.out_dir / "vivado").mkdir(parents=True)
    (ctx.out_dir / "vivado" / "hls_synth.tcl").write_text("# an HLS build's, earlier\n")
    vivado_step(model, ctx)
    assert ctx.skipped.startswith("needs Vivado (the RTL top needs no Vitis HLS) (vivado not on PATH)")
    written = {Path(rel).name for rel in ctx.artifacts}
    assert written == {p.name for p in (ctx.out_dir / "vivado").iterdir()}  # the HLS script is gone
    assert "rtl_sources.tcl" in written and "hls_synth.tcl" not in written


def test_reports_of_a_run_are_parsed_per_rtl_unit(tmp_path, monkeypatch):
    """Fixture reports (tests/board/fixtures/rtl_ooc_*, written in Vivado's format: no Vivado ran) placed where
    run.sh leaves them and stamped with this design's digest: the nodes are found under qnnflow_top by their
    unit instance names, and no Vitis HLS report is asked for."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    model = two_mvaus()
    ctx = step_context(tmp_path, "rtl")
    write(ctx.out_dir / "rtl", generate_rtl(model, ctx.board).files)
    vivado_step(model, ctx)  # writes the scripts (skipped: no Vivado)
    reports = ctx.out_dir / "vivado" / "reports"
    reports.mkdir()
    shutil.copy(HERE / "fixtures" / "rtl_ooc_utilization_hier.rpt", reports / "ooc_utilization_hier.rpt")
    shutil.copy(HERE / "fixtures" / "timing_summary.rpt", reports / "ooc_timing_summary.rpt")
    shutil.copy(ctx.out_dir / "vivado" / "design.sha256", reports / "ooc.sha256")
    # and a synth step's report (fixture figures: no Yosys ran for this test)
    yosys = {"nodes": {"MVAU_0": {"LUT": 301, "FF": 302, "BRAM18": 0, "DSP": 0}}, "total": {"LUT": 1401, "FF": 1402,
                                                                                         "BRAM18": 4, "DSP": 0}}
    (ctx.out_dir / "report").mkdir()
    (ctx.out_dir / "report" / "post_synth_yosys.json").write_text(json.dumps(yosys))
    printed = []
    ctx = StepContext(ctx.cfg, ctx.out_dir, "vivado", printed.append)
    vivado_step(model, ctx)
    table = next(t for t in printed if t.startswith("resources, Yosys and Vivado (out-of-context synthesis)"))
    accelerator = next(line for line in table.splitlines() if line.startswith("accelerator")).split()
    assert accelerator[1:5] == ["1,401", "1,580", "1,402", "1,210"]  # Yosys beside Vivado, LUT and FF
    resources = json.loads((ctx.out_dir / "report" / "post_synth_resources.json").read_text())
    assert resources["accelerator_from"] == "rtl" and resources["flow"] == "out-of-context synthesis"
    assert resources["accelerator"]["LUT"] == 1580
    assert {n: r["LUT"] for n, r in resources["nodes"].items()} == {"MVAU_0": 402, "MVAU_1": 233}
    assert resources["nodes"]["MVAU_0"]["instance"] == "MVAU_0" and resources["nodes"]["MVAU_1"]["BRAM18"] == 2
    assert not (ctx.out_dir / "report" / "hls_synth.json").exists()
