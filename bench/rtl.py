"""The RTL back end on zoo models: estimated vs measured cycles per image and resources, and the tools' times.

Per model, folded for the board (default Pynq-Z1; --board ultra96 for the models too large for it)
as its build would be with ``backend: rtl`` (fold on the Yosys-fitted LUT model, hls/nodes/yosys_fit.py),
the build runs export .. estimate, fifo_size, rtl_codegen, rtlsim and synth (the flow's own steps, in
OUT/<model>/), and the bench reads their reports:

- cycles per image: the estimate (the slowest node) vs rtlsim's steady state after fifo_size, and the
  frames per second they make at the build's clock;
- LUT / BRAM18 / DSP: the estimate vs Yosys's whole-top synthesis (synth_xilinx -family xc7, or xcup
  for the Ultra96).  The fit's samples (hls/nodes/data/yosys_samples.json) are xc7 units out of
  context at other foldings than these; the LUTs are also estimated by a fit that leaves the
  model's own samples out ("LOO"), so that no unit of the model informs its estimate;
- wall seconds of fifo_size (two Verilator builds and runs), the Verilator build and the
  simulation of rtlsim, and Yosys (per unit and whole top) in synth.

A model with a node kind that has no RTL yet is listed as such and skipped.  The table is printed
and written to OUT/rtl_bench.json.  Targets (issue 17): cycles within 5%, LUT within 15%.

Usage: python bench/rtl.py [model ...] [--board B] [--out DIR]   (default: every zoo model, pynq-z1, out/bench-rtl)
       python bench/rtl.py --table DIR/rtl_bench.json ...   (the table of earlier runs, estimated anew)
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.custom_op.registry import getCustomOp  # noqa: E402

from qnnflow.base.errors import QnnflowError  # noqa: E402
from qnnflow.hls import estimate  # noqa: E402
from qnnflow.hls.nodes import yosys_fit  # noqa: E402
from qnnflow.hls.partition import hardware_region  # noqa: E402
from qnnflow.flow.config import load_config  # noqa: E402
from qnnflow.flow.runner import run_build  # noqa: E402
from qnnflow.models.zoo import ZOO  # noqa: E402

STEPS = "[export, tidy, streamline, to_hw, fold, estimate, fifo_size, rtl_codegen, rtlsim, synth]"
TARGETS = {"cycles": 0.05, "LUT": 0.15}


def run_model(name: str, board: str, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    yaml = out / f"{name}.yaml"
    yaml.write_text(f"model: {name}\nboard: {board}\nbackend: rtl\nsteps: {STEPS}\n"
                    f"outputs: [rtl, rtlsim, synth]\ngolden: {{count: 4}}\n")
    run_build(load_config(yaml), out / name, progress=lambda line: None)
    return read_model(name, out)


def read_model(name: str, out: Path) -> dict:
    """A model's row from its build in OUT/<model>/: the measured figures as they were, the estimate by
    today's cost model (a refit since the build changes it; the folding stays the one built)."""
    yaml = out / f"{name}.yaml"
    log = json.loads((out / name / "build_log.json").read_text())
    report = out / name / "report"
    perf = json.loads((report / "rtlsim_performance.json").read_text())
    synth = json.loads((report / "post_synth_yosys.json").read_text())
    sim = json.loads((out / name / "rtlsim" / "result.json").read_text())
    step_seconds = {s["name"]: s["seconds"] for s in log["steps"]}
    folded = ModelWrapper(str(next((out / name).glob("*_estimate.onnx"))))
    board = load_config(yaml).board
    layers = estimate.layer_estimates(folded, board)
    perf_est, total = estimate.network_performance(layers, 1.0), estimate.total_resources(layers)
    others = [s for s in yosys_fit.load_samples() if s["model"] != name]
    left_out = {**board, yosys_fit.COEFFICIENTS_KEY: yosys_fit.fit(others, board)}
    lut_left_out = estimate.total_resources(estimate.layer_estimates(folded, left_out))["LUT"]
    return {"model": name, "board": board["name"], "family": synth["family"], "clock_ns": log["clock_ns"],
            "cycles": {"estimate": perf_est["max_cycles"], "rtlsim": perf["cycles_per_image"],
                       "bottleneck_estimate": perf_est["max_cycles_node_name"],
                       "bottleneck_measured": perf["bottleneck_measured"]},
            "fps": {"estimate": fps(perf_est["max_cycles"], log["clock_ns"]),
                    "rtlsim": fps(perf["cycles_per_image"], log["clock_ns"])},
            "resources": {r: {"estimate": total[r], "yosys": synth["total"][r]} for r in ("LUT", "BRAM18", "DSP")},
            "lut_model_left_out": lut_left_out,
            "folding": {n.name: {a: getCustomOp(n).get_nodeattr(a) for a in ("PE", "SIMD", "ram_style", "resType")
                                 if a in getCustomOp(n).get_nodeattr_types()} for n in hardware_region(folded).nodes},
            "yosys_sum_of_units": synth.get("sum_of_nodes"),
            "seconds": {"fifo_size": step_seconds.get("fifo_size"), "verilate": sim["build_seconds"],
                        "simulate": sim["run_seconds"], "verilator_cached": sim["cached"],
                        "yosys_units": round(sum(v for k, v in synth["seconds"].items() if k != "whole top"), 1),
                        "yosys_whole_top": synth["seconds"].get("whole top"), "synth_step": step_seconds.get("synth")}}


def fps(cycles_per_image: float, clock_ns: float) -> float:
    """Images per second at the build's clock, one image every cycles_per_image cycles."""
    return round(1e9 / (clock_ns * cycles_per_image), 1)


def ratio(est, got) -> str:
    return f"{est / got - 1:+.1%}" if got else ("0" if not est else "n/a")


def format_rows(rows: list[dict]) -> str:
    head = (f"{'model':<13} {'board':<8} {'cycles est':>10} {'rtlsim':>9} {'err':>7} {'FPS est':>9} {'rtlsim':>9}  {'LUT est':>8} {'Yosys':>8} {'err':>7} {'LOO est':>8} {'err':>7} "
            f"{'units':>8} {'err':>7}  "
            f"{'BRAM18 est/Yosys':>16}  {'DSP':>7}  {'fifo_size s':>11} {'verilate s':>10} {'sim s':>6} {'Yosys s (units, top)':>20}")
    lines = [head]
    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['model']:<13} skipped: {r['skipped']}")
            continue
        c, res, s = r["cycles"], r["resources"], r["seconds"]
        units = r["yosys_sum_of_units"]["LUT"]
        verilate = "cached" if s["verilator_cached"] else f"{s['verilate']:.1f}"  # built by fifo_size already
        lines.append(
            f"{r['model']:<13} {r['board']:<8} {c['estimate']:>10,} {c['rtlsim']:>9,.1f} {ratio(c['estimate'], c['rtlsim']):>7} "
            f"{r['fps']['estimate']:>9,.0f} {r['fps']['rtlsim']:>9,.0f}  "
            f"{res['LUT']['estimate']:>8,} {res['LUT']['yosys']:>8,} {ratio(res['LUT']['estimate'], res['LUT']['yosys']):>7} "
            f"{r['lut_model_left_out']:>8,} {ratio(r['lut_model_left_out'], res['LUT']['yosys']):>7} "
            f"{units:>8,} {ratio(res['LUT']['estimate'], units):>7}  "
            f"{res['BRAM18']['estimate']:>7} / {res['BRAM18']['yosys']:<6}  {res['DSP']['estimate']:>3}/{res['DSP']['yosys']:<3}  "
            f"{s['fifo_size'] or 0:>11.0f} {verilate:>10} "
            f"{s['simulate']:>6.2f} {s['yosys_units']:>9.0f}, {s['yosys_whole_top'] or 0:>8.0f}")
    lines.append("err = estimate / measured - 1 (targets: cycles within 5%, LUT within 15%); Yosys whole top (xc7, xcup for a ZU+ board), "
                 "and units: the sum of the units out of context (what the fit's samples are); times are wall clock "
                 "on this machine, shared with other jobs")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*")
    parser.add_argument("--board", default="pynq-z1")
    parser.add_argument("--out", default="out/bench-rtl")
    parser.add_argument("--table", nargs="*", metavar="JSON",
                        help="only print the table of these rtl_bench.json files (estimates by today's cost model)")
    args = parser.parse_args()
    if args.table is not None:
        print(format_rows([row if "skipped" in row else read_model(row["model"], Path(path).parent)
                           for path in args.table for row in json.loads(Path(path).read_text())]))
        return 0
    out = Path(args.out)
    rows = []
    for name in args.models or sorted(ZOO):
        try:
            rows.append(run_model(name, args.board, out))
        except QnnflowError as err:
            rows.append({"model": name, "skipped": str(err)})
        print(format_rows(rows[-1:]).splitlines()[1], flush=True)
        (out / "rtl_bench.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(format_rows(rows))
    print(f"written to {out / 'rtl_bench.json'}")
    return 0 if all("skipped" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
