"""The whole build to a deployment package, here without Vivado: `make build MODEL=tfc_w1a1
BOARD=ultra96` runs every step, the vivado step is skipped (and says how to run its scripts),
the driver reproduces the verified graph from the C++ simulation's output streams, and
OUT/deploy/*.zip exists.  Reports that a Vivado run would leave are stood in for by the
fixtures in tests/board/fixtures/, clearly as fixtures: no test pretends that Vivado ran."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.base.errors import QnnflowError
from qnnflow.base.execute import execute_batch
from qnnflow.flow.boards import load_board
from qnnflow.flow.cli import main
from qnnflow.hls.board.deploy import package_files
from qnnflow.hls.board.driver import check_host_program, host_program
from qnnflow.hls.board.pynq_driver import DmaLink, HostProgram
from qnnflow.hls.codegen.project import generate
from qnnflow.hls.cppsim import region_input
from qnnflow.models.export import Golden

from tests.flow.conftest import REPO

FIXTURES = Path(__file__).parent / "fixtures"
PACKAGE = "tfc_w1a1-ultra96"
BLOCKED = ("qonnx", "onnx", "onnxruntime", "torch", "brevitas", "pynq")

pytestmark = pytest.mark.skipif(shutil.which("vivado") or shutil.which("vitis_hls"),
                                reason="these tests check the build on a machine without the Xilinx tools")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("board") / "tfc"
    proc = subprocess.run(["make", "build", "MODEL=tfc_w1a1", "BOARD=ultra96", f"OUT={out}",
                           f"BIN={Path(sys.executable).parent}"], cwd=REPO, capture_output=True, text=True)
    return out, proc


def _last_model(out: Path) -> ModelWrapper:
    log = json.loads((out / "build_log.json").read_text())
    return ModelWrapper(str(out / log["steps"][-1]["model"]))


def _copy(built, tmp_path) -> Path:
    out = tmp_path / "tfc"
    shutil.copytree(built[0], out)
    return out


def test_make_build_runs_every_step_vivado_skipped_and_zips_the_package(built):
    out, proc = built
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    log = json.loads((out / "build_log.json").read_text())
    names = [s["name"] for s in log["steps"]]
    assert names[-4:] == ["cppsim", "vivado", "driver", "deploy"] and log["status"] == "ok"
    status = {s["name"]: s["status"] for s in log["steps"]}
    assert status.pop("vivado") == "skipped" and set(status.values()) == {"done"}
    skip_lines = [line for line in proc.stdout.splitlines() if "skipped" in line]
    assert len(skip_lines) == 1 and "Vitis HLS and Vivado" in skip_lines[0]
    assert f"bash {out / 'vivado' / 'run.sh'} bitstream" in skip_lines[0]
    for script in ("hls_synth.tcl", "make_project.tcl", "ooc_synth.tcl", "run.sh", "design.sha256"):
        assert (out / "vivado" / script).is_file()
    zips = list((out / "deploy").glob("*.zip"))
    assert [z.name for z in zips] == [f"{PACKAGE}.zip"]
    names = set(zipfile.ZipFile(zips[0]).namelist())
    for rel in ("README.md", "classify_golden.py", "golden.npz", "driver/qnnflow_driver.py", "driver/accel.json",
                "driver/host_params.npz", "driver/lib/qnnflow/base/streams.py", "driver/lib/qnnflow/base/hostops.py"):
        assert f"{PACKAGE}/{rel}" in names
    assert not any(n.endswith(".bit") for n in names)
    assert log["outputs"]["deploy"] == f"deploy/{PACKAGE}.zip"


def test_the_package_carries_qnnflow_modules_as_they_are(built):
    lib = built[0] / "deploy" / PACKAGE / "driver" / "lib" / "qnnflow" / "base"
    for name in ("streams.py", "hostops.py", "compare.py", "values.py", "errors.py", "__init__.py"):
        assert (lib / name).read_bytes() == (REPO / "base" / name).read_bytes()


def _run_blocked(script: str, cwd: Path, *args) -> subprocess.CompletedProcess:
    """Run a Python file with qonnx, onnx, torch and pynq unimportable, as on a PYNQ board."""
    blocker = ("import sys, runpy\n"
               f"for name in {BLOCKED!r}: sys.modules[name] = None\n"
               f"sys.argv = [{script!r}, *{list(map(str, args))!r}]\n"
               f"runpy.run_path({script!r}, run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", blocker], cwd=cwd, capture_output=True, text=True)


def test_example_check_runs_on_the_cpp_simulation(built):
    out = built[0]
    package = out / "deploy" / PACKAGE
    testbench = next((out / "cppsim" / "bin").glob("*/testbench"))
    proc = _run_blocked("classify_golden.py", package, "--testbench", testbench)
    assert proc.returncode == 0, proc.stderr
    assert "8 golden inputs on the C++ simulation: outputs match golden.npz" in proc.stdout
    where = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'driver'); import qnnflow_driver, "
                            "qnnflow.base.streams as s; print(s.__file__)"], cwd=package, capture_output=True,
                           text=True)
    assert where.stdout.strip() == str(package / "driver" / "lib" / "qnnflow" / "base" / "streams.py")


def test_example_check_fails_when_outputs_differ(built, tmp_path):
    package = tmp_path / PACKAGE
    shutil.copytree(built[0] / "deploy" / PACKAGE, package)
    with np.load(package / "golden.npz") as g:
        data = dict(g)
    data["output"] = data["output"] + 0.5
    np.savez(package / "golden.npz", **data)
    testbench = next((built[0] / "cppsim" / "bin").glob("*/testbench"))
    proc = _run_blocked("classify_golden.py", package, "--testbench", testbench)
    assert proc.returncode == 1 and "DIFFER" in proc.stdout


def test_driver_head_packing_and_tail_reproduce_the_verified_graph(built):
    out = built[0]
    model = _last_model(out)
    golden = Golden.load(out / "golden.npz")
    project = generate(model, load_board("ultra96"))
    program = HostProgram.load(out / "driver")
    x = program.head(golden.input)
    np.testing.assert_array_equal(x, region_input(model, project.region, golden.input))
    assert program.pack(x).tobytes() == (out / "cppsim" / "run" / "input.bin").read_bytes()
    outputs = program.tail(program.unpack(np.frombuffer((out / "cppsim" / "run" / "output.bin").read_bytes(),
                                                        np.uint8)))
    np.testing.assert_array_equal(outputs, execute_batch(model, golden.input))
    labels = np.argsort(-outputs, axis=-1, kind="stable")[:, :1]
    np.testing.assert_array_equal(labels, np.argsort(-golden.output, axis=-1, kind="stable")[:, :1])


def test_the_driver_check_fails_on_a_wrong_tail(built):
    out = built[0]
    model = _last_model(out)
    project = generate(model, load_board("ultra96"))
    config, params = host_program(model, project)
    tail_param = next(i for n in config["tail"] for i in n["inputs"] if i in params)
    params[tail_param] = params[tail_param] * 1.5
    with pytest.raises(QnnflowError, match="do not reproduce the verified graph's outputs"):
        check_host_program(model, project, config, params, Golden.load(out / "golden.npz").input,
                           out / "cppsim" / "run")


def test_the_driver_needs_pynq_only_for_the_board(built):
    try:
        import pynq  # noqa: F401
    except ImportError:
        program = HostProgram.load(built[0] / "driver")
        with pytest.raises(ImportError, match="pynq"):
            DmaLink(built[0] / "driver" / "qnnflow.bit", program)
    else:
        pytest.skip("pynq is installed here")


def test_rerun_keeps_vivado_skipped_until_the_tools_appear_and_rebuilds_the_same_zip(built, tmp_path, monkeypatch):
    out = _copy(built, tmp_path)
    before = (out / "deploy" / f"{PACKAGE}.zip").read_bytes()
    assert main(["build", str(REPO / "builds" / "tfc_w1a1.yaml"), "--board", "ultra96", "--out", str(out)]) == 0
    log = json.loads((out / "build_log.json").read_text())
    vivado = next(s for s in log["steps"] if s["name"] == "vivado")
    assert vivado["status"] == "skipped" and vivado["cached"]  # the same tools are missing: nothing to redo
    fake_bin = tmp_path / "bin"  # a vivado on PATH (it is not run: vitis_hls is still missing)
    fake_bin.mkdir()
    (fake_bin / "vivado").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "vivado").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    assert main(["build", str(REPO / "builds" / "tfc_w1a1.yaml"), "--board", "ultra96", "--out", str(out)]) == 0
    log = json.loads((out / "build_log.json").read_text())
    vivado = next(s for s in log["steps"] if s["name"] == "vivado")
    assert vivado["status"] == "skipped" and not vivado["cached"]  # the tools found changed: retried
    assert next(s for s in log["steps"] if s["name"] == "cppsim")["cached"]
    assert (out / "deploy" / f"{PACKAGE}.zip").read_bytes() == before


def test_ooc_synth_requested_without_tools_still_exits_0(built, tmp_path, capsys):
    out = _copy(built, tmp_path)
    code = main(["build", str(REPO / "builds" / "tfc_w1a1.yaml"), "--board", "ultra96", "--out", str(out),
                 "--from", "vivado", "--set", "outputs=[ooc_synth, deploy]"])
    assert code == 0
    assert f"bash {out / 'vivado' / 'run.sh'} ooc'" in capsys.readouterr().out


def test_reports_of_a_run_of_the_current_scripts_are_parsed(built, tmp_path, capsys):
    """Fixture reports placed where run.sh leaves them, stamped with this design's digest."""
    out = _copy(built, tmp_path)
    reports = out / "vivado" / "reports"
    reports.mkdir()
    for path in FIXTURES.glob("*csynth.xml"):
        shutil.copy(path, reports / path.name)
    shutil.copy(FIXTURES / "ooc_utilization_hier.rpt", reports)
    shutil.copy(FIXTURES / "timing_summary.rpt", reports / "ooc_timing_summary.rpt")
    digest = (out / "vivado" / "design.sha256").read_bytes()
    for stage in ("hls", "ooc"):
        (reports / f"{stage}.sha256").write_bytes(digest)
    code = main(["build", str(REPO / "builds" / "tfc_w1a1.yaml"), "--board", "ultra96", "--out", str(out),
                 "--from", "vivado", "--set", "outputs=[ooc_synth]"])
    printed = capsys.readouterr().out
    assert code == 0
    hls = json.loads((out / "report" / "hls_synth.json").read_text())
    assert hls["kernels_attributed"] and hls["kernels"][0]["node"] == "MVAU_0"
    assert hls["kernels"][0]["ii_min"] == 50 and hls["kernels"][0]["estimated_cycles"] > 0
    resources = json.loads((out / "report" / "post_synth_resources.json").read_text())
    assert resources["flow"] == "out-of-context synthesis" and resources["nodes"]["MVAU_0"]["LUT"] == 26080
    timing = json.loads((out / "report" / "timing.json").read_text())
    assert timing["wns_ns"] == 0.842
    assert "resources, estimated and out-of-context synthesis" in printed
    assert "cycles per image, estimated and Vitis HLS" in printed
    log = json.loads((out / "build_log.json").read_text())
    assert log["outputs"]["ooc_synth"] == "report/post_synth_resources.json"
    assert next(s for s in log["steps"] if s["name"] == "vivado")["status"] == "done"
    # A stamp of other scripts (an older design) is not taken.
    (reports / "ooc.sha256").write_text("0" * 64 + "\n")
    assert main(["build", str(REPO / "builds" / "tfc_w1a1.yaml"), "--board", "ultra96", "--out", str(out),
                 "--from", "vivado", "--set", "outputs=[ooc_synth]"]) == 0
    log = json.loads((out / "build_log.json").read_text())
    assert next(s for s in log["steps"] if s["name"] == "vivado")["status"] == "skipped"


def test_deploy_with_a_missing_bitstream_fails_naming_the_file(built, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "design.bit"
    code = main(["build", str(REPO / "builds" / "tfc_w1a1.yaml"), "--board", "ultra96", "--out", str(tmp_path / "o"),
                 "--set", f"deploy.bitfile={missing}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"deploy.bitfile (from --set): file '{missing}' not found" in err
    bit = tmp_path / "design.bit"
    bit.write_bytes(b"bitstream bytes")
    with pytest.raises(QnnflowError, match=r"hardware handoff .*design.hwh does not exist"):
        package_files("b", load_board("ultra96"), {}, b"", bit)


def test_deploy_includes_a_given_bitstream_with_its_hwh(built, tmp_path):
    out = _copy(built, tmp_path)
    bit, hwh = tmp_path / "design.bit", tmp_path / "design.hwh"
    bit.write_bytes(b"bitstream bytes")  # packaged as they are; nothing here reads them
    hwh.write_bytes(b"<hwh/>")
    assert main(["build", str(REPO / "builds" / "tfc_w1a1.yaml"), "--board", "ultra96", "--out", str(out),
                 "--from", "deploy", "--set", f"deploy.bitfile={bit}"]) == 0
    package = zipfile.ZipFile(out / "deploy" / f"{PACKAGE}.zip")
    assert package.read(f"{PACKAGE}/driver/qnnflow.bit") == b"bitstream bytes"
    assert package.read(f"{PACKAGE}/driver/qnnflow.hwh") == b"<hwh/>"
    assert "this build's bitstream" in package.read(f"{PACKAGE}/README.md").decode()


def test_a_bitstream_built_from_the_current_scripts_goes_into_the_package(built, tmp_path, capsys):
    """Fixture reports and stand-in bitstream bytes where run.sh leaves them, stamped with this design's digest."""
    out = _copy(built, tmp_path)
    vivado = out / "vivado"
    (vivado / "reports").mkdir()
    (vivado / "output").mkdir()
    for path in FIXTURES.glob("*csynth.xml"):
        shutil.copy(path, vivado / "reports" / path.name)
    shutil.copy(FIXTURES / "utilization_hier.rpt", vivado / "reports")
    shutil.copy(FIXTURES / "timing_summary_failing.rpt", vivado / "reports" / "timing_summary.rpt")
    (vivado / "output" / "qnnflow.bit").write_bytes(b"bitstream bytes")
    (vivado / "output" / "qnnflow.hwh").write_bytes(b"<hwh/>")
    for stage in ("hls", "bitstream"):
        shutil.copy(vivado / "design.sha256", vivado / "reports" / f"{stage}.sha256")
    assert main(["build", str(REPO / "builds" / "tfc_w1a1.yaml"), "--board", "ultra96", "--out", str(out),
                 "--from", "vivado"]) == 0
    log = json.loads((out / "build_log.json").read_text())
    assert log["outputs"].get("vivado") == "vivado/run.sh"
    resources = json.loads((out / "report" / "post_synth_resources.json").read_text())
    assert resources["flow"] == "placed and routed" and resources["nodes"]["MVAU_1"]["LUT"] == 1102
    assert json.loads((out / "report" / "timing.json").read_text())["met"] is False
    package = zipfile.ZipFile(out / "deploy" / f"{PACKAGE}.zip")
    assert package.read(f"{PACKAGE}/driver/qnnflow.bit") == b"bitstream bytes"
    # Scripts changed since (another clock): that bitstream is not the design's any more.
    assert main(["build", str(REPO / "builds" / "tfc_w1a1.yaml"), "--board", "ultra96", "--out", str(out),
                 "--set", "clock_ns=6"]) == 0
    names = zipfile.ZipFile(out / "deploy" / f"{PACKAGE}.zip").namelist()
    assert f"{PACKAGE}/driver/qnnflow.bit" not in names
