"""The built-in build steps. Each is thin: it calls a transform or an exporter and says
which config fields it reads (its cache key) and which outputs it delivers."""

from __future__ import annotations

import io

from qnnflow.flow.registry import register_step
from qnnflow.flow.runner import GOLDEN_FILE, StepContext


@register_step("export", config=("model", "weights", "golden"), produces=("qonnx", "golden"))
def export_step(model, ctx: StepContext):
    """Export the model to QONNX and record golden I/O from PyTorch (or the user's files)."""
    from qnnflow.models.export import export_source
    from qnnflow.models.source import parse_model_source

    source = parse_model_source(ctx.cfg["model"])
    golden_cfg = ctx.cfg["golden"]

    def note(line: str) -> None:
        ctx.log(f"note: {line}")
        ctx.notes.append(line)

    model, golden = export_source(source, ctx.cfg["weights"], golden_cfg["count"], golden_cfg["seed"],
                                  golden_cfg["source"], note)
    buf = io.BytesIO()
    golden.save(buf)
    ctx.write_artifact(GOLDEN_FILE, buf.getvalue(), delivers="golden")
    ctx.notes.append(f"golden I/O: {len(golden.input)} samples from {golden.source}")
    return model


@register_step("tidy")
def tidy_step(model, ctx: StepContext):
    """Infer shapes and datatypes, fold constants, give nodes and tensors unique readable names."""
    from qnnflow.transforms.tidy import tidy

    return tidy(model)


@register_step("streamline")
def streamline_step(model, ctx: StepContext):
    """Integer weights, quantizers to thresholds, scales and batch-norm absorbed into thresholds."""
    from qnnflow.transforms.streamline import streamline

    return streamline(model, notes=ctx.notes)


@register_step("to_hw")
def to_hw_step(model, ctx: StepContext):
    """Lower to NHWC and convert to dataflow nodes; the float head and tail stay on the host."""
    from qnnflow.transforms.to_hw import to_hw

    model, partition = to_hw(model)
    ctx.notes.append(f"dataflow region: {len(partition.hardware)} nodes")
    ctx.notes.append(f"host head (before the accelerator): {', '.join(partition.head) or 'none'}")
    ctx.notes.append(f"host tail (after the accelerator): {', '.join(partition.tail) or 'none'}")
    return model


@register_step("estimate", config=("board", "backend", "clock_ns"), produces=("estimates",))
def estimate_step(model, ctx: StepContext):
    """Per-layer cycles and resources, network throughput and latency (FINN-compatible reports).

    The per-layer table is printed only in a build without a ``fold`` step: fold prints the
    same figures, with the folding and the budget, in its own table.
    """
    import json

    from qnnflow.hls import estimate

    layers = estimate.layer_estimates(model, ctx.board)
    perf = estimate.network_performance(layers, ctx.cfg.clock_ns)
    cycles = {layer.name: layer.cycles for layer in layers}

    def dump(obj) -> bytes:
        return (json.dumps(obj, indent=2) + "\n").encode()

    ctx.write_artifact("report/estimate_layer_cycles.json", dump(cycles), delivers="estimates")
    ctx.write_artifact("report/estimate_layer_resources.json", dump(estimate.finn_resources(layers)))
    ctx.write_artifact("report/estimate_network_performance.json", dump(perf))
    title = f"{ctx.cfg['name']} on {ctx.board['name']}"
    ctx.write_artifact("report/estimate.png", estimate.plot_png(layers, perf["max_cycles_node_name"], title))
    summary = f"estimated {perf['estimated_throughput_fps']:,.0f} FPS; bottleneck {perf['max_cycles_node_name']}"
    if "fold" in ctx.cfg["steps"]:
        ctx.log(f"estimate: {summary}; per layer in {ctx.out_dir / 'report'}")
    else:
        ctx.log(estimate.format_table(layers, perf, ctx.board, ctx.cfg.clock_ns))
    ctx.notes.append(summary)
    return model


@register_step("label_select", config=("top_k",))
def label_select_step(model, ctx: StepContext):
    """End with the top-k class indices (a TopK, later LabelSelect), absorbing the float tail."""
    from qnnflow.transforms.labels import insert_label_select

    return insert_label_select(model, ctx.cfg["top_k"])
