import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tfc_build(tmp_path):
    """A small, fast build file (TFC w1a1, 2 golden samples) in tmp_path; extra lines appended."""

    def make(extra: str = "", steps: str = "[export, tidy]") -> Path:
        path = tmp_path / "tfc.yaml"
        path.write_text(
            f"model: tfc_w1a1\nboard: pynq-z1\nsteps: {steps}\ngolden: {{count: 2}}\n{extra}"
        )
        return path

    return make


# Steps of the default pipeline that leave the graph as it was and check nothing themselves
# (prune: at the default sparsity 0; vivado: skipped without the tools; deploy: packs files).
UNCHECKED_STEPS = {"prune", "estimate", "hls_codegen", "vivado", "deploy"}


def assert_every_step_checked(log: dict) -> None:
    """Each step is verified by a check (golden I/O, or cppsim's own), except those that check nothing."""
    for step in log["steps"]:
        if step["name"] in UNCHECKED_STEPS:
            assert step["verified"] is None and step["checked"] == "none", step
        elif step["name"] == "cppsim":
            assert step["verified"] is True and step["checked"].startswith("C++ simulation bit-exact"), step
        elif step["name"] == "driver":
            assert step["verified"] is True and step["checked"].startswith("the driver's host head"), step
        else:
            assert step["verified"] is True and step["checked"] == "golden I/O", step


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch):
    """load_config adds each build file's folder to sys.path; keep the test process's path as it was."""
    monkeypatch.setattr(sys, "path", [*sys.path])
