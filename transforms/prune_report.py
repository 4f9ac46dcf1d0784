"""Pruning and folding together: fold the unpruned and the pruned model for the same board and budget
and compare them per layer (MW, cycles, LUT, BRAM) and in total (estimated FPS, resources); and the
trade-off table over sparsities (report/prune.json, .png) with its Pareto front.

Also where ``prune.simd: auto`` comes from: the SIMD the unpruned model's folding gives each MVAU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.plots import png_bytes
from qnnflow.transforms.fold import fold
from qnnflow.transforms.fold.report import FoldReport
from qnnflow.transforms.prune import PruneInputError, hardware_matrix, linear_layers
from qnnflow.transforms.to_hw import to_hw

SIZE_ATTRS = {"MVAU": "MW", "ConvolutionInputGenerator": "IFMChannels"}


@dataclass
class Folded:
    model: ModelWrapper
    report: FoldReport


def fold_streamlined(model: ModelWrapper, board: dict, clock_ns: float, fold_options: dict) -> Folded:
    """to_hw and fold a streamlined model, as the build's steps would."""
    hw, _ = to_hw(model)
    folded, report = fold(hw, board, clock_ns, **fold_options)
    return Folded(folded, report)


def auto_simd(model: ModelWrapper, folded: Folded) -> list[int]:
    """Per linear layer, the widest block of input channels that whole SIMD words of its MVAU's folding
    hold: gcd(SIMD, C) (a word of SIMD >= C elements spans whole pixels: then C, one block)."""
    layers = linear_layers(model)
    mvaus = [getCustomOp(n) for n in folded.model.get_nodes_by_op_type("MVAU")]
    if len(mvaus) != len(layers):
        raise PruneInputError(f"prune.simd: auto needs one MVAU per Conv/MatMul layer, but to_hw made {len(mvaus)} "
                              f"of {len(layers)} layers; give the list of SIMDs")
    return [math.gcd(m.get_nodeattr("SIMD"), hardware_matrix(model.get_initializer(n.input[1]), n.op_type)[1])
            for m, n in zip(mvaus, layers)]


def _nodes(folded: Folded) -> dict:
    estimates = {layer.name: layer for layer in folded.report.layers}
    rows = {}
    for node in folded.model.graph.node:
        if node.op_type in SIZE_ATTRS and node.name in estimates:
            est = estimates[node.name]
            op = getCustomOp(node)
            size = op.get_nodeattr(SIZE_ATTRS[node.op_type])
            if node.op_type == "ConvolutionInputGenerator":
                size = int(op.kept_channels().size)
            rows[node.name] = {"op_type": node.op_type, "size": size, "cycles": est.cycles,
                               "LUT": est.resources["LUT"], "BRAM18": est.resources["BRAM18"]}
    return rows


def compare(before: Folded, after: Folded) -> dict:
    """Per layer (MVAU: MW; sliding window: channels its windows carry) before and after, and the totals."""
    old, new = _nodes(before), _nodes(after)
    layers = [{"name": name, "op_type": row["op_type"], "size_attr": SIZE_ATTRS[row["op_type"]],
               **{f"{k}_before": old[name][k] for k in ("size", "cycles", "LUT", "BRAM18") if name in old},
               **{f"{k}_after": row[k] for k in ("size", "cycles", "LUT", "BRAM18")}}
              for name, row in new.items()]

    def totals(folded: Folded) -> dict:
        return {"estimated_fps": folded.report.fps, "max_cycles": folded.report.performance["max_cycles"],
                **{r: folded.report.totals[r] for r in ("LUT", "BRAM18", "DSP")}}

    return {"estimates": "qnnflow's cost model (not synthesis)", "before": totals(before), "after": totals(after),
            "layers": layers}


def format_comparison(table: dict) -> str:
    """The comparison as a terminal table."""
    head = f"{'layer':<30}{'size':>14}{'cycles':>18}{'LUT':>16}{'BRAM18':>12}"
    lines = [head]
    for row in table["layers"]:
        def pair(key, width):
            return f"{row.get(key + '_before', '-')}->{row[key + '_after']}".rjust(width)
        lines.append(f"{row['name']:<30}{pair('size', 14)}{pair('cycles', 18)}{pair('LUT', 16)}{pair('BRAM18', 12)}")
    b, a = table["before"], table["after"]
    lines.append(f"estimated FPS {b['estimated_fps']:,.0f} -> {a['estimated_fps']:,.0f}; LUT {b['LUT']:,} -> "
                 f"{a['LUT']:,}; BRAM18 {b['BRAM18']:,} -> {a['BRAM18']:,} (estimates)")
    return "\n".join(lines)


# ----- the trade-off table: sparsity against estimated FPS, LUT, BRAM and accuracy -----------------

MAXIMISE = ("estimated_fps", "accuracy")
MINIMISE = ("LUT", "BRAM18")


def point_estimates(folded: Folded) -> dict:
    """The estimates a trade-off point shows (qnnflow's cost model at the folding chosen for it)."""
    return {"estimated_fps": folded.report.fps, **{r: folded.report.totals[r] for r in ("LUT", "BRAM18", "DSP")}}


def pareto_front(points: list[dict]) -> list[bool]:
    """Per point, whether no other point is at least as good in every measure and better in one (higher
    FPS and accuracy, fewer LUT and BRAM18; a measure missing from any point is left out)."""
    keys = [k for k in (*MAXIMISE, *MINIMISE) if all(p.get(k) is not None for p in points)]
    signed = np.array([[p[k] if k in MAXIMISE else -p[k] for k in keys] for p in points], dtype=float)
    return [not any(np.all(other >= mine) and np.any(other > mine) for other in signed) for mine in signed]


def tradeoff_table(points: list[dict]) -> dict:
    """``points`` (sparsity, estimates, accuracy or None) with their Pareto flags, ordered by sparsity."""
    points = sorted(points, key=lambda p: p["sparsity"])
    for point, front in zip(points, pareto_front(points)):
        point["pareto"] = bool(front)
    return {"estimates": "qnnflow's cost model (not synthesis); accuracy on the test images given",
            "points": points}


def format_tradeoff(table: dict) -> str:
    lines = [f"{'sparsity':>8} {'est. FPS':>10} {'est. LUT':>9} {'est. BRAM18':>11} {'accuracy':>9}  pareto"]
    for p in table["points"]:
        acc = "-" if p.get("accuracy") is None else f"{100 * p['accuracy']:.2f}%"
        lines.append(f"{p['sparsity']:>8.2f} {p['estimated_fps']:>10,.0f} {p['LUT']:>9,} {p['BRAM18']:>11,} "
                     f"{acc:>9}  {'*' if p['pareto'] else ''}")
    return "\n".join(lines)


def tradeoff_png(table: dict, title: str) -> bytes:
    """Sparsity against estimated FPS, LUT and BRAM18 and accuracy; Pareto points filled, others hollow."""
    
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    points = table["points"]
    measures = [("estimated_fps", "estimated FPS"), ("LUT", "estimated LUT"), ("BRAM18", "estimated BRAM18"),
                ("accuracy", "test accuracy")]
    measures = [(k, label) for k, label in measures if any(p.get(k) is not None for p in points)]
    fig, axes = plt.subplots(len(measures), 1, figsize=(6, 2.2 * len(measures)), sharex=True)
    for ax, (key, label) in zip(np.atleast_1d(axes), measures):
        shown = [p for p in points if p.get(key) is not None]
        ax.plot([p["sparsity"] for p in shown], [p[key] for p in shown], color="tab:blue")
        for p in shown:
            ax.scatter(p["sparsity"], p[key], color="tab:red" if p["pareto"] else "white", edgecolors="tab:red",
                       zorder=3)
        ax.set_ylabel(label)
    np.atleast_1d(axes)[0].set_title(f"{title} (red: Pareto front)")
    np.atleast_1d(axes)[-1].set_xlabel("sparsity")
    return png_bytes(fig)
