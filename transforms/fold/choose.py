"""Folding: choose PE/SIMD, ram_style and resType of every dataflow node for a board.

``fold(model, board, clock_ns, ...) -> (model, FoldReport)`` in one of three modes:

- maximise (default): the smallest achievable bottleneck (largest per-node cycle count)
  within the budget (fractions of the board's LUT, BRAM18 and DSP), then the cheapest
  design at that bottleneck; every node not on the bottleneck gets the cheapest folding
  that keeps it at or under the bottleneck;
- target (``target_fps`` or ``target_cycles``): the cheapest design meeting it;
- explicit (``folding``: a FINN folding JSON mapping, see ``finn_json``): applied as given.

Resources are summed over all nodes, the width converters wherever adjacent stream widths
differ and the two AXI port adapters (hls/widths.py places and costs both; converters and
FIFOs already in the graph are removed first: they depend on the folding).  "Cheapest"
minimises the sum of the fractions of the board used, LUT/LUTs + BRAM18/BRAM18s + DSP/DSPs.
The search (``search``) is exact for this cost model; its module docstring gives the argument.
A fork's branch FIFOs are sized after the search, from the folded branches' cycles
(hls/branch_fifos.py); where they push the design over budget the search runs again with
their cost set aside, and the report's notes say why each is as deep as it is.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import time

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.hls import estimate
from qnnflow.hls.branch_fifos import FORK, reset_branch_fifos, size_branch_fifos
from qnnflow.hls.nodes.cost import RESOURCES
from qnnflow.hls.widths import insert_converters, strip_derived
from qnnflow.transforms.fold import search as fold_search
from qnnflow.transforms.fold.budget import BUDGET_FIELDS, DEFAULT_BUDGET, Budget
from qnnflow.transforms.fold.finn_json import apply_folding, folding_config
from qnnflow.transforms.fold.report import FoldReport
from qnnflow.transforms.fold.space import DEFAULT_MAX_WEIGHT_WIDTH, FoldSpace, build_space



FIFO_RETRIES = 2  # searches again when the branch FIFOs sized after a search push the design over budget


def set_folding(model: ModelWrapper, space: FoldSpace, problem: fold_search.Problem, choice: list[int]) -> None:
    nodes = {n.name: n for n in model.graph.node}
    for i, (ns, k) in enumerate(zip(space.nodes, choice)):
        op = getCustomOp(nodes[ns.name])
        for attr, value in ns.attrs[int(problem.origin[i][k])].items():
            op.set_nodeattr(attr, value)


# ----- the search as a fold_search.Problem -------------------------------------------------


def _classes(columns: list[np.ndarray], count: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows, class of each candidate) of the width tuples ``columns`` (none: one class)."""
    if not columns:
        return np.zeros((1, 0), dtype=np.int64), np.zeros(count, dtype=np.int64)
    keys, cls = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
    return keys, cls.ravel()


def make_problem(space: FoldSpace, budget: np.ndarray, weights: np.ndarray) -> fold_search.Problem:
    """The region as a chain problem: position i is node i (topological order), and a width class after
    position i is the tuple of widths of the streams crossing that cut (one stream in a chain).

    A stream passing over a node (a residual skip) is carried: the node's candidates repeat once per
    width its producer may write, so the converter where the stream ends is costed exactly.  The edge
    table between positions i and i+1 charges a converter for each stream node i+1 reads and is
    illegal where a carried width would change.
    """
    edges, n = space.edges, len(space.nodes)
    after = [[e for e, edge in enumerate(edges) if edge.link.producer <= i < edge.link.consumer] for i in range(n)]
    before = [[], *after[:-1]]
    carried_values = {e: np.unique(space.nodes[edge.link.producer].out_width[:, edge.link.out_port])
                      for e, edge in enumerate(edges)}
    nodes, origin, in_keys, out_keys = [], [], [], []
    for i, ns in enumerate(space.nodes):
        over = [e for e in before[i] if e in after[i]]
        combos = np.array(list(itertools.product(*(carried_values[e] for e in over))), dtype=np.int64)
        combos = combos.reshape(max(len(combos), 1), len(over))
        k = np.repeat(np.arange(len(ns)), len(combos))  # candidate k once per carried combination
        carry = np.tile(np.arange(len(combos)), len(ns))

        def column(e, own_widths, port):
            return combos[carry, over.index(e)] if e in over else own_widths[k, port]

        ik, ic = _classes([column(e, ns.in_width, edges[e].link.in_port) for e in before[i]], len(k))
        ok, oc = _classes([column(e, ns.out_width, edges[e].link.out_port) for e in after[i]], len(k))
        nodes.append(fold_search.NodeCands(ns.cycles[k], ns.res[k], ic, oc))
        origin.append(k)
        in_keys.append(ik)
        out_keys.append(ok)
    problem_edges = []
    for i in range(n - 1):
        P, C = len(out_keys[i]), len(in_keys[i + 1])
        res = np.zeros((P, C, 3), dtype=np.int64)
        cycles = np.zeros((P, C), dtype=np.int64)
        legal = np.ones((P, C), dtype=bool)
        for col, e in enumerate(after[i]):
            a, w = out_keys[i][:, col], in_keys[i + 1][:, col]
            if edges[e].link.consumer != i + 1:  # carried past node i + 1: the width cannot change
                legal &= a[:, None] == w[None, :]
                continue
            for p in range(P):
                for c in range(C):
                    cost = space.dwc(e, int(a[p]), int(w[c])) if legal[p, c] else None
                    if cost is None:
                        legal[p, c] = False
                    else:
                        res[p, c] += cost.res
                        cycles[p, c] = max(cycles[p, c], cost.cycles)
        if not legal.any():  # else every design is "infinitely expensive" and the budget error says inf
            e = next(e for e in after[i] if edges[e].link.consumer == i + 1)
            producer, consumer = space.nodes[edges[e].link.producer].name, space.nodes[i + 1].name
            col = after[i].index(e)
            raise QnnflowError(
                f"node '{consumer}': no width converter joins it to '{producer}' at any folding (output words of "
                f"{sorted({int(v) for v in out_keys[i][:, col]})} bits, input words of "
                f"{sorted({int(v) for v in in_keys[i + 1][:, col]})} bits); check the two nodes' shapes and datatypes")
        problem_edges.append(fold_search.EdgeCands(res, cycles, legal))
    return fold_search.Problem(nodes, problem_edges, budget, weights, origin)


def _ceiling(space: FoldSpace, clock_ns: float) -> dict:
    """The fastest any legal folding can go: the slowest node at its widest folding."""
    fastest = [int(ns.cycles.min()) for ns in space.nodes]
    worst = int(np.argmax(fastest))
    name = space.nodes[worst].name
    return {"max_cycles": fastest[worst], "node": name, "fps": 1e9 / (fastest[worst] * clock_ns),
            "weight_word_limited": name in space.weight_limited}


def _weight_hint(ceiling: dict, max_weight_width: int) -> str:
    if not ceiling["weight_word_limited"]:
        return ""
    return (f"; fold.max_weight_width={max_weight_width} caps PE*SIMD*weight bits of '{ceiling['node']}', "
            f"raise it to go faster")


def _budget_error(problem, space: FoldSpace, budget: Budget, T: int, what: str) -> QnnflowError:
    """What the budget would need at bottleneck T: the least of each resource, and the node needing most."""
    limits = budget.limits
    over, least = {}, {}
    for r, res in enumerate(RESOURCES):
        total, per_node = fold_search.min_single(problem, T, r)
        least[res] = total
        if total > limits[res]:
            worst = int(np.argmax(per_node))
            over[res] = (f"at least {total:,.0f} {res} (budget {budget.describe(res)}; most: "
                         f"'{space.nodes[worst].name}', {per_node[worst]:,.0f} {res})")
    if over:
        fix = " or ".join(f"fold.{BUDGET_FIELDS[r]}" for r in over)
        return QnnflowError(f"fold: {what} needs {'; '.join(over.values())}; raise {fix} or choose a larger board")
    designs = []
    for r, res in enumerate(RESOURCES):  # the design using least of r, the others unbounded
        weights = np.full(3, 1e-9)
        weights[r] = 1.0
        relaxed = fold_search.Problem(problem.nodes, problem.edges, np.full(3, 1 << 40), weights)
        best = fold_search.solve(relaxed, T)
        needs = ", ".join(f"{int(v):,} {x}" for v, x in zip(best.totals, RESOURCES))
        designs.append(f"the fewest-{res} design needs {needs}")
    limits_text = ", ".join(f"{limits[r]:,} {r}" for r in RESOURCES)
    return QnnflowError(
        f"fold: {what} fits no combination of the budgets: {'; '.join(designs)} (budget {limits_text}); "
        f"raise fold.lut, fold.bram or fold.dsp, or choose a larger board")


def _target_cycles(target_fps, target_cycles, clock_ns) -> tuple[int, str] | None:
    if target_cycles is not None:
        return int(target_cycles), f"fold.target_cycles={target_cycles}"
    if target_fps is not None:
        cycles = int(math.floor(1e9 / (float(target_fps) * clock_ns)))
        return cycles, f"fold.target_fps={target_fps:g} ({cycles:,} cycles per image at {1e3 / clock_ns:g} MHz)"
    return None


# ----- the entry point ---------------------------------------------------------------------


def _search(problem: fold_search.Problem, space: FoldSpace, budget: Budget, target, at_least: int = 0):
    """The solution of ``problem`` (within its budget): the smallest bottleneck, or the cheapest design at
    ``target`` (cycles, description); a QnnflowError saying what the budget would need when nothing fits."""
    if target is None:
        solution = fold_search.min_bottleneck(problem, at_least)
        if solution is None:
            T = int(fold_search.cycle_levels(problem)[-1])
            raise _budget_error(problem, space, budget, T, "even the slowest folding")
        return solution
    solution = fold_search.solve(problem, target[0])
    if solution is None:
        raise _budget_error(problem, space, budget, target[0], target[1])
    return solution


def fold(model: ModelWrapper, board: dict, clock_ns: float | None = None, *, lut: float = DEFAULT_BUDGET["lut"],
         bram: float = DEFAULT_BUDGET["bram"], dsp: float = DEFAULT_BUDGET["dsp"], target_fps: float | None = None, target_cycles: int | None = None,
         folding: dict | None = None, folding_source: str = "folding", max_weight_width: int = DEFAULT_MAX_WEIGHT_WIDTH):
    """Fold ``model`` for ``board``; returns (folded copy, FoldReport).  See the module docstring for the modes."""
    started = time.perf_counter()
    chosen = [n for n, v in (("fold.file", folding), ("fold.target_fps", target_fps),
                             ("fold.target_cycles", target_cycles)) if v is not None]
    if len(chosen) > 1:
        raise QnnflowError(f"fold: {' and '.join(chosen)} are both set; set only one (a file, or one target)")
    clock_ns = float(clock_ns if clock_ns is not None else board["clock_ns"])
    budget = Budget.of(board, lut, bram, dsp)
    model = ModelWrapper(copy.deepcopy(model.model))
    notes = []
    removed = strip_derived(model)
    if removed:
        notes.append(f"removed {removed} width converter/FIFO node(s) from an earlier folding")
    reset_branch_fifos(model)  # sized again below, for the new folding
    space = build_space(model, board, max_weight_width)
    ceiling = _ceiling(space, clock_ns)
    target = _target_cycles(target_fps, target_cycles, clock_ns)
    mode = "file" if folding is not None else "maximise" if target is None else \
        "target_fps" if target_fps is not None else "target_cycles"
    if target is not None and target[0] < ceiling["max_cycles"]:
        raise QnnflowError(
            f"fold: {target[1]} is beyond the ceiling: node '{ceiling['node']}' needs at least "
            f"{ceiling['max_cycles']:,} cycles per image at its widest legal folding (at most "
            f"{ceiling['fps']:,.0f} FPS at {1e3 / clock_ns:g} MHz); lower the target"
            f"{_weight_hint(ceiling, max_weight_width)}")
    unfolded = model
    problem = make_problem(space, budget.vector(), budget.device_weights()) if folding is None else None
    for attempt in range(FIFO_RETRIES + 1):
        model = ModelWrapper(copy.deepcopy(unfolded.model))
        if folding is not None:
            notes += apply_folding(model, folding, max_weight_width, folding_source)
        else:
            # a retry has less room, so it cannot beat the last bottleneck
            solution = _search(problem, space, budget, target, solution.bottleneck if attempt else 0)
            set_folding(model, space, problem, solution.choice)
        converters = insert_converters(model, board)
        layers = estimate.layer_estimates(model, board)
        performance = estimate.network_performance(layers, clock_ns)
        if folding is None:  # the graph's own cost models must agree with the search's bookkeeping
            got = estimate.total_resources(layers)
            if [got[r] for r in RESOURCES] != list(solution.totals) or performance["max_cycles"] != solution.bottleneck:
                raise RuntimeError(f"internal error: the folded graph costs {got} at {performance['max_cycles']} "
                                   f"cycles, the search counted {list(solution.totals)} at {solution.bottleneck}")
        searched = estimate.total_resources(layers)
        fifo_notes = size_branch_fifos(model) if any(n.op_type == FORK for n in model.graph.node) else []
        if fifo_notes:
            layers = estimate.layer_estimates(model, board)
            performance = estimate.network_performance(layers, clock_ns)
        totals = estimate.total_resources(layers)
        extra = np.array([totals[r] - searched[r] for r in RESOURCES])
        if folding is not None or not fifo_notes or (np.array([totals[r] for r in RESOURCES]) <= budget.vector()).all():
            break
        if attempt == FIFO_RETRIES:
            notes.append("the branch FIFOs push the design over the budget; lower the budget fractions or the "
                         "target to leave them room")
            break
        # the FIFOs' size depends on the folding the search picks: search again, leaving them room
        problem = dataclasses.replace(problem, budget=np.maximum(budget.vector() - extra, 0))
        notes.append(f"searched again leaving {', '.join(f'{int(v):,} {r}' for v, r in zip(extra, RESOURCES) if v)} "
                     f"for the branch FIFOs")
    notes += fifo_notes
    if folding is None and performance["max_cycles"] == ceiling["max_cycles"] and ceiling["weight_word_limited"]:
        notes.append(f"the design is at its ceiling{_weight_hint(ceiling, max_weight_width)}")
    report = FoldReport(mode, board["name"], clock_ns, budget, layers, performance, ceiling,
                        folding_config(model), converters, time.perf_counter() - started, max_weight_width, notes)
    if mode == "file" and not report.within_budget():
        over = [r for r in RESOURCES if report.totals[r] > budget.limits[r]]
        report.notes.append("the folding file's design exceeds the budget: " + ", ".join(
            f"{report.totals[r]:,} {r} > {budget.describe(r)}" for r in over))
    return model, report
