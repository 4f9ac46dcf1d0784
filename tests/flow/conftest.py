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
