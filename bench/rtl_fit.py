"""Measure the RTL cost model's samples with Yosys, and refit it.

  python bench/rtl_fit.py measure [--out FILE] [--models m1,m2 [--add]] [--jobs N]
      Folds zoo models for Pynq-Z1 at several cycle targets and memory styles (SWEEP), cuts out
      every node whose kind has RTL (hls/unit_synth.py; the whole chain with its AXI port
      adapters where every node has RTL) and synthesises each unit out of context with Yosys
      synth_xilinx -family xc7.  Writes the samples with their provenance (tool version, date,
      model, folding) to FILE (default hls/nodes/data/yosys_samples.json, what the library fits);
      --add replaces only the listed models' samples in FILE.
  python bench/rtl_fit.py fit [--data FILE]
      Refits hls/nodes/yosys_fit.py's coefficients from the samples and prints them (--write puts
      them in YOSYS_FITTED), the in-sample and leave-one-model-out errors per node kind and per model
      total, and the refit model against BNN-PYNQ's published totals.

Yosys on a 2-core machine is the slow part: a unit's time grows with its logic, so the sweep's
targets keep every unit below about MAX_UNIT_LUTS estimated LUTs (a few minutes each at most).
"""

import argparse
import datetime
import json
import re
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

warnings.filterwarnings("ignore")

from fold import hardware_graph  # noqa: E402

from qonnx.custom_op.registry import getCustomOp  # noqa: E402

from qnnflow.base.errors import QnnflowError  # noqa: E402
from qnnflow.flow.boards import load_board  # noqa: E402
from qnnflow.hls.nodes import cost, yosys_fit  # noqa: E402
from qnnflow.hls.partition import hardware_region  # noqa: E402
from qnnflow.hls.rtl_tools import YOSYS, tool, tool_version  # noqa: E402
from qnnflow.hls.synth import FAMILIES  # noqa: E402
from qnnflow.hls.unit_synth import node_alone, synthesize_units, unit_spec  # noqa: E402
from qnnflow.hls.nodes.views import op_view  # noqa: E402
from qnnflow.transforms.fold import fold  # noqa: E402

BOARD = "pynq-z1"
MAX_UNIT_LUTS = 6000  # estimated (formula) LUTs of the largest unit synthesised
# model -> [(fold target cycles, ram_style forced on every node that has one, or None for fold's choice)]
SWEEP = {
    "tfc_w1a1": [(4096, None), (1024, "block"), (256, "distributed")],
    "tfc_w1a2": [(2048, "auto"), (512, "block")],
    "tfc_w2a2": [(2048, "distributed"), (512, None)],
    "lfc_w1a1": [(32768, None), (8192, "block"), (1024, "block")],
    "lfc_w1a2": [(16384, None)],
    "cnv_w1a1": [(400_000, None), (150_000, "block"), (20_000, "distributed")],
    "cnv_w2a2": [(300_000, "distributed"), (60_000, None)],
    "cnv_w4a4": [(800_000, None)],
    "cnv_w8a8": [(1_600_000, None)],
    "lfc_w1a1_in1": [(8192, None), (2048, "block")],
    "vgg10_1d_w4a4": [(131_072, None), (32_768, "distributed")],
    "resnet8_w4a4": [(131_072, None), (32_768, "block")],
}
SAMPLING_SCALE = 10  # fold against a board this many times larger: the sweep wants unit sizes, not designs that fit


def folded(name: str, board: dict, target: int, style: str | None):
    larger = {**board, "resources": {r: n * SAMPLING_SCALE for r, n in board["resources"].items()}}
    model, _ = fold(hardware_graph(name), larger, target_cycles=target)
    if style:
        for node in hardware_region(model).nodes:
            op = getCustomOp(node)
            if "ram_style" in op.get_nodeattr_types():
                op.set_nodeattr("ram_style", style)
    return model


def projects(model, board):
    """[(graph, ports)]: the whole chain with its port adapters if every node has RTL and it is small enough
    to synthesise, else each node alone."""
    from qnnflow.hls.codegen.rtl import generate_rtl

    try:
        generate_rtl(model, board)
        if small_enough(model, board):
            return [(model, "axi")]
    except QnnflowError:
        pass
    out = []
    for node in hardware_region(model).nodes:
        alone = node_alone(model, node)
        try:
            generate_rtl(alone, board, ports="stream")
        except QnnflowError:
            continue  # no RTL for this kind yet
        out.append((alone, "stream"))
    return out


def small_enough(graph, board) -> bool:
    return all(op_view(n).resources_with_stream(board)["LUT"] <= MAX_UNIT_LUTS for n in hardware_region(graph).nodes)


def measure(args):
    board = load_board(BOARD)
    family = FAMILIES[cost.part_family(board)]
    yosys = tool(YOSYS, "bench/rtl_fit.py")
    jobs, queued = [], set()
    for name in args.models.split(",") if args.models else SWEEP:
        for target, style in SWEEP[name]:
            folding = f"target_cycles={target}, ram_style={style or 'fold'}"
            try:
                model = folded(name, board, target, style)
            except QnnflowError as err:
                print(f"{name} {folding}: skipped ({err})", flush=True)
                continue
            for graph, ports in projects(model, board):
                node = graph.graph.node[0]
                key = json.dumps(unit_spec(graph, node), sort_keys=True) if ports == "stream" else None
                if key is not None and key in queued:
                    continue  # the same node alone, met in another folding
                queued.add(key)
                if small_enough(graph, board):
                    jobs.append((name, folding, graph, ports))
                else:
                    print(f"{name} {folding} {graph.graph.name}: over {MAX_UNIT_LUTS} estimated LUTs, skipped", flush=True)
    by_model = {}
    for job in jobs:
        by_model.setdefault(job[0], []).append(job)
    # round robin over the models, so that a partial run covers them all
    jobs = [queue[rank] for rank in range(max(map(len, by_model.values()))) for queue in by_model.values()
            if rank < len(queue)]
    print(f"{len(jobs)} RTL projects to synthesise", flush=True)
    work = Path(tempfile.mkdtemp(prefix="rtl_fit-"))
    models = {job[0] for job in jobs}
    kept, runs = [], []
    if args.add and Path(args.out).exists():  # keep the other models' samples and their provenance
        old = json.loads(Path(args.out).read_text())
        kept = [s for s in old["samples"] if s["model"] not in models]
        runs = [{**r, "models": sorted(set(r["models"]) - models),
                 "sweep": {m: v for m, v in r["sweep"].items() if m not in models}}
                for r in old["provenance"] if set(r["models"]) - models]
    samples, started = [], time.perf_counter()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()

    def run(i_job):
        i, (name, folding, graph, ports) = i_job
        got = synthesize_units(graph, board, family, work / f"{i:03d}", ports=ports)
        for s in got:
            s.update(model=name, folding=folding)
        print(f"[{time.perf_counter() - started:7.0f} s] {name} {folding}: "
              + ", ".join(f"{s['unit']} {s['yosys']['LUT']} LUT ({s['seconds']:.0f} s)" for s in got), flush=True)
        return got

    def save():
        run_info = {"models": sorted(models), "tool": tool_version(yosys),
                    "command": f"synth_xilinx -family {family} -flatten -noiopad -noclkbuf, each unit out of context "
                               "(hls/synth.py)", "board": BOARD,
                    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                    "qnnflow_commit": commit, "script": "bench/rtl_fit.py measure", "sweep": {m: SWEEP[m] for m in sorted(models)},
                    "projects": f"{done} of {len(jobs)}", "wall_seconds": round(time.perf_counter() - started)}
        data = {"provenance": [*runs, run_info], "samples": kept + samples}
        Path(args.out).write_text(json.dumps(data, indent=1) + "\n")

    done = 0
    with ThreadPoolExecutor(args.jobs) as pool:  # saved after every project: an interrupted sweep keeps its samples
        for got in pool.map(run, enumerate(jobs)):
            done += 1
            samples += got
            save()
    print(f"{len(samples)} samples in {args.out}")


def fit(args):
    from qnnflow.hls.nodes.calibration import PUBLISHED, SHELL_LUTS, published_estimate

    samples = yosys_fit.load_samples(args.data)
    board = load_board(BOARD)
    table = yosys_fit.error_table(samples, board, yosys_fit.fit(samples, board))
    print("YOSYS_FITTED = " + json.dumps(table["coefficients"], indent=4))
    if args.write:
        source = Path(yosys_fit.__file__)
        text = re.sub(r"^YOSYS_FITTED: .*?^}  #", lambda _: f"YOSYS_FITTED: dict[str, dict[str, float]] = "
                      f"{json.dumps(table['coefficients'], indent=4)}  #", source.read_text(), flags=re.S | re.M)
        source.write_text(text)
        print(f"written into {source}")
    print(yosys_fit.format_errors(table))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1) + "\n")
    rtl_board = {**yosys_fit.board_for_backend(board, "rtl"), yosys_fit.COEFFICIENTS_KEY: table["coefficients"]}
    print("\nThe Yosys-fitted model against BNN-PYNQ's published Vivado totals (an independent check, Vivado HLS "
          "kernels, not our RTL):")
    for name in PUBLISHED:
        pub = PUBLISHED[name]["LUT"]
        for label, b in (("BNN-PYNQ fit", board), ("Yosys fit", rtl_board)):
            est = published_estimate(hardware_graph(name), name, b)["LUT"] + SHELL_LUTS
            print(f"  {name:<9} {label:<13} {est:>7,} LUT vs {pub:>7,} published ({est / pub - 1:+.0%})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", default=str(yosys_fit.SAMPLES))
    m.add_argument("--models", default="")
    m.add_argument("--jobs", type=int, default=2)
    m.add_argument("--add", action="store_true", help="keep the other models' samples already in --out")
    f = sub.add_parser("fit")
    f.add_argument("--data", default=str(yosys_fit.SAMPLES))
    f.add_argument("--json", default="", help="also write the error table here")
    f.add_argument("--write", action="store_true", help="write the coefficients into hls/nodes/yosys_fit.py")
    args = parser.parse_args()
    try:
        measure(args) if args.cmd == "measure" else fit(args)
    except QnnflowError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
