"""Performance and resource estimates of a dataflow graph, in FINN's report formats.

The numbers come from each node's own cost model (``cycles()``, ``resources_with_stream(board)``:
its logic and memories plus the FIFO of the stream it writes) and from the two AXI port adapters
(hls/widths.py); this module only collects them, adds them up and presents them:

- ``estimate_layer_cycles.json``: ``{node: cycles}``;
- ``estimate_layer_resources.json``: ``{node: {LUT, BRAM_18K, DSP, URAM}, "total": ...}``;
- ``estimate_network_performance.json``: ``critical_path_cycles``, ``max_cycles``,
  ``max_cycles_node_name``, ``estimated_throughput_fps``, ``estimated_latency_ns``
  (the names FINN's build reports use, so FINN users can read them);
- a terminal table and a PNG bar plot of cycles and LUTs per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.plots import png_bytes
from qnnflow.hls.partition import hardware_region
from qnnflow.hls.widths import port_adapters

RESOURCE_KEYS = (("LUT", "LUT"), ("BRAM18", "BRAM_18K"), ("DSP", "DSP"))
PORT_ADAPTER = "AxiPortAdapter"  # the op type the estimates give the port adapters (no graph node of their own)


@dataclass
class LayerEstimate:
    name: str
    op_type: str
    cycles: int
    resources: dict  # LUT, BRAM18, DSP


def layer_estimates(model: ModelWrapper, board: dict) -> list[LayerEstimate]:
    """The input port adapter, every node of the dataflow region in stream order, the output port adapter."""
    region = hardware_region(model)
    adapter_in, adapter_out = port_adapters(region, board)
    out = [LayerEstimate(adapter_in.name, PORT_ADAPTER, adapter_in.cycles(), adapter_in.resources(board))]
    for node in region.nodes:
        inst = getCustomOp(node)
        out.append(LayerEstimate(node.name, node.op_type, int(inst.cycles()), dict(inst.resources_with_stream(board))))
    out.append(LayerEstimate(adapter_out.name, PORT_ADAPTER, adapter_out.cycles(), adapter_out.resources(board)))
    return out


def network_performance(layers: list[LayerEstimate], clock_ns: float) -> dict:
    """Throughput is set by the slowest node; latency by the chain of all of them (a pipeline)."""
    bottleneck = max(layers, key=lambda layer: layer.cycles)
    critical = sum(layer.cycles for layer in layers)
    return {
        "critical_path_cycles": critical,
        "max_cycles": bottleneck.cycles,
        "max_cycles_node_name": bottleneck.name,
        "estimated_throughput_fps": 1e9 / (bottleneck.cycles * clock_ns),
        "estimated_latency_ns": critical * clock_ns,
    }


def total_resources(layers: list[LayerEstimate]) -> dict:
    return {ours: sum(layer.resources.get(ours, 0) for layer in layers) for ours, _ in RESOURCE_KEYS}


def finn_resources(layers: list[LayerEstimate]) -> dict:
    def finn(res: dict) -> dict:
        return {theirs: res.get(ours, 0) for ours, theirs in RESOURCE_KEYS} | {"URAM": 0}

    report = {layer.name: finn(layer.resources) for layer in layers}
    report["total"] = finn(total_resources(layers))
    return report


def format_table(layers: list[LayerEstimate], perf: dict, board: dict, clock_ns: float) -> str:
    avail = board["resources"]
    total = total_resources(layers)
    width = max(len(layer.name) for layer in layers)
    lines = [f"{'node':<{width}}  {'cycles':>9}  {'LUT':>7}  {'BRAM18':>6}  {'DSP':>4}"]
    for layer in layers:
        mark = "  <- bottleneck" if layer.name == perf["max_cycles_node_name"] else ""
        r = layer.resources
        lines.append(f"{layer.name:<{width}}  {layer.cycles:>9,}  {r['LUT']:>7,}  {r['BRAM18']:>6,}  {r['DSP']:>4,}{mark}")
    lines.append(
        f"{'total':<{width}}  {perf['critical_path_cycles']:>9,}  {total['LUT']:>7,}  {total['BRAM18']:>6,}  {total['DSP']:>4,}"
    )
    lines.append(
        f"{'of ' + board['name']:<{width}}  {'':>9}  {100 * total['LUT'] / avail['LUT']:>6.1f}%  "
        f"{100 * total['BRAM18'] / avail['BRAM18']:>5.1f}%  {100 * total['DSP'] / avail['DSP']:>3.0f}%"
    )
    lines.append(
        f"estimated {perf['estimated_throughput_fps']:,.0f} FPS, latency {perf['estimated_latency_ns'] / 1e3:,.1f} us "
        f"at {1e3 / clock_ns:.0f} MHz; bottleneck {perf['max_cycles_node_name']} ({perf['max_cycles']:,} cycles)"
    )
    return "\n".join(lines)


def plot_png(layers: list[LayerEstimate], bottleneck: str, title: str) -> bytes:
    """Bar plots of cycles and LUTs per layer, the bottleneck in red."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = [layer.name for layer in layers]
    colors = ["tab:red" if name == bottleneck else "tab:blue" for name in names]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(6, 0.45 * len(names)), 6), sharex=True)
    ax1.bar(names, [layer.cycles for layer in layers], color=colors)
    ax1.set_ylabel("cycles per image")
    ax1.set_title(title)
    ax2.bar(names, [layer.resources["LUT"] for layer in layers], color=colors)
    ax2.set_ylabel("LUT")
    ax2.tick_params(axis="x", rotation=75)
    return png_bytes(fig)
