"""How a folding turned out: the FoldReport (report/folding.json), a terminal table and a PNG.

The numbers are each node's own cost model on the folded graph (hls/estimate.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qnnflow.base.plots import png_bytes
from qnnflow.hls import estimate
from qnnflow.hls.nodes.cost import RESOURCES
from qnnflow.transforms.fold.budget import Budget


@dataclass
class FoldReport:
    mode: str
    board: str
    clock_ns: float
    budget: Budget
    layers: list  # estimate.LayerEstimate per dataflow node, converters included
    performance: dict  # estimate.network_performance
    ceiling: dict  # the fastest any legal folding can go: max_cycles, node, fps
    folding: dict  # FINN folding JSON
    converters: list[str]
    seconds: float
    max_weight_width: int
    notes: list[str] = field(default_factory=list)

    @property
    def totals(self) -> dict:
        return estimate.total_resources(self.layers)

    @property
    def fps(self) -> float:
        return self.performance["estimated_throughput_fps"]

    def within_budget(self) -> bool:
        return all(self.totals[r] <= self.budget.limits[r] for r in RESOURCES)

    def to_json(self) -> dict:
        totals, limits = self.totals, self.budget.limits
        return {
            "mode": self.mode,
            "board": self.board,
            "clock_ns": self.clock_ns,
            **self.performance,
            "estimated_latency_us": self.performance["estimated_latency_ns"] / 1e3,
            "ceiling": self.ceiling,
            "resources": {
                r: {"used": totals[r], "budget": limits[r], "budget_fraction": self.budget.fractions[r],
                    "available": self.budget.available[r], "used_of_budget": totals[r] / limits[r] if limits[r] else None}
                for r in RESOURCES
            },
            "within_budget": self.within_budget(),
            "max_weight_width": self.max_weight_width,
            "search_seconds": round(self.seconds, 3),
            "nodes": [
                {"name": layer.name, "op_type": layer.op_type, "folding": self.folding.get(layer.name, {}),
                 "cycles": layer.cycles, **layer.resources}
                for layer in self.layers
            ],
            "converters": self.converters,
            "notes": self.notes,
        }


def folding_text(attrs: dict) -> str:
    """``PE=4 SIMD=32 block lut``: a node's folding in a few characters."""
    parts = [f"{k}={attrs[k]}" for k in ("PE", "SIMD") if k in attrs]
    parts += [str(attrs[k]) for k in ("ram_style", "resType") if k in attrs]
    return " ".join(parts)


def format_table(report: FoldReport) -> str:
    layers, perf, budget = report.layers, report.performance, report.budget
    width = max(len(layer.name) for layer in layers)
    fold_w = max([len(folding_text(report.folding.get(layer.name, {}))) for layer in layers] + [7])
    lines = [f"{'node':<{width}}  {'folding':<{fold_w}}  {'cycles':>9}  {'LUT':>7}  {'BRAM18':>6}  {'DSP':>4}"]
    for layer in layers:
        mark = "  <- bottleneck" if layer.name == perf["max_cycles_node_name"] else ""
        r = layer.resources
        lines.append(f"{layer.name:<{width}}  {folding_text(report.folding.get(layer.name, {})):<{fold_w}}  "
                     f"{layer.cycles:>9,}  {r['LUT']:>7,}  {r['BRAM18']:>6,}  {r['DSP']:>4,}{mark}")
    totals, limits = report.totals, budget.limits
    pad = f"{'':<{fold_w}}  {'':>9}"
    lines.append(f"{'total':<{width}}  {pad}  {totals['LUT']:>7,}  {totals['BRAM18']:>6,}  {totals['DSP']:>4,}")
    lines.append(f"{'budget':<{width}}  {pad}  {limits['LUT']:>7,}  {limits['BRAM18']:>6,}  {limits['DSP']:>4,}")
    used = [f"{100 * totals[r] / limits[r]:.0f}%" if limits[r] else "-" for r in RESOURCES]
    lines.append(f"{'of budget':<{width}}  {pad}  {used[0]:>7}  {used[1]:>6}  {used[2]:>4}")
    lines.append(
        f"fold ({report.mode}): estimated {report.fps:,.0f} FPS, latency {perf['estimated_latency_ns'] / 1e3:,.1f} us "
        f"at {1e3 / report.clock_ns:g} MHz on {report.board}; bottleneck {perf['max_cycles_node_name']} "
        f"({perf['max_cycles']:,} cycles); ceiling {report.ceiling['fps']:,.0f} FPS ({report.ceiling['node']}); "
        f"searched in {report.seconds:.2f} s")
    return "\n".join(lines)


def plot_png(report: FoldReport, title: str) -> bytes:
    """Cycles per node (bottleneck in red, log scale) and each node's share of each resource budget."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    layers = report.layers
    names = [layer.name for layer in layers]
    bottleneck = report.performance["max_cycles_node_name"]
    colors = ["tab:red" if name == bottleneck else "tab:blue" for name in names]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(7, 0.45 * len(names)), 7), sharex=True)
    ax1.bar(names, [layer.cycles for layer in layers], color=colors)
    ax1.axhline(report.performance["max_cycles"], color="tab:red", lw=0.8, ls="--")
    ax1.set_yscale("log")
    ax1.set_ylabel("cycles per image")
    ax1.set_title(f"{title}: {report.fps:,.0f} FPS at {1e3 / report.clock_ns:g} MHz")
    limits, totals = report.budget.limits, report.totals
    x = range(len(names))
    for offset, res, color in zip((-0.27, 0, 0.27), RESOURCES, ("tab:green", "tab:orange", "tab:purple")):
        if not limits[res]:
            continue
        share = [100 * layer.resources[res] / limits[res] for layer in layers]
        ax2.bar([i + offset for i in x], share, width=0.27, color=color,
                label=f"{res} {totals[res]:,} / {limits[res]:,} ({100 * totals[res] / limits[res]:.0f}%)")
    ax2.set_ylabel("% of budget")
    ax2.legend(fontsize=8)
    ax2.set_xticks(list(x))
    ax2.set_xticklabels(names, rotation=75, fontsize=8)
    return png_bytes(fig)
