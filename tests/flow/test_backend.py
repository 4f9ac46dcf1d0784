"""``backend: hls | rtl | both`` chooses the back-end steps (and the outputs they deliver)."""

from __future__ import annotations

import pytest

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.config import DEFAULT_STEPS, load_config

REPO_BUILDS = __import__("pathlib").Path(__file__).resolve().parents[2] / "builds"


def write(tmp_path, text):
    path = tmp_path / "b.yaml"
    path.write_text("model: tfc_w1a1\nboard: pynq-z1\n" + text)
    return path


def test_default_steps_follow_the_backend(tmp_path):
    assert load_config(write(tmp_path, ""))["steps"] == DEFAULT_STEPS  # hls by default
    rtl = load_config(write(tmp_path, "backend: rtl\n"))["steps"]
    assert rtl[rtl.index("estimate") + 1:rtl.index("estimate") + 5] == ["fifo_size", "rtl_codegen", "rtlsim", "synth"]
    assert "hls_codegen" not in rtl and "cppsim" not in rtl
    both = load_config(write(tmp_path, "backend: both\n"))["steps"]
    assert [s for s in both if s in ("fifo_size", "hls_codegen", "cppsim", "rtl_codegen", "rtlsim", "synth")] == \
        ["fifo_size", "hls_codegen", "cppsim", "rtl_codegen", "rtlsim", "synth"]


def test_set_backend_swaps_listed_steps_and_outputs():
    cfg = load_config(REPO_BUILDS / "tfc_w1a1.yaml", ["backend=rtl"])
    assert "rtlsim" in cfg["steps"] and "cppsim" not in cfg["steps"]
    assert "synth" in cfg["outputs"] and "hls" not in cfg["outputs"]
    assert cfg["steps"].index("fifo_size") == cfg["steps"].index("estimate") + 1
    assert "fifo_depths" in cfg["outputs"]


def test_listed_steps_without_backend_are_kept(tmp_path):
    cfg = load_config(write(tmp_path, "steps: [export, tidy, streamline, to_hw, rtl_codegen]\n"))
    assert cfg["steps"] == ["export", "tidy", "streamline", "to_hw", "rtl_codegen"]


def test_unknown_backend_is_one_line(tmp_path):
    with pytest.raises(QnnflowError, match=r"b.yaml: backend: unknown backend 'rtll'; did you mean 'rtl'"):
        load_config(write(tmp_path, "backend: rtll\n"))
