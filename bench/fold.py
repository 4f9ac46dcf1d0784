"""Automatic folding on every zoo model for Pynq-Z1 and Ultra96, against a FINN-style greedy baseline.

Per model and board, on the same calibrated cost model and budget (85% LUT, 90% BRAM18/DSP):
- fold: the exact search's estimated FPS, LUT/BRAM18/DSP and run time (best of 3);
- greedy: FINN's SetFolding walk (SIMD then PE up through the divisors to a cycle target),
  swept over every target, the fastest design within the budget (bench/greedy.py);
- LUT ceiling: the FPS if the whole LUT budget were MVAU lanes at the cost model's marginal
  LUTs per lane, with no control, memory or other node (an upper bound, not a design);
- the structural ceiling: the slowest node at its widest legal folding.
Then the cost model next to BNN-PYNQ's published Pynq-Z1 figures (hls/nodes/cost.py).

Usage: python bench/fold.py [model ...]   (default: the whole zoo; --mww N sets max_weight_width)
"""

import sys
import warnings

warnings.filterwarnings("ignore")

from timing import best_of  # noqa: E402

from qnnflow.base.values import divisors  # noqa: E402
from qnnflow.flow.boards import load_board  # noqa: E402
from qnnflow.base.errors import QnnflowError  # noqa: E402
from qnnflow.hls.nodes import cost  # noqa: E402
from qnnflow.models.export import export_source  # noqa: E402
from qnnflow.models.source import parse_model_source  # noqa: E402
from greedy import greedy_fold  # noqa: E402

from qnnflow.hls.nodes.calibration import PUBLISHED, SHELL_LUTS, calibration_rows, leave_one_out  # noqa: E402
from qnnflow.hls.partition import hardware_region  # noqa: E402
from qnnflow.transforms.fold import fold  # noqa: E402
from qnnflow.transforms.fold.budget import Budget  # noqa: E402
from qnnflow.hls.nodes.views import op_view  # noqa: E402
from qnnflow.transforms.fold.space import DEFAULT_MAX_WEIGHT_WIDTH  # noqa: E402
from qnnflow.transforms.streamline import streamline  # noqa: E402
from qnnflow.transforms.tidy import tidy  # noqa: E402
from qnnflow.transforms.to_hw import to_hw  # noqa: E402

ZOO = [f"{f}_{q}" for f in ("cnv", "lfc", "tfc") for q in ("w1a1", "w1a2", "w2a2")] + ["cnv_w4a4", "cnv_w8a8"]
BOARDS = ("pynq-z1", "ultra96")


def hardware_graph(name):
    model, _ = export_source(parse_model_source(name), "random", 1, 0)
    return to_hw(streamline(tidy(model)))[0]


def widest_legal(op, mh: int, mw: int) -> tuple[int, int]:
    """The legal (PE, SIMD) with the most lanes (the back end caps stream and weight words)."""
    best = (1, 1)
    for simd in divisors(mw):
        for pe in divisors(mh):
            op.set_nodeattr("PE", pe)
            op.set_nodeattr("SIMD", simd)
            if pe * simd > best[0] * best[1] and not op.problems():
                best = (pe, simd)
    return best


def lut_ceiling_fps(model, board, clock_ns) -> float:
    """FPS with the LUT budget spent on MVAU lanes only, each at its marginal cost (fold 1 to fully parallel)."""
    lut_cycles = 0.0
    for node in hardware_region(model).nodes:
        if node.op_type != "MVAU":
            continue
        op = op_view(node)
        mw, mh = op.get_nodeattr("MW"), op.get_nodeattr("MH")
        op.set_nodeattr("ram_style", "block")
        op.set_nodeattr("resType", "lut")
        costs, lanes = [], []
        for pe, simd in ((1, 1), widest_legal(op, mh, mw)):
            op.set_nodeattr("PE", pe)
            op.set_nodeattr("SIMD", simd)
            costs.append(op.resources(board)["LUT"])
            lanes.append(pe * simd)
        per_lane = (costs[1] - costs[0]) / max(lanes[1] - 1, 1)
        work = op.cycles() * lanes[1]  # MACs per image (cycles at that folding x lanes)
        lut_cycles += work * per_lane
    budget = Budget.of(board).limits["LUT"]
    return 1e9 / (lut_cycles / budget * clock_ns)


def row(name, model, board_name, mww):
    board = load_board(board_name)
    clock = board["clock_ns"]
    try:
        seconds = best_of(lambda: fold(model, board, max_weight_width=mww))
        _, report = fold(model, board, max_weight_width=mww)
    except QnnflowError as err:
        return f"{name:<9} {board_name:<8} {str(err)[:110]}"
    greedy = greedy_fold(model, board, max_weight_width=mww)
    g = f"{greedy.fps:>10,.0f} {greedy.totals['LUT']:>7,}" if greedy else f"{'none fits':>18}"
    ratio = f"{report.fps / greedy.fps:5.2f}x" if greedy else "   - "
    t = report.totals
    return (f"{name:<9} {board_name:<8} {report.fps:>10,.0f} {t['LUT']:>7,} {t['BRAM18']:>5} {t['DSP']:>4} "
            f"{seconds:>6.2f}s | {g} {ratio} | {lut_ceiling_fps(model, board, clock):>11,.0f} "
            f"{report.ceiling['fps']:>11,.0f} {report.ceiling['node']}")


def main(names, mww):
    print(f"max_weight_width={mww}; clocks: Pynq-Z1 100 MHz, Ultra96 200 MHz; budget 85% LUT, 90% BRAM18/DSP")
    print(f"{'model':<9} {'board':<8} {'fold FPS':>10} {'LUT':>7} {'BRAM':>5} {'DSP':>4} {'time':>7} | "
          f"{'greedy FPS':>10} {'LUT':>7} {'ratio':>6} | {'LUT ceiling':>11} {'structural':>11}")
    models = {}
    for name in names:
        models[name] = hardware_graph(name)
        for board_name in BOARDS:
            print(row(name, models[name], board_name, mww), flush=True)
    calibrate = [n for n in PUBLISHED if n in models] or []
    if calibrate:
        print(f"\ncost model vs BNN-PYNQ on Pynq-Z1 at its foldings (ours = nodes + {SHELL_LUTS:,} LUT shell)")
        for r in calibration_rows({n: models[n] for n in calibrate}, load_board("pynq-z1")):
            print(f"  {r['overlay']:<8} {r['resource']:<6} published {r['published']:>7,}  ours {r['ours']:>7,}  "
                  f"{r['ratio'] - 1:+.0%}")
        if len(calibrate) > len(cost.FITTED):  # a fit needs as many other overlays as coefficients
            print("out of sample: each overlay's LUTs from a fit on the others")
            for r in leave_one_out({n: models[n] for n in calibrate}, load_board("pynq-z1")):
                print(f"  {r['overlay']:<8} LUT    published {r['published']:>7,}  ours {r['predicted']:>7,.0f}  "
                      f"{r['ratio'] - 1:+.0%}")


if __name__ == "__main__":
    args = sys.argv[1:]
    mww = DEFAULT_MAX_WEIGHT_WIDTH
    if "--mww" in args:
        i = args.index("--mww")
        mww = int(args[i + 1])
        del args[i : i + 2]
    main(args or ZOO, mww)
