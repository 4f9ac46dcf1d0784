"""Build steps of the RTL back end (``backend: rtl`` or ``both``).

- ``fifo_size`` simulates the RTL with deep FIFOs, then puts StreamingFIFO nodes of the measured
  depths in the graph (hls/fifo_sizing.py), for both back ends; ``OUT/report/fifo_depths.json``.
- ``rtl_codegen`` writes ``OUT/rtl/`` (hls/codegen/rtl.py): the top with AXI-Stream ports at the
  board's axi_width, one wrapper per node, the module library and the memory files.
- ``rtlsim`` builds it with Verilator (cached under ``OUT/rtlsim/bin/<hash>/``), streams the golden
  inputs back to back, requires a bit-exact match (a mismatch names the first differing node) and
  writes the measured cycles beside the estimate in ``OUT/report/rtlsim_performance.json``.
- ``synth`` runs Yosys ``synth_xilinx`` per node (out of context) and on the whole top, and writes
  ``OUT/report/post_synth_yosys.json`` beside the estimate.

All return the model unchanged.
"""

from __future__ import annotations

import json

from qnnflow.base.errors import BadInputError, QnnflowError
from qnnflow.flow.hls_steps import _remove_stale
from qnnflow.flow.registry import register_step
from qnnflow.flow.runner import StepContext
from qnnflow.hls.rtl_tools import YOSYS

RTL_DIR = "rtl"
RTLSIM_DIR = "rtlsim"
SYNTH_DIR = "synth"
SYNTH_REPORT = "report/post_synth_yosys.json"
MIN_IMAGES = 24  # the golden inputs repeated to this many images: the steady state is measured in the middle


def _dump(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


@register_step("fifo_size", config=("board",), produces=("fifo_depths",), needs=("verilator",))
def fifo_size_step(model, ctx: StepContext):
    """FIFOs sized from the occupancy measured in RTL simulation, in front of the nodes whose input streams need them."""
    from qnnflow.hls.fifo_sizing import size_fifos

    base = ctx.out_dir / RTLSIM_DIR
    sized, report = size_fifos(model, ctx.board, ctx.golden().input, base / "bin", ctx.out_dir / "fifo_size",
                               min_images=MIN_IMAGES)
    ctx.write_artifact("report/fifo_depths.json", _dump(report), delivers="fifo_depths")
    added = {name: f["depth"] for name, f in report["fifos"].items() if f["inserted"]}
    cycles = report["cycles_per_image"]
    ctx.notes.append(f"FIFOs in front of {', '.join(f'{n} ({d} words)' for n, d in added.items()) or 'no node'}; "
                     f"{cycles['sized']:,.1f} cycles per image measured with them, {cycles['deep']:,.1f} with "
                     f"whole-image FIFOs")
    return sized


@register_step("rtl_codegen", config=("board",), produces=("rtl",))
def rtl_codegen_step(model, ctx: StepContext):
    """Generate the Verilog of the dataflow region: top with AXI-Stream ports, node instances, memory files."""
    from qnnflow.hls.codegen.rtl import TOP, generate_rtl

    project = generate_rtl(model, ctx.board)
    _remove_stale(ctx.out_dir / RTL_DIR, set(project.files))
    for rel, data in project.files.items():
        ctx.write_artifact(f"{RTL_DIR}/{rel}", data, delivers="rtl" if rel == f"{TOP}.v" else None)
    fmt_in, fmt_out = project.input_format, project.output_format
    ctx.notes.append(f"{len(project.units)} RTL units in {TOP}; input {fmt_in.words} x {fmt_in.axi_bits}-bit AXI "
                     f"words per image, output {fmt_out.words} x {fmt_out.axi_bits}-bit words")
    return model


def _estimates(model, board) -> tuple[dict, dict]:
    from qnnflow.hls import estimate

    layers = estimate.layer_estimates(model, board)
    return {layer.name: layer for layer in layers}, estimate.network_performance(layers, 1.0)


@register_step("rtlsim", config=("board",), produces=("rtlsim",), needs=("verilator",))
def rtlsim_step(model, ctx: StepContext):
    """Simulate the RTL with Verilator on the golden inputs, bit-exact, and measure cycles per image and per node."""
    from qnnflow.hls.rtlsim import rtlsim

    golden = ctx.golden()
    base = ctx.out_dir / RTLSIM_DIR
    result = rtlsim(model, golden.input, ctx.board, cache_dir=base / "bin", work_dir=base / "run",
                    min_images=MIN_IMAGES)
    ctx.write_artifact(f"{RTLSIM_DIR}/result.json", _dump(result.to_dict()), delivers="rtlsim")
    if not result.bit_exact:
        raise QnnflowError(result.message())
    layers, perf = _estimates(model, ctx.board)
    measured = result.performance
    for name, node in measured["nodes"].items():
        node["estimated_cycles"] = layers[name].cycles if name in layers else None
    report = {"cycles_per_image": measured["cycles_per_image"], "latency_cycles": measured["latency_cycles"],
              "bottleneck_measured": measured["bottleneck_measured"],
              "estimate": {"cycles_per_image": perf["max_cycles"], "bottleneck": perf["max_cycles_node_name"],
                           "latency_cycles": perf["critical_path_cycles"]},
              "images": measured["images"], "window_cycles": measured["window_cycles"],
              "clock_ns": ctx.cfg.clock_ns, "nodes": measured["nodes"]}
    ctx.write_artifact("report/rtlsim_performance.json", _dump(report))
    ctx.log(format_rtlsim(report))
    ctx.checked = (f"RTL simulation bit-exact with the graph on {len(golden.input)} golden inputs "
                   f"({result.images} images streamed back to back)")
    how = "cached build" if result.cached else f"verilated in {result.build_seconds:.1f} s"
    ctx.notes.append(f"rtlsim: {measured['cycles_per_image']:,.1f} cycles per image measured (estimate "
                     f"{perf['max_cycles']:,}), latency {measured['latency_cycles']:,} cycles; bottleneck measured "
                     f"{measured['bottleneck_measured']} (estimate {perf['max_cycles_node_name']}); {how}")
    return model


def format_rtlsim(report: dict) -> str:
    nodes = report["nodes"]
    width = max(len(n) for n in nodes)
    lines = [f"{'node':<{width}}  {'est. cycles':>11}  {'busy':>6}  {'stall':>6}  {'starve':>6}  (measured over "
             f"{report['window_cycles']:,} cycles)"]
    for name, n in nodes.items():
        mark = "  <- bottleneck (measured)" if name == report["bottleneck_measured"] else ""
        est = "" if n["estimated_cycles"] is None else f"{n['estimated_cycles']:,}"
        lines.append(f"{name:<{width}}  {est:>11}  {n['busy_cycles']:>6,}  {n['stall_cycles']:>6,}  "
                     f"{n['starve_cycles']:>6,}{mark}")
    lines.append(f"rtlsim: {report['cycles_per_image']:,.1f} cycles per image measured, {report['estimate']['cycles_per_image']:,} "
                 f"estimated; latency {report['latency_cycles']:,} cycles measured, "
                 f"{report['estimate']['latency_cycles']:,} estimated")
    return "\n".join(lines)


@register_step("synth", config=("board",), produces=("synth",), needs=(YOSYS,))
def synth_step(model, ctx: StepContext):
    """Synthesise the RTL with Yosys per node (out of context) and whole: LUT/FF/LUTRAM/BRAM18/DSP beside the estimate."""
    from qnnflow.hls.codegen.rtl import generate_rtl
    from qnnflow.hls.nodes import cost
    from qnnflow.hls.synth import FAMILIES, board_problem, synthesize

    project = generate_rtl(model, ctx.board)
    work = ctx.out_dir / SYNTH_DIR
    project_dir = work / "src"
    for rel, data in project.files.items():
        (project_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (project_dir / rel).write_bytes(data)
    report = synthesize(project, project_dir, FAMILIES[cost.part_family(ctx.board)])
    layers, _ = _estimates(model, ctx.board)
    report["estimate"] = {name: {r: layer.resources[r] for r in ("LUT", "BRAM18", "DSP")}
                          for name, layer in layers.items()}
    report["estimate_total"] = {r: sum(layer.resources[r] for layer in layers.values()) for r in ("LUT", "BRAM18", "DSP")}
    ctx.log(format_synth(report, ctx.board))
    total, est = report["total"], report["estimate_total"]
    problem = board_problem(total, ctx.board)
    if problem:
        # An unmeetable budget is bad input (exit 2); the figures are in the log above, and no report of
        # this or an earlier run stays in OUT/report as if it were this build's result.
        (ctx.out_dir / SYNTH_REPORT).unlink(missing_ok=True)
        raise BadInputError(f"board {ctx.board['id']}: {problem}")
    ctx.write_artifact(SYNTH_REPORT, _dump(report), delivers="synth")
    ctx.checked = "none"
    ctx.notes.append(f"Yosys: {total['LUT']:,} LUT, {total['FF']:,} FF, {total['BRAM18']} BRAM18, {total['DSP']} DSP "
                     f"(estimate {est['LUT']:,} LUT, {est['BRAM18']} BRAM18, {est['DSP']} DSP)")
    return model


def format_synth(report: dict, board: dict) -> str:
    nodes = report["nodes"]
    width = max(len(n) for n in [*nodes, "whole top"])
    head = f"{'node':<{width}}  {'LUT':>7} {'est.':>7}  {'FF':>7}  {'LUTRAM':>6}  {'BRAM18':>6} {'est.':>4}  {'DSP':>4} {'est.':>4}"
    lines = [head]

    def row(name, got, est):
        est = est or {"LUT": "", "BRAM18": "", "DSP": ""}
        fmt = lambda v: f"{v:,}" if isinstance(v, int) else v  # noqa: E731
        lines.append(f"{name:<{width}}  {got['LUT']:>7,} {fmt(est['LUT']):>7}  {got['FF']:>7,}  {got['LUTRAM']:>6,}  "
                     f"{got['BRAM18']:>6,} {fmt(est['BRAM18']):>4}  {got['DSP']:>4,} {fmt(est['DSP']):>4}")

    for name, got in nodes.items():
        row(name, got, report["estimate"].get(name))
    row("whole top" if "sum_of_nodes" in report else "total", report["total"], report["estimate_total"])
    lines.append(f"synth: Yosys synth_xilinx -family {report['family']} counts beside qnnflow's estimate (est.) "
                 f"for {board['name']}")
    return "\n".join(lines)
