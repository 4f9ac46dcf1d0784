"""A design over the board's resources by Yosys's count: bad input (exit 2) in one line naming the resources
and the fix, and no synthesis report left in OUT/report as if the build had one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from qnnflow.base.errors import BadInputError
from qnnflow.flow.boards import BOARD_DIR
from qnnflow.flow.config import load_config
from qnnflow.flow.rtl_steps import SYNTH_REPORT, synth_step
from qnnflow.flow.runner import StepContext
from tests.hls.backend.helpers import node_model, random_ints

def small_board(tmp_path: Path, **resources) -> Path:
    """Pynq-Z1 with some resources cut down (a board YAML of the user's own)."""
    board = yaml.safe_load((BOARD_DIR / "pynq-z1.yaml").read_text())
    board["name"] = "Pynq-Z1 (cut)"
    board["resources"].update(resources)
    path = tmp_path / "cut.yaml"
    path.write_text(yaml.safe_dump(board))
    return path


def one_mvau():
    rng = np.random.default_rng(5)
    attrs = dict(MW=8, MH=2, SIMD=2, PE=1, inputDataType="INT4", weightDataType="INT3", outputDataType="INT12",
                 accDataType="INT12", noActivation=1)
    return node_model("MVAU", attrs, {1: random_ints(rng, "INT3", (8, 2))})


def context(tmp_path: Path, board: Path) -> StepContext:
    build = tmp_path / "b.yaml"
    build.write_text(f"model: tfc_w1a1\nboard: {board}\n")
    return StepContext(load_config(build), tmp_path / "OUT", "synth", lambda line: None)


def test_over_budget_synthesis_is_bad_input_and_leaves_no_report(tmp_path):
    ctx = context(tmp_path, small_board(tmp_path, FF=10))
    stale = ctx.out_dir / SYNTH_REPORT  # an earlier run's, which fitted
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"total": {"LUT": 1}}))
    with pytest.raises(BadInputError) as err:
        synth_step(one_mvau(), ctx)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("board cut: the design needs ")
    assert "FF by Yosys's count, more than Pynq-Z1 (cut) has (10)" in message
    assert "LUT by" not in message  # only what is over is named
    assert "lower fold.lut" in message and "pick a larger board" in message
    assert not stale.exists() and ctx.deliveries == {}


@pytest.mark.slow
def test_over_budget_build_exits_2(tmp_path):
    """The CLI on tfc_w1a1 with a board of too few flip-flops (fold budgets LUT, BRAM and DSP, so it folds
    as for the Pynq-Z1): exit status 2, one error line, no report."""
    board = small_board(tmp_path, FF=300)
    build = tmp_path / "tfc.yaml"
    build.write_text("model: tfc_w1a1\nsteps: [export, tidy, streamline, to_hw, fold, estimate, rtl_codegen, synth]\n"
                     "golden: {count: 2}\nfold: {target_cycles: 2000}\n")
    cli = Path(sys.executable).parent / "qnnflow"
    out = tmp_path / "out"
    proc = subprocess.run([str(cli), "build", str(build), "--board", str(board), "--out", str(out)],
                          capture_output=True, text=True, env=os.environ)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "FF by Yosys's count, more than Pynq-Z1 (cut) has (300)" in errors[0]
    assert not (out / SYNTH_REPORT).exists()
    assert json.loads((out / "build_log.json").read_text())["status"] == "failed"
