import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qnnflow.flow.config import load_config
from qnnflow.base.errors import QnnflowError
from qnnflow.flow.runner import STATE_FILE, run_build

from .conftest import REPO


def run(build_file, out, overrides=(), **kw):
    lines = []
    log = run_build(load_config(build_file, list(overrides)), out, progress=lines.append, **kw)
    return log, lines


def cached(log):
    return {s["name"]: s["cached"] for s in log["steps"]}


def test_build_writes_models_golden_log_and_verifies(tfc_build, tmp_path):
    out = tmp_path / "out"
    log, lines = run(tfc_build(), out)
    assert (out / "00_export.onnx").exists() and (out / "01_tidy.onnx").exists()
    assert (out / "golden.npz").exists()
    on_disk = json.loads((out / "build_log.json").read_text())
    assert on_disk["status"] == "ok"
    for entry in on_disk["steps"]:
        assert set(entry) >= {"name", "seconds", "verified", "max_abs_diff"}
        assert entry["verified"] is True and entry["max_abs_diff"] == 0.0
    assert on_disk["outputs"]["qonnx"] == "01_tidy.onnx"
    assert len(lines) == 2 and lines[1].startswith("[2/2] tidy")


def test_rerun_is_cached_and_config_change_reruns_only_dependent_steps(tfc_build, tmp_path):
    out = tmp_path / "out"
    run(tfc_build(), out)
    log, lines = run(tfc_build(), out)
    assert cached(log) == {"export": True, "tidy": True}
    assert "cached" in lines[0]
    # The board is read by neither step: still cached.
    log, _ = run(tfc_build(), out, ["board=ultra96"])
    assert cached(log) == {"export": True, "tidy": True}
    # The golden count is read by export; tidy's input then changes too.
    log, _ = run(tfc_build(), out, ["golden.count=3"])
    assert cached(log) == {"export": False, "tidy": False}


def test_tampered_output_is_rebuilt(tfc_build, tmp_path):
    out = tmp_path / "out"
    run(tfc_build(), out)
    (out / "01_tidy.onnx").write_bytes(b"not a model")
    log, _ = run(tfc_build(), out)
    assert cached(log) == {"export": True, "tidy": False}


def test_from_and_to(tfc_build, tmp_path):
    out = tmp_path / "out"
    log, _ = run(tfc_build(), out, to_step="export")
    assert [s["name"] for s in log["steps"]] == ["export"]
    assert not (out / "01_tidy.onnx").exists()
    log, _ = run(tfc_build(), out, from_step="tidy")
    assert [s["name"] for s in log["steps"]] == ["tidy"] and not log["steps"][0]["cached"]
    with pytest.raises(QnnflowError, match="--from tidy: no valid output of step 'export'"):
        run(tfc_build(), tmp_path / "empty", from_step="tidy")
    with pytest.raises(QnnflowError, match="--to streamline: not a step of this build"):
        run(tfc_build(), out, to_step="streamline")


def test_user_step_runs_and_is_verified_when_it_changes_the_graph(tfc_build, tmp_path):
    out = tmp_path / "out"
    log, lines = run(tfc_build(steps='[export, "tests.flow.helpers:retidy", tidy]'), out)
    user, tidy = log["steps"][1], log["steps"][2]
    assert user["name"] == "tests.flow.helpers:retidy"
    assert user["verified"] is True and user["checked"] == "golden I/O"
    # tidy after the user's tidy leaves the graph as it was: nothing new to check, and the log says so.
    assert tidy["verified"] is None and tidy["checked"] == "none"
    assert lines[2].endswith("checked: none") and "verified: golden I/O, max |diff| 0" in lines[1]
    assert (out / "01_retidy.onnx").exists() and (out / "02_tidy.onnx").exists()


def test_mismatch_stops_and_names_first_differing_node(tfc_build, tmp_path):
    out = tmp_path / "out"
    build = tfc_build(steps='[export, tidy, "tests.flow.helpers:corrupt_first_matmul", "tests.flow.helpers:retidy"]')
    with pytest.raises(QnnflowError) as info:
        run(build, out)
    message = str(info.value)
    assert "step 'tests.flow.helpers:corrupt_first_matmul': output does not match" in message
    # The helper negates the float weights behind the first MatMul's weight quantizer, so
    # that quantizer is the first node whose output the verified graph never computed.
    from qonnx.core.modelwrapper import ModelWrapper

    tidy = ModelWrapper(str(out / "01_tidy.onnx"))
    matmul = next(n for n in tidy.graph.node if n.op_type == "MatMul")
    quantizer = tidy.find_producer(matmul.input[1])
    assert f"first differing node: '{quantizer.name}' ({quantizer.op_type})" in message
    assert not (out / "02_corrupt_first_matmul.onnx").exists()
    assert (out / "02_corrupt_first_matmul.failed.onnx").exists()
    log = json.loads((out / "build_log.json").read_text())
    assert log["status"] == "failed" and quantizer.name in log["error"]
    assert [s["name"] for s in log["steps"]] == ["export", "tidy"]


def _cli(args, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "qnnflow.flow.cli", *args], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_killed_step_leaves_nothing_taken_as_valid(tfc_build, tmp_path):
    out = tmp_path / "out"
    build = tfc_build(steps='[export, tidy, "tests.flow.helpers:die_when_asked"]')
    killed = _cli(["build", str(build), "--out", str(out)], {"QNNFLOW_TEST_KILL": "1"})
    assert killed.returncode == -9
    assert not (out / "02_die_when_asked.onnx").exists()
    assert json.loads((out / "build_log.json").read_text())["status"] == "running"  # never a stale "ok"
    state = json.loads((out / STATE_FILE).read_text())
    assert "tests.flow.helpers:die_when_asked" not in state and "tidy" in state
    log, _ = run(build, out)
    assert cached(log) == {"export": True, "tidy": True, "tests.flow.helpers:die_when_asked": False}
    assert (out / "02_die_when_asked.onnx").exists()


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    from qnnflow.flow import artifacts

    def boom(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(artifacts.os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        artifacts.write_bytes_atomic(tmp_path / "model.onnx", b"x" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_code_hash_covers_what_a_step_calls(tmp_path, monkeypatch):
    """Editing code a step calls (not just the step function) must invalidate its cache."""
    from qnnflow.flow import registry

    pkg = tmp_path / "fakeflow"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "steps.py").write_text("def helper():\n    return 1\n\n\ndef step(model, ctx):\n    return model\n")
    (pkg / "kernel.hpp").write_text("// v1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import fakeflow.steps

    user = registry.Step("user", fakeflow.steps.step, (), (), "")
    builtin = registry.Step("builtin", fakeflow.steps.step, (), (), "")
    monkeypatch.setattr(fakeflow.steps.step, "__module__", "qnnflow.fake")
    monkeypatch.setattr(registry, "_SOURCE_PACKAGES", ("fakeflow",))
    registry._qnnflow_source_hash.cache_clear()
    before = builtin.code_hash()
    (pkg / "kernel.hpp").write_text("// v2\n")
    registry._qnnflow_source_hash.cache_clear()
    assert builtin.code_hash() != before
    registry._qnnflow_source_hash.cache_clear()

    monkeypatch.setattr(fakeflow.steps.step, "__module__", "fakeflow.steps")
    before = user.code_hash()
    (pkg / "steps.py").write_text("def helper():\n    return 2\n\n\ndef step(model, ctx):\n    return model\n")
    import linecache

    linecache.checkcache()
    assert user.code_hash() != before


def test_every_shipped_template_and_kernel_keys_the_step_caches():
    """The package data that generated files are made from (Tcl and shell templates, kernels, Verilog) is
    part of the code hash: editing a template alone must rerun the step that writes from it."""
    import tomllib

    from qnnflow.flow.registry import qnnflow_source_files

    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    hashed = {path.resolve() for _, path in qnnflow_source_files()}
    shipped = set()
    for package, patterns in setuptools["package-data"].items():
        if package == "qnnflow.builds":
            continue  # configuration, keyed by value (next test)
        top, _, sub = package.removeprefix("qnnflow.").partition(".")
        root = REPO / setuptools["package-dir"][f"qnnflow.{top}"] / sub.replace(".", "/")
        shipped |= {p.resolve() for pattern in patterns for p in root.glob(pattern) if p.is_file()}
    assert any(p.suffix == ".tcl" for p in shipped)
    assert sorted(str(p) for p in shipped - hashed) == []


def test_editing_comments_in_builds_reruns_no_step_and_board_content_keys_its_steps(tmp_path, monkeypatch):
    """builds/ holds configuration, not code: a comment edit there reruns nothing; a board edit
    reruns exactly the steps that read the board."""
    import shutil

    import qnnflow.builds
    from qnnflow.flow import boards, registry

    builds = tmp_path / "builds"
    shutil.copytree(REPO / "builds", builds)
    # qnnflow's builds/ folder becomes the copy, so editing the copy is editing qnnflow's builds/.
    monkeypatch.setattr(qnnflow.builds, "__file__", str(builds / "__init__.py"))
    monkeypatch.setattr(boards, "BOARD_DIR", builds / "boards")
    registry._qnnflow_source_hash.cache_clear()
    build, board, out = builds / "tfc_w1a1.yaml", builds / "boards" / "pynq-z1.yaml", tmp_path / "out"
    log, _ = run(build, out, ["golden.count=2"])
    steps = len(load_config(build)["steps"])
    assert not any(cached(log).values()) and len(log["steps"]) == steps
    build.write_text("# a comment added by the user\n" + build.read_text())
    board.write_text(board.read_text().replace("# Digilent", "# An edited comment. Digilent"))
    registry._qnnflow_source_hash.cache_clear()
    run(build, out, ["golden.count=2"])
    on_disk = json.loads((out / "build_log.json").read_text())
    assert len(on_disk["steps"]) == steps and all(cached(on_disk).values()), cached(on_disk)
    board.write_text(board.read_text().replace("LUT: 53200", "LUT: 40000"))
    log, _ = run(build, out, ["golden.count=2"], to_step="estimate")
    assert cached(log) == {"export": True, "tidy": True, "streamline": True, "prune": True, "to_hw": True,
                           "fold": False, "estimate": False}
    registry._qnnflow_source_hash.cache_clear()


def test_ctrl_c_during_a_rebuild_leaves_no_stale_result(tfc_build, tmp_path):
    """A real SIGINT to the CLI during a step: one line, exit 130, the log says interrupted, and the
    previous design's C++ simulation result is gone rather than presented as the new design's."""
    import signal
    import time

    out, flag = tmp_path / "out", tmp_path / "waiting"
    steps = ("[export, tidy, streamline, to_hw, fold, estimate, hls_codegen, "
             '"tests.flow.helpers:wait_for_interrupt", cppsim]')
    build = tfc_build(steps=steps)
    run(build, out)
    assert json.loads((out / "cppsim" / "result.json").read_text())["bit_exact"] is True
    env = dict(os.environ, PYTHONPATH=str(REPO), QNNFLOW_TEST_WAIT=str(flag))
    proc = subprocess.Popen(
        [sys.executable, "-m", "qnnflow.flow.cli", "build", str(build), "--out", str(out), "--set", "fold.lut=0.5"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell without job control starts background jobs with SIGINT ignored; give the build Ctrl-C back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert flag.exists(), proc.communicate()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.count("\n") == 1 and "Traceback" not in stderr + stdout, stderr
    assert "interrupted during step 'tests.flow.helpers:wait_for_interrupt'" in stderr
    log = json.loads((out / "build_log.json").read_text())
    assert log["status"] == "interrupted" and log["interrupted_step"] == "tests.flow.helpers:wait_for_interrupt"
    assert "outputs" not in log
    # The interrupted step's and the later steps' results are gone; the finished steps' remain.
    assert not (out / "cppsim" / "result.json").exists()
    assert not (out / "wait" / "partial.txt").exists() and not (out / "07_wait_for_interrupt.onnx").exists()
    state = json.loads((out / STATE_FILE).read_text())
    assert "cppsim" not in state and "tests.flow.helpers:wait_for_interrupt" not in state
    assert "hls_codegen" in state and (out / "hls" / "top.cpp").exists()
    assert not list(out.rglob(".tmp-*"))
    # Rerunning continues from where it stopped.
    log, _ = run(build, out, ["fold.lut=0.5"], to_step="tests.flow.helpers:wait_for_interrupt")
    assert log["status"] == "ok"
    assert [s["name"] for s in log["steps"] if not s["cached"]] == ["tests.flow.helpers:wait_for_interrupt"]


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """No data set anywhere qnnflow looks, and no downloads."""
    from qnnflow.models import data

    monkeypatch.setattr(data, "_shared_data_dir", lambda: None)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("QNNFLOW_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("QNNFLOW_OFFLINE", "1")


def golden(out):
    from qnnflow.models.export import Golden

    return Golden.load(out / "golden.npz")


def test_golden_source_without_data(tfc_build, tmp_path, no_data):
    out = tmp_path / "out"
    _, lines = run(tfc_build(), out, to_step="export")
    notes = [line for line in lines if "golden inputs are random" in line]
    assert len(notes) == 1 and "no mnist test images found" in notes[0]
    assert "seeded inputs" in golden(out).source
    _, lines = run(tfc_build(), out, ["golden.source=random"], to_step="export")
    assert not any("golden inputs are random" in line for line in lines)
    with pytest.raises(QnnflowError, match="golden.source: data, but no mnist test images were found"):
        run(tfc_build(), out, ["golden.source=data"], to_step="export")


def test_golden_source_with_data(tfc_build, tmp_path, monkeypatch):
    from tests.models.test_data import _write_mnist

    _, labels = _write_mnist(tmp_path / "data" / "mnist", "test", 5)
    monkeypatch.setenv("QNNFLOW_DATA", str(tmp_path / "data"))
    out = tmp_path / "out"
    for source in ("auto", "data"):
        run(tfc_build(), out, [f"golden.source={source}"], to_step="export")
        assert golden(out).source == "PyTorch on mnist test images"
        assert list(golden(out).labels) == [labels[0], labels[4]]  # 2 images spread over the 5
    run(tfc_build(), out, ["golden.source=random"], to_step="export")
    assert "seeded inputs" in golden(out).source and len(golden(out).labels) == 0


def test_user_module_beside_the_build_file_needs_no_pythonpath(tmp_path):
    """The console command, run from another folder with no PYTHONPATH, finds the model factory
    beside the build file and the QONNX path relative to it."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "beside_net_for_qnnflow_test.py").write_text(
        "import torch\n"
        "from brevitas.nn import QuantIdentity, QuantLinear\n\n\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    net = torch.nn.Sequential(QuantIdentity(bit_width=8, return_quant_tensor=True),\n"
        "                              QuantLinear(4, 3, bias=False, weight_bit_width=4))\n"
        "    return net.eval(), (1, 4)\n"
    )
    (project / "build.yaml").write_text(
        "model: beside_net_for_qnnflow_test:make\nboard: pynq-z1\nsteps: [export]\ngolden: {count: 2}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    qnnflow = Path(sys.executable).parent / "qnnflow"
    result = subprocess.run([str(qnnflow), "build", "project/build.yaml", "--out", "out"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    log = json.loads((tmp_path / "out" / "build_log.json").read_text())
    assert [s["verified"] for s in log["steps"]] == [True]
