"""A FINN-style greedy folding, the baseline the exact search is measured against.

Like FINN's SetFolding: for a cycle target, each node walks its parallelism up through
the divisors until it meets the target (MVAU: SIMD first, then PE, stopping at the
weight-word limit; windows and padding: SIMD; the others: PE), leaving ram_style and
resType as they are.  FINN takes one target; here the target is swept over every cycle
count the walks can produce and the fastest design within the budget is kept, which is
the best this heuristic can do.  Costs come from the same node cost models and the same
width-converter accounting as the exact search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.base.values import divisors
from qnnflow.hls.nodes.cost import RESOURCES
from qnnflow.hls.partition import hardware_region
from qnnflow.hls.widths import converter_cost, input_adapter, output_adapter, port_formats, stream_edges, strip_derived
from qnnflow.transforms.fold.budget import DEFAULT_BUDGET, Budget
from qnnflow.hls.nodes.views import op_view
from qnnflow.transforms.fold.space import DEFAULT_MAX_WEIGHT_WIDTH

WALK_ORDER = ("SIMD", "PE")


@dataclass
class GreedyResult:
    folding: dict  # node name -> {attr: value}
    totals: dict
    bottleneck: int
    fps: float
    seconds: float


def _walk(node, board: dict, max_weight_width: int) -> list[tuple[dict, int, tuple, int, int]]:
    """The foldings a node passes through, slowest first: (attrs, cycles, res, in width, out width)."""
    op = op_view(node)
    knobs = op.parallel_knobs()
    attrs = {attr: 1 for attr in knobs}
    for attr, value in attrs.items():
        op.set_nodeattr(attr, value)

    def record():
        res = op.resources_with_stream(board)
        cost = tuple(int(res[r]) for r in RESOURCES)
        return dict(attrs), int(op.cycles()), cost, op.instream_width(), op.outstream_width()

    steps = [record()]
    for attr in (a for a in WALK_ORDER if a in knobs):
        for value in divisors(op.get_nodeattr(knobs[attr]))[1:]:
            op.set_nodeattr(attr, value)
            bits = op.parameter_word_bits()
            if op.problems() or (bits is not None and bits > max_weight_width):
                op.set_nodeattr(attr, attrs[attr])
                break
            attrs[attr] = value
            steps.append(record())
    return steps


def greedy_fold(model: ModelWrapper, board: dict, clock_ns: float | None = None, *, lut=DEFAULT_BUDGET["lut"],
                bram=DEFAULT_BUDGET["bram"], dsp=DEFAULT_BUDGET["dsp"],
                max_weight_width: int = DEFAULT_MAX_WEIGHT_WIDTH) -> GreedyResult | None:
    """The fastest FINN-style greedy folding within the budget (None if even the slowest does not fit)."""
    started = time.perf_counter()
    clock_ns = float(clock_ns if clock_ns is not None else board["clock_ns"])
    budget = Budget.of(board, lut, bram, dsp)
    limits = budget.vector()
    model = ModelWrapper(model.model.__deepcopy__())
    strip_derived(model)
    region = hardware_region(model)
    chain, edges = region.nodes, stream_edges(model, region)
    port_in, port_out = port_formats(region, board)
    walks = [_walk(node, board, max_weight_width) for node in chain]
    targets = sorted({step[1] for walk in walks for step in walk}, reverse=True)
    best = None
    for target in targets:
        picks = [next((s for s in walk if s[1] <= target), walk[-1]) for walk in walks]
        ports = [input_adapter(port_in, picks[0][3]), output_adapter(port_out, picks[-1][4])]
        totals = np.sum([p[2] for p in picks] + [[a.resources()[r] for r in RESOURCES] for a in ports], axis=0)
        worst = max([p[1] for p in picks] + [a.cycles() for a in ports])
        for edge, (a, b) in zip(edges, zip(picks, picks[1:])):
            cost = converter_cost(edge, a[4], b[3], board)
            if cost is None:
                totals = None
                break
            totals = totals + cost.res
            worst = max(worst, cost.cycles)
        if totals is None or (totals > limits).any():
            continue
        key = (worst, float(budget.device_weights() @ totals))
        if best is None or key < best[0]:
            best = (key, picks, totals)
    if best is None:
        return None
    (worst, _), picks, totals = best
    folding = {node.name: pick[0] for node, pick in zip(chain, picks)}
    return GreedyResult(folding, dict(zip(RESOURCES, (int(t) for t in totals))), int(worst),
                        1e9 / (worst * clock_ns), time.perf_counter() - started)
