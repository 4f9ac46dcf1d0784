"""Board descriptions: ``builds/boards/<name>.yaml`` (part, resources, clock, PS, AXI width)."""

from __future__ import annotations

from pathlib import Path

import yaml

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.board.spec import block_design_problem

BOARD_DIR = Path(__file__).resolve().parent.parent / "builds" / "boards"
_REQUIRED = {"name": str, "part": str, "board_part": str, "resources": dict, "clock_ns": (int, float), "ps": str, "axi_width": int}
_RESOURCES = ("LUT", "FF", "BRAM18", "DSP")


def known_boards() -> list[str]:
    return sorted(p.stem for p in BOARD_DIR.glob("*.yaml"))


def load_board(name_or_path: str) -> dict:
    """A board's description by name (``pynq-z1``) or by the path of a board YAML."""
    path = Path(name_or_path) if name_or_path.endswith((".yaml", ".yml")) else BOARD_DIR / f"{name_or_path}.yaml"
    try:
        board = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise QnnflowError(f"board file {path} not found; known boards: {', '.join(known_boards())}") from None
    except yaml.YAMLError as err:
        raise QnnflowError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(board, dict):
        raise QnnflowError(f"{path}: expected a mapping with {', '.join(_REQUIRED)}")
    for key, types in _REQUIRED.items():
        if not isinstance(board.get(key), types):
            raise QnnflowError(f"{path}: {key}: missing or of the wrong type; see builds/boards/pynq-z1.yaml")
    for res in _RESOURCES:
        if not isinstance(board["resources"].get(res), int) or board["resources"][res] <= 0:
            raise QnnflowError(f"{path}: resources.{res}: expected a positive integer")
    problem = block_design_problem(board)
    if problem:
        raise QnnflowError(f"{path}: {problem}")
    board["id"] = path.stem
    return board
