"""Synthesis with Yosys (``synth_xilinx``): LUT, FF, LUT RAM, BRAM18 and DSP per node and for the whole top.

Each unit of the RTL project (its wrapper ``qf_<ident>``: the node's module and its output stream
FIFO) is synthesised out of context, as its own top (no I/O buffers, no clock buffer), for the
per-node figures; then the whole ``qnnflow_top``.  Figures are counted from Yosys's cells:

- LUT: LUT1..LUT6 and INV (a LUT1 once placed) plus the LUTs used as memory (LUTRAM);
- LUTRAM: LUTs used as distributed RAM or shift registers (RAM32M/RAM64M: 4, RAM*X1D: 2, ...);
- FF: FDRE/FDSE/FDCE/FDPE; BRAM18: RAMB18 = 1, RAMB36 = 2; DSP: DSP48E1/E2.

These are Yosys's counts, not Vivado's: they are reported beside the estimate as such.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.codegen.rtl import TOP, RtlProject, verilog_files
from qnnflow.hls.rtl_tools import YOSYS, tool, tool_version, yosys_env

FAMILIES = {"7series": "xc7", "ultrascale+": "xcup"}  # hls/nodes/cost.part_family -> synth_xilinx -family
LUTRAM_LUTS = {"RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM32X1D": 2, "RAM64X1D": 2,
               "RAM128X1D": 4, "RAM256X1D": 8, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
               "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}
LOGIC_LUTS = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV")
FLIP_FLOPS = ("FDRE", "FDSE", "FDCE", "FDPE")
BRAM18 = {"RAMB18E1": 1, "RAMB18E2": 1, "RAMB36E1": 2, "RAMB36E2": 2}
DSPS = ("DSP48E1", "DSP48E2")
RESOURCES = ("LUT", "FF", "LUTRAM", "BRAM18", "DSP")


def count_cells(cells: dict[str, int]) -> dict[str, int]:
    """{LUT, FF, LUTRAM, BRAM18, DSP} from Yosys's cell counts by type."""
    lutram = sum(LUTRAM_LUTS.get(c, 0) * n for c, n in cells.items())
    return {"LUT": sum(cells.get(c, 0) for c in LOGIC_LUTS) + lutram,
            "FF": sum(cells.get(c, 0) for c in FLIP_FLOPS),
            "LUTRAM": lutram,
            "BRAM18": sum(BRAM18.get(c, 0) * n for c, n in cells.items()),
            "DSP": sum(cells.get(c, 0) for c in DSPS)}


def yosys_script(sources: list[str], top: str, family: str, stat_file: str) -> str:
    return (f"read_verilog -defer {' '.join(sources)}\n"
            f"synth_xilinx -family {family} -top {top} -flatten -noiopad -noclkbuf\n"
            f"tee -q -o {stat_file} stat -json\n")


def run_yosys(project_dir: Path, sources: list[str], top: str, family: str, log_name: str) -> tuple[dict, float]:
    """Synthesise ``top`` from ``sources`` (relative to ``project_dir``, where the memory files are): the cell
    counts and the seconds Yosys took."""
    yosys = tool(YOSYS, "synth")
    stat = f"{log_name}.stat.json"
    script = project_dir / f"{log_name}.ys"
    script.write_text(yosys_script(sources, top, family, stat))
    t0 = time.perf_counter()
    proc = subprocess.run([yosys, "-q", "-l", f"{log_name}.log", "-s", script.name], capture_output=True, text=True,
                          cwd=project_dir, env=yosys_env({"/": project_dir.resolve()}))
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        first = next((line for line in (proc.stderr + proc.stdout).splitlines() if "ERROR" in line), "no output")
        raise QnnflowError(f"yosys failed on {top}: {first.strip()} (log: {project_dir / (log_name + '.log')})")
    modules = json.loads((project_dir / stat).read_text())["modules"]
    return count_cells(modules[f"\\{top}"]["num_cells_by_type"]), seconds


def synthesize(project: RtlProject, project_dir: Path, family: str, whole: bool = True, jobs: int = 2) -> dict:
    """Per-unit (out of context) and, with ``whole``, whole-top Yosys figures of ``project`` written in
    ``project_dir``: {"family", "nodes": {node: figures}, "total": figures, "seconds": {...}}.

    ``total`` is the whole top's synthesis with ``whole``, else the sum of the units."""
    library = [rel for rel in verilog_files(project) if rel.startswith("lib/")]
    units = [u for u in project.units if f"units/{u.ident}.v" in project.files]

    def one(unit):
        return run_yosys(project_dir, [*library, f"units/{unit.ident}.v"], f"qf_{unit.ident}", family, unit.ident)

    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(one, units))
    nodes = {u.node: figures for u, (figures, _) in zip(units, results)}
    seconds = {u.node: round(s, 2) for u, (_, s) in zip(units, results)}
    report = {"tool": f"{tool_version(tool(YOSYS, 'synth'))}, synth_xilinx", "family": family, "nodes": nodes, "seconds": seconds}
    summed = {r: sum(n[r] for n in nodes.values()) for r in RESOURCES}
    if whole:
        report["total"], top_seconds = run_yosys(project_dir, verilog_files(project), TOP, family, TOP)
        report["seconds"]["whole top"] = round(top_seconds, 2)
        report["sum_of_nodes"] = summed
    else:
        report["total"] = summed
    return report


# The fold budget that bounds each resource (FF has none of its own: LUT-bound logic brings its flip-flops).
FOLD_FIELDS = {"LUT": "fold.lut", "FF": "fold.lut", "BRAM18": "fold.bram", "DSP": "fold.dsp"}


def board_problem(total: dict, board: dict) -> str | None:
    """Why a design of ``total`` resources (Yosys's count) does not fit ``board``, or None."""
    over = [r for r in ("LUT", "FF", "BRAM18", "DSP") if total[r] > board["resources"][r]]
    if not over:
        return None
    needs = ", ".join(f"{total[r]:,} {r}" for r in over)
    has = ", ".join(f"{board['resources'][r]:,}" for r in over)
    fields = "/".join(dict.fromkeys(FOLD_FIELDS[r] for r in over))
    return (f"the design needs {needs} by Yosys's count, more than {board['name']} has ({has}); fold it slower "
            f"(lower {fields}, or a larger fold.target_cycles) or pick a larger board")
