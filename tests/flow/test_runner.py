import json
import os
import subprocess
import sys

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
    log, lines = run(tfc_build(steps='[export, "tests.flow.helpers:retidy", "tests.flow.helpers:retidy"]'), out)
    first, second = log["steps"][1], log["steps"][2]
    assert first["name"] == second["name"] == "tests.flow.helpers:retidy"
    assert first["verified"] is True and first["checked"] == "golden I/O"
    # The second retidy leaves the graph as it was: nothing new to check, and the log says so.
    assert second["verified"] is None and second["checked"] == "none"
    assert lines[2].endswith("checked: none") and "verified: golden I/O, max |diff| 0" in lines[1]
    assert (out / "01_retidy.onnx").exists() and (out / "02_retidy.onnx").exists()


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
