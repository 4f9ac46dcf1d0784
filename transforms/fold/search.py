"""Exact folding search on a chain: the smallest bottleneck within a budget, then the cheapest design.

The problem (pure arrays, no graph; ``Problem``): a chain of nodes, node i choosing one
candidate k with ``cycles[k]`` and resources ``res[k] = (LUT, BRAM18, DSP)``; between
nodes i and i+1 a width converter whose cost and cycles depend on node i's output width
class and node i+1's input width class (zero when equal, "illegal" when no converter can do
it).  A DAG (forks and joins) is posed as such a chain by ``choose.make_problem``: a class
there is the tuple of widths of every stream crossing the cut between two positions.

Claim: ``min_bottleneck`` returns an assignment minimising the largest cycle count over
nodes and converters subject to total LUT, BRAM18 and DSP each within budget, and among
those, one minimising the objective ``weights . totals``.

Why it is exact:
1. Feasibility is monotone in the bottleneck T: raising T only adds candidates.  The
   optimal bottleneck is one of the finitely many cycle counts of candidates and
   converters (in real graphs converters never exceed their neighbours), so a search over the
   sorted distinct counts finds the least feasible T.  It starts at a necessary bound (the
   nodes' cheapest candidates must fit each resource alone) and gallops, then bisects.
2. For a fixed T, ``_solve_at`` is an exact dynamic programme over the chain.  Its state
   after a node is (that node's output-width class, BRAM18 used, DSP used) and its value
   the least LUT total reaching that state; every transition (a node candidate with cycles
   <= T, a legal converter with cycles <= T) adds its cost.  BRAM18 and DSP are small
   integers, so the state space is exact, not a discretisation.  The only states dropped
   are (a) over budget, (b) dominated within the same width class (another state with
   <= BRAM18, <= DSP and <= LUT: any completion of the dropped state completes the
   dominating one at no greater cost), so for every feasible assignment a state at least
   as cheap in all three resources survives to the end.
3. Candidates are pruned before the DP only when dominated in every context: candidate j
   removes k when j's cost plus its worst-case adjacent converters is <= k's cost plus its
   best-case adjacent converters, in all three resources (ties: lower index wins).
4. The final table holds, per reachable (BRAM18, DSP), the least LUT; the objective is
   non-decreasing in each resource, so its minimum over the table is the optimum, and the
   recorded transitions give an assignment attaining it.
``tests/transforms/test_fold_search.py`` checks this against brute force over all
assignments of random small chains.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

INF = np.inf


@dataclass
class NodeCands:
    cycles: np.ndarray  # (K,) int
    res: np.ndarray  # (K, 3) int: LUT, BRAM18, DSP
    in_cls: np.ndarray  # (K,) index into the input-width classes
    out_cls: np.ndarray  # (K,) index into the output-width classes


@dataclass
class EdgeCands:
    """Converter between node i's output classes (P) and node i+1's input classes (C)."""

    res: np.ndarray  # (P, C, 3) int
    cycles: np.ndarray  # (P, C) int
    legal: np.ndarray  # (P, C) bool


@dataclass
class Problem:
    nodes: list[NodeCands]
    edges: list[EdgeCands]  # len(nodes) - 1
    budget: np.ndarray  # (3,) int: LUT, BRAM18, DSP
    weights: np.ndarray  # (3,) float, the objective's weight per resource
    origin: list | None = None  # per node, the FoldSpace candidate each candidate stands for (None: itself)


@dataclass
class Solution:
    choice: list[int]  # candidate per node
    converters: list[tuple[int, int]]  # (output class, input class) per edge
    totals: np.ndarray  # (3,) int
    bottleneck: int  # largest cycle count over nodes and converters
    objective: float


# ----- evaluating an assignment ------------------------------------------------------------


def evaluate(problem: Problem, choice: list[int]) -> tuple[np.ndarray, int] | None:
    """(totals, bottleneck) of an assignment, converters included; None if a converter is illegal."""
    totals = np.zeros(3, dtype=np.int64)
    worst = 0
    for i, (node, k) in enumerate(zip(problem.nodes, choice)):
        totals += node.res[k]
        worst = max(worst, int(node.cycles[k]))
        if i + 1 < len(problem.nodes):
            p, c = int(node.out_cls[k]), int(problem.nodes[i + 1].in_cls[choice[i + 1]])
            edge = problem.edges[i]
            if not edge.legal[p, c]:
                return None
            totals += edge.res[p, c]
            worst = max(worst, int(edge.cycles[p, c]))
    return totals, worst


def objective(problem: Problem, totals) -> float:
    return float(np.dot(problem.weights, totals))


# ----- candidate pruning ---------------------------------------------------------------------


def _edge_bounds(edge: EdgeCands | None, T: int, axis: int, n: int):
    """Per class of this node on ``edge`` (axis 0: output side, 1: input side): min and max converter cost."""
    if edge is None:
        return np.zeros((n, 3)), np.zeros((n, 3))
    ok = edge.legal & (edge.cycles <= T)
    cost = np.where(ok[..., None], edge.res, INF)  # an unusable pairing is infinitely expensive
    return cost.min(axis=1 - axis), cost.max(axis=1 - axis)


def prune(problem: Problem, i: int, T: int, keep: np.ndarray) -> np.ndarray:
    """Indices of node i's candidates in ``keep`` not dominated in every context (see module doc, 3)."""
    node = problem.nodes[i]
    n_in = int(node.in_cls.max()) + 1
    n_out = int(node.out_cls.max()) + 1
    in_lo, in_hi = _edge_bounds(problem.edges[i - 1] if i > 0 else None, T, 1, n_in)
    out_lo, out_hi = _edge_bounds(problem.edges[i] if i + 1 < len(problem.nodes) else None, T, 0, n_out)
    res = node.res[keep].astype(float)
    lo = res + in_lo[node.in_cls[keep]] + out_lo[node.out_cls[keep]]
    hi = res + in_hi[node.in_cls[keep]] + out_hi[node.out_cls[keep]]
    alive = np.isfinite(lo).all(axis=1)  # a candidate with no usable converter on a side is unusable
    le = np.ones((len(keep), len(keep)), dtype=bool)  # [j, k]: j is never worse than k
    strict = np.zeros_like(le)
    for r in range(3):
        if hi[:, r].any() or lo[:, r].any():
            le &= hi[:, None, r] <= lo[None, :, r]
            strict |= hi[:, None, r] < lo[None, :, r]
    order = np.arange(len(keep))
    dominates = le & (strict | (order[:, None] < order[None, :])) & alive[:, None]
    np.fill_diagonal(dominates, False)
    return keep[alive & ~dominates.any(axis=0)]


# ----- the dynamic programme ------------------------------------------------------------------


def _index(positions: np.ndarray):
    """A slice when ``positions`` are consecutive (a view, no copy), else the index array."""
    if len(positions) and positions[-1] - positions[0] == len(positions) - 1:
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def _stage(state, transitions, n_dst: int, budget: np.ndarray, record: bool):
    """Apply transitions (src class, dst class, lut, bram, dsp) to ``state``; returns the new state.

    state = (table (C, nb, nd) least LUT or inf, bvals (nb,), dvals (nd,)).
    """
    table, bvals, dvals = state
    tr = np.asarray(transitions, dtype=np.int64).reshape(-1, 5)
    if len(tr) == 0:
        return None
    newb = np.unique(np.add.outer(bvals, np.unique(tr[:, 3])))
    newd = np.unique(np.add.outer(dvals, np.unique(tr[:, 4])))
    newb, newd = newb[newb <= budget[1]], newd[newd <= budget[2]]
    new = np.full((n_dst, len(newb), len(newd)), INF)
    arg = np.full(new.shape, -1, dtype=np.int32) if record else None
    for t, (src, dst, lut, b, d) in enumerate(tr):
        nb = bisect.bisect_right(bvals, budget[1] - b)
        nd = bisect.bisect_right(dvals, budget[2] - d)
        if nb == 0 or nd == 0:
            continue
        ib = _index(np.searchsorted(newb, bvals[:nb] + b))
        id_ = _index(np.searchsorted(newd, dvals[:nd] + d))
        cand = table[src, :nb, :nd] + lut
        if isinstance(ib, slice) and isinstance(id_, slice):
            cur = new[dst, ib, id_]  # a view: updated in place
            better = cand < cur
            np.copyto(cur, cand, where=better)
            if record:
                arg[dst, ib, id_][better] = t
        else:
            ix = np.ix_(np.arange(newb.size)[ib], np.arange(newd.size)[id_])
            cur = new[dst][ix]
            better = cand < cur
            new[dst][ix] = np.where(better, cand, cur)
            if record:
                a = arg[dst][ix]
                a[better] = t
                arg[dst][ix] = a
    new[new > budget[0]] = INF
    # drop states dominated within their class: another with <= BRAM18, <= DSP and <= LUT
    pm = np.minimum.accumulate(np.minimum.accumulate(new, axis=1), axis=2)
    shifted = np.full(new.shape, INF)
    shifted[:, 1:, :] = pm[:, :-1, :]
    shifted[:, :, 1:] = np.minimum(shifted[:, :, 1:], pm[:, :, :-1])
    new[shifted <= new] = INF
    live = np.isfinite(new)
    rows, cols = live.any(axis=(0, 2)), live.any(axis=(0, 1))
    if not rows.any():
        return None
    new = new[:, rows][:, :, cols]
    if record:
        arg = arg[:, rows][:, :, cols]
    return (new, newb[rows], newd[cols]), (arg, tr)


def _solve_at(problem: Problem, T: int, record: bool):
    """The DP at bottleneck T: (final state, per-stage records for backtracking), or None if infeasible."""
    state = (np.zeros((1, 1, 1)), np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64))
    records = []
    for i, node in enumerate(problem.nodes):
        keep = prune(problem, i, T, np.flatnonzero(node.cycles <= T))
        if keep.size == 0:
            return None
        src = np.zeros(len(keep), dtype=np.int64) if i == 0 else node.in_cls[keep]
        trans = np.column_stack([src, node.out_cls[keep], node.res[keep]])
        out = _stage(state, trans, int(node.out_cls.max()) + 1, problem.budget, record)
        if out is None:
            return None
        state, (arg, _) = out
        records.append(("node", arg, keep, state, trans))
        if i + 1 < len(problem.nodes):
            edge = problem.edges[i]
            p, c = np.nonzero(edge.legal & (edge.cycles <= T))
            trans = np.column_stack([p, c, edge.res[p, c]])
            out = _stage(state, trans, edge.legal.shape[1], problem.budget, record)
            if out is None:
                return None
            state, (arg, _) = out
            records.append(("edge", arg, (p, c), state, trans))
    return state, records


def solve(problem: Problem, T: int) -> Solution | None:
    """The least-objective assignment with every cycle count <= T within budget, or None."""
    found = _solve_at(problem, T, record=True)
    if found is None:
        return None
    (table, bvals, dvals), records = found
    w = problem.weights
    score = table * w[0] + bvals[None, :, None] * w[1] + dvals[None, None, :] * w[2]
    cls, bi, di = np.unravel_index(int(np.argmin(score)), score.shape)
    b, d = int(bvals[bi]), int(dvals[di])
    choice, converters = [], []
    for s in range(len(records) - 1, -1, -1):
        kind, arg, tags, (_, sb, sd), trans = records[s]
        t = int(arg[cls, np.searchsorted(sb, b), np.searchsorted(sd, d)])
        src, _, _, db, dd = (int(v) for v in trans[t])
        b, d, cls = b - db, d - dd, src
        if kind == "node":
            choice.append(int(tags[t]))
        else:
            converters.append((int(tags[0][t]), int(tags[1][t])))
    choice.reverse()
    converters.reverse()
    totals, worst = evaluate(problem, choice)
    return Solution(choice, converters, totals, worst, objective(problem, totals))


def cycle_levels(problem: Problem) -> np.ndarray:
    """The distinct candidate cycle counts from the smallest achievable bottleneck up, ascending."""
    floor = max(int(n.cycles.min()) for n in problem.nodes)
    edges = [e.cycles[e.legal] for e in problem.edges]  # never above their neighbours' in real graphs
    levels = np.unique(np.concatenate([n.cycles for n in problem.nodes] + edges))
    return levels[levels >= floor]


def feasible(problem: Problem, T: int) -> bool:
    return _solve_at(problem, T, record=False) is not None


def necessary_floor(problem: Problem, levels: np.ndarray) -> int:
    """Index of the first level where the nodes' cheapest candidates, each resource alone, fit the budget.

    Converters cost >= 0, so below it nothing is feasible: the search starts here.
    """
    need = np.zeros((len(levels), 3))
    for node in problem.nodes:
        order = np.argsort(node.cycles, kind="stable")
        running = np.minimum.accumulate(node.res[order], axis=0)
        at = np.searchsorted(node.cycles[order], levels, side="right") - 1  # >= 0 from the floor up
        need += running[at]
    ok = np.flatnonzero((need <= problem.budget).all(axis=1))
    return int(ok[0]) if ok.size else len(levels) - 1


def min_bottleneck(problem: Problem, at_least: int = 0) -> Solution | None:
    """The smallest feasible bottleneck, then the cheapest design at it; None when no level is feasible.

    Galloping from ``necessary_floor`` up, then bisection: a few DP runs instead of one per level.
    """
    levels = cycle_levels(problem)
    top = len(levels) - 1
    if not feasible(problem, int(levels[top])):
        return None
    # every level below lo is infeasible (``at_least``: a bottleneck the caller knows cannot be beaten)
    lo = max(necessary_floor(problem, levels), min(int(np.searchsorted(levels, at_least)), top))
    hi, step = lo, 1
    while not feasible(problem, int(levels[hi])):
        lo = hi + 1
        hi, step = min(hi + step, top), step * 2
    while lo < hi:  # levels[hi] feasible, everything below lo infeasible
        mid = (lo + hi) // 2
        if feasible(problem, int(levels[mid])):
            hi = mid
        else:
            lo = mid + 1
    return solve(problem, int(levels[hi]))


def min_single(problem: Problem, T: int, r: int) -> tuple[float, list[float]]:
    """The least total of resource ``r`` alone (the others unbounded) at bottleneck T, and each node's least.

    A scalar chain DP over width classes; for error messages (what a budget would need).
    """
    best = np.zeros(1)
    per_node = []
    for i, node in enumerate(problem.nodes):
        ok = node.cycles <= T
        per_node.append(float(node.res[ok, r].min()) if ok.any() else INF)
        src = np.zeros(len(node.cycles), dtype=np.int64) if i == 0 else node.in_cls
        cost = np.where(ok, best[src] + node.res[:, r], INF)
        out = np.full(int(node.out_cls.max()) + 1, INF)
        np.minimum.at(out, node.out_cls, cost)
        best = out
        if i + 1 < len(problem.nodes):
            edge = problem.edges[i]
            ok_e = edge.legal & (edge.cycles <= T)
            best = np.where(ok_e, best[:, None] + edge.res[..., r], INF).min(axis=0)
    return float(best.min()), per_node
