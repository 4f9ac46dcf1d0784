"""Board descriptions: ``builds/boards/<name>.yaml`` (part, resources, clock and its range, PS, AXI width)."""

from __future__ import annotations

from pathlib import Path

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.yaml_io import load_yaml_file
from qnnflow.hls.board.spec import block_design_problem

BOARD_DIR = Path(__file__).resolve().parent.parent / "builds" / "boards"
_REQUIRED = {
    "name": str, "part": str, "board_part": str, "resources": dict, "clock_ns": (int, float),
    "clock_range_ns": list, "ps": str, "axi_width": int,
}
_RESOURCES = ("LUT", "FF", "BRAM18", "DSP")


def known_boards() -> list[str]:
    return sorted(p.stem for p in BOARD_DIR.glob("*.yaml"))


def is_board_path(name_or_path: str) -> bool:
    return name_or_path.endswith((".yaml", ".yml"))


def load_board(name_or_path: str) -> dict:
    """A board's description by name (``pynq-z1``) or by the path of a board YAML."""
    path = Path(name_or_path) if is_board_path(name_or_path) else BOARD_DIR / f"{name_or_path}.yaml"
    board = load_yaml_file(path, f"board file not found; known boards: {', '.join(known_boards())}")
    if not isinstance(board, dict):
        raise QnnflowError(f"{path}: expected a mapping with {', '.join(_REQUIRED)}")
    for key, types in _REQUIRED.items():
        if not isinstance(board.get(key), types) or isinstance(board.get(key), bool):
            raise QnnflowError(f"{path}: {key}: missing or of the wrong type; see builds/boards/pynq-z1.yaml")
    for res in _RESOURCES:
        if not isinstance(board["resources"].get(res), int) or board["resources"][res] <= 0:
            raise QnnflowError(f"{path}: resources.{res}: expected a positive integer")
    low_high = board["clock_range_ns"]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in low_high)
    if len(low_high) != 2 or not numbers or low_high[0] >= low_high[1]:
        raise QnnflowError(f"{path}: clock_range_ns: expected [shortest, longest] period in ns, e.g. [2.16, 213.0]")
    problem = clock_problem(board["clock_ns"], board)
    if problem:
        raise QnnflowError(f"{path}: clock_ns: {problem}")
    problem = block_design_problem(board)
    if problem:
        raise QnnflowError(f"{path}: {problem}")
    board["id"] = path.stem
    return board


def clock_problem(clock_ns: float, board: dict) -> str | None:
    """Why ``clock_ns`` is not a clock period the board's part can run, or None."""
    low, high = board["clock_range_ns"]
    if low <= clock_ns <= high:
        return None
    return (f"{clock_ns:g} ns ({_mhz(clock_ns)} MHz) is outside the {board['part']}'s clock range, "
            f"{low:g} to {high:g} ns ({_mhz(high)} to {_mhz(low)} MHz); see clock_range_ns in its board YAML")


def _mhz(period_ns: float) -> str:
    return f"{round(1e3 / period_ns, 1):g}"


def board_table() -> list[dict]:
    """One row per known board, for ``qnnflow boards``."""
    return [load_board(name) for name in known_boards()]
