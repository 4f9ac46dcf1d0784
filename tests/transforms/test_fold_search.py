"""The folding search is optimal: checked against brute force over every assignment.

Random chains (costs, width classes, converters with BRAM/DSP and illegal pairs, budgets)
and a small real dataflow graph (padding, sliding window, MVAU, max-pool, flatten, MVAU,
label select) on tiny boards where LUT, BRAM18 and DSP trade against each other.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

from qnnflow.base.errors import QnnflowError
from qnnflow.base.execute import execute_batch
from qnnflow.transforms.fold import fold
from qnnflow.transforms.fold import search as fs
from qnnflow.transforms.fold.budget import Budget
from qnnflow.transforms.fold.choose import make_problem
from qnnflow.transforms.fold.space import build_space

DOMAIN = "qnnflow.hls.nodes"


# ----- brute force ---------------------------------------------------------------------------


def brute_force(problem: fs.Problem):
    """(bottleneck, totals (..., 3), feasible mask) of every assignment, as arrays over the product space."""
    n = len(problem.nodes)

    def along(i, arr):  # arr indexed by node i's candidate, broadcast along axis i
        shape = [1] * n
        shape[i] = len(arr)
        return arr.reshape(shape + list(arr.shape[1:]))

    totals = sum(along(i, node.res.astype(float)) for i, node in enumerate(problem.nodes))
    worst = functools.reduce(np.maximum, [along(i, node.cycles.astype(float)) for i, node in enumerate(problem.nodes)])
    legal = np.ones(worst.shape, dtype=bool)
    for i, edge in enumerate(problem.edges):
        p = along(i, problem.nodes[i].out_cls)
        c = along(i + 1, problem.nodes[i + 1].in_cls)
        totals = totals + edge.res[p, c].astype(float)
        worst = np.maximum(worst, edge.cycles[p, c])
        legal &= edge.legal[p, c]
    fits = legal & (totals <= problem.budget).all(axis=-1)
    return worst, totals, fits


def brute_optimum(problem: fs.Problem, T: float | None = None):
    """(bottleneck, objective) of the best assignment (within T if given); None if none fits."""
    worst, totals, fits = brute_force(problem)
    if T is not None:
        fits = fits & (worst <= T)
    if not fits.any():
        return None
    best_T = worst[fits].min() if T is None else None
    sel = fits & (worst == best_T) if T is None else fits
    score = totals @ problem.weights
    return (best_T, score[sel].min())


def random_problem(rng: np.random.Generator) -> fs.Problem:
    n = int(rng.integers(1, 5))
    nodes = []
    for _ in range(n):
        k = int(rng.integers(1, 7))
        nodes.append(fs.NodeCands(
            cycles=rng.integers(1, 40, k),
            res=np.column_stack([rng.integers(0, 60, k), rng.integers(0, 6, k), rng.integers(0, 4, k) * rng.integers(0, 2)]),
            in_cls=rng.integers(0, 3, k),
            out_cls=rng.integers(0, 3, k),
        ))
    edges = []
    for i in range(n - 1):
        P, C = int(nodes[i].out_cls.max()) + 1, int(nodes[i + 1].in_cls.max()) + 1
        res = np.stack([rng.integers(0, 15, (P, C)), rng.integers(0, 2, (P, C)), rng.integers(0, 2, (P, C))], axis=-1)
        edges.append(fs.EdgeCands(res, rng.integers(1, 45, (P, C)), rng.random((P, C)) < 0.85))
    budget = np.array([rng.integers(20, 200), rng.integers(0, 15), rng.integers(0, 8)])
    weights = rng.random(3) + 0.01
    return fs.Problem(nodes, edges, budget, weights)


@pytest.mark.parametrize("seed", range(300))
def test_min_bottleneck_matches_brute_force(seed):
    problem = random_problem(np.random.default_rng(seed))
    want = brute_optimum(problem)
    got = fs.min_bottleneck(problem)
    if want is None:
        assert got is None
        return
    assert got is not None
    totals, worst = fs.evaluate(problem, got.choice)
    assert (totals <= problem.budget).all() and worst == got.bottleneck
    assert got.bottleneck == want[0]
    assert got.objective == pytest.approx(want[1])


@pytest.mark.parametrize("seed", range(60))
def test_solve_at_every_level_matches_brute_force(seed):
    problem = random_problem(np.random.default_rng(1000 + seed))
    for T in fs.cycle_levels(problem):
        want = brute_optimum(problem, T)
        got = fs.solve(problem, int(T))
        assert (got is None) == (want is None)
        if got is not None:
            assert got.bottleneck <= T and got.objective == pytest.approx(want[1])


@pytest.mark.parametrize("seed", range(40))
def test_min_single_is_the_least_of_one_resource(seed):
    problem = random_problem(np.random.default_rng(2000 + seed))
    unbounded = fs.Problem(problem.nodes, problem.edges, np.full(3, 10**9), problem.weights)
    worst, totals, legal = brute_force(unbounded)
    for T in fs.cycle_levels(problem):
        ok = legal & (worst <= T)
        for r in range(3):
            least, per_node = fs.min_single(problem, int(T), r)
            assert least == (totals[..., r][ok].min() if ok.any() else np.inf)
            assert len(per_node) == len(problem.nodes)


# ----- a small real graph --------------------------------------------------------------------


def small_chain(seed: int = 0) -> ModelWrapper:
    """FMPadding -> sliding window -> MVAU (thresholds) -> max-pool -> MVAU -> LabelSelect.

    The second MVAU reads the max-pool's (1, 2, 2, 8) stream as one vector of 32, as to_hw leaves it."""
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-8, 8, (18, 8)).astype(np.float32)  # INT4
    t1 = np.sort(rng.integers(-200, 200, (8, 3)), axis=1).astype(np.float32)
    w2 = rng.integers(-8, 8, (32, 6)).astype(np.float32)
    nodes = [
        helper.make_node("FMPadding", ["x"], ["p"], domain=DOMAIN, name="FMPadding_0", ImgDim=[4, 4],
                         Padding=[1, 1, 1, 1], NumChannels=2, inputDataType="UINT3"),
        helper.make_node("ConvolutionInputGenerator", ["p"], ["w"], domain=DOMAIN, name="ConvolutionInputGenerator_0",
                         ConvKernelDim=[3, 3], IFMChannels=2, IFMDim=[6, 6], OFMDim=[4, 4],
                         inputDataType="UINT3", outputDataType="UINT3"),
        helper.make_node("MVAU", ["w", "W1", "T1"], ["a"], domain=DOMAIN, name="MVAU_0", MW=18, MH=8,
                         inputDataType="UINT3", weightDataType="INT4", outputDataType="UINT2", accDataType="INT12",
                         numInputVectors=[1, 4, 4]),
        helper.make_node("StreamingMaxPool", ["a"], ["m"], domain=DOMAIN, name="StreamingMaxPool_0", ImgDim=[4, 4],
                         PoolDim=[2, 2], NumChannels=8, dataType="UINT2"),
        helper.make_node("MVAU", ["m", "W2"], ["s"], domain=DOMAIN, name="MVAU_1", MW=32, MH=6,
                         inputDataType="UINT2", weightDataType="INT4", outputDataType="INT10", accDataType="INT10",
                         noActivation=1),
        helper.make_node("LabelSelect", ["s"], ["y"], domain=DOMAIN, name="LabelSelect_0", Labels=6, K=2,
                         inputDataType="INT10"),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in (("W1", w1), ("T1", t1), ("W2", w2))]
    graph = helper.make_graph(nodes, "small_chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = ModelWrapper(qonnx_make_model(graph, producer_name="qnnflow-tests"))
    model.set_tensor_datatype("x", DataType["UINT3"])
    for name, dt in (("W1", "INT4"), ("T1", "INT9"), ("W2", "INT4")):
        model.set_tensor_datatype(name, DataType[dt])
    return model.transform(InferShapes()).transform(InferDataTypes())


def tiny_board(lut: int, bram: int, dsp: int) -> dict:
    return {"name": "tiny", "part": "xc7z020clg400-1", "clock_ns": 10.0, "axi_width": 64,
            "resources": {"LUT": lut, "FF": 2 * lut, "BRAM18": bram, "DSP": dsp}}


def least_luts(model) -> int:
    """The fewest LUTs any folding of ``model`` needs (the budgets below are offsets from it)."""
    board = tiny_board(10**7, 10**4, 10**4)
    budget = Budget.of(board, 1.0, 1.0, 1.0)
    problem = make_problem(build_space(model, board, 1024), budget.vector(), budget.device_weights())
    return int(fs.min_single(problem, int(fs.cycle_levels(problem)[-1]), 0)[0])


@pytest.mark.parametrize("extra_luts, bram, dsp", [
    (100, 0, 0), (100, 1, 0), (100, 0, 4), (100, 2, 8), (100, 6, 30), (300, 0, 0), (300, 6, 30),
    (600, 2, 2), (5000, 100, 100), (-1, 100, 100),
])
def test_small_graph_fold_is_optimal_over_all_legal_foldings(extra_luts, bram, dsp):
    model = small_chain()
    board = tiny_board(least_luts(model) + extra_luts, bram, dsp)
    budget = Budget.of(board, 1.0, 1.0, 1.0)
    problem = make_problem(build_space(model, board, 1024), budget.vector(), budget.device_weights())
    want = brute_optimum(problem)
    if want is None:
        with pytest.raises(QnnflowError, match="^fold: even the slowest folding"):
            fold(model, board, lut=1.0, bram=1.0, dsp=1.0)
        return
    folded, report = fold(model, board, lut=1.0, bram=1.0, dsp=1.0)
    assert report.performance["max_cycles"] == want[0]
    assert float(budget.device_weights() @ [report.totals[r] for r in ("LUT", "BRAM18", "DSP")]) == pytest.approx(want[1])
    assert report.within_budget()
    x = np.random.default_rng(1).integers(0, 8, (5, 4, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(execute_batch(folded, x), execute_batch(model, x))


def test_small_graph_space_has_tradeoffs():
    """The graph exercises the multi-resource choice: DSP and BRAM candidates exist."""
    board = tiny_board(40000, 100, 100)
    space = build_space(small_chain(), board, 1024)
    res = np.concatenate([ns.res for ns in space.nodes])
    assert res[:, 1].max() > 0 and res[:, 2].max() > 0
    assert np.prod([len(ns) for ns in space.nodes]) > 10_000
