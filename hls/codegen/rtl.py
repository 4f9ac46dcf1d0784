"""The RTL project of a dataflow graph: a Verilog top, one wrapper per node, the module library,
memory files and a manifest (``OUT/rtl/``, step ``rtl_codegen``).

``generate_rtl(model, board)`` walks the same region as the HLS project (hls/codegen/project.py)
and asks each node kind for its RTL unit (``emit_rtl``).  The files are deterministic bytes:

- ``qnnflow_top.v``: module ``qnnflow_top`` with AXI-Stream ports ``s_axis``/``m_axis`` at the
  board's ``axi_width`` (clock ``ap_clk``, active-low ``ap_rst_n``), the input port adapter, the
  node wrappers connected as the region's links say (a chain, or a DAG: a fork writes streams
  ``out`` and ``out1``, a join reads ``in`` and ``in1``), the output port adapter (TLAST on an
  image's last word).  With ``QNNFLOW_PROBES`` defined (rtlsim) it also exposes each unit's
  handshakes (``probe_in1_*``/``probe_out1_*`` for the second streams, in a DAG's top only),
  output words and, for a FIFO node, its occupancy.
- ``units/<ident>.v``: module ``qf_<ident>``: the node's (or port adapter's) module with its
  parameters and, as in the HLS top, a FIFO on each stream it writes (not after a FIFO node or
  the output port): depth 2, or what the unit's ``out_depths`` say (a fork's ``outFIFODepths``,
  which hls/branch_fifos.py sized for its branches).
  Per-node synthesis takes these as tops.
- ``lib/*.v``: the hls/rtl/ modules the region uses; ``mem/*.mem``: ``$readmemh`` files (paths
  relative to the project directory, where simulators and Yosys run).
- ``manifest.json``: ports and every unit's module, node and stream formats.

``ports="stream"`` leaves the adapters out: the top's ports are the first node's input words and
the last node's output words (the node unit tests drive a node directly).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base import __version__
from qnnflow.base.errors import QnnflowError
from qnnflow.base.streams import PortFormat, StreamFormat
from qnnflow.hls.codegen.cpp import identifier
from qnnflow.hls.codegen.rtl_unit import RtlUnit
from qnnflow.hls.nodes.base import RTL_DIR, STREAM_DEPTH
from qnnflow.hls.partition import Region, hardware_region
from qnnflow.hls.widths import port_formats, stream_edges, width_problem

TOP = "qnnflow_top"
ADAPTER_SOURCES = ("qnnflow_dwc.v", "qnnflow_fifo.v")


@dataclass
class RtlProject:
    files: dict[str, bytes]  # path relative to OUT/rtl -> content
    units: list[RtlUnit]  # in the region's (topological) order, port adapters first and last ("axi" ports)
    input_format: PortFormat | StreamFormat
    output_format: PortFormat | StreamFormat
    region: Region
    ports: str  # "axi" or "stream"

    def node_units(self) -> list[RtlUnit]:
        """The units implementing graph nodes (not the port adapters)."""
        names = {n.name for n in self.region.nodes}
        return [u for u in self.units if u.node in names]


def build_units(model: ModelWrapper, region: Region) -> list[RtlUnit]:
    """Each node kind's own ``emit_rtl``, after the checks the HLS project makes (types, widths)."""
    stream_edges(model, region)
    problem = width_problem(model, region)
    if problem:
        raise QnnflowError(problem)
    taken = {"input_port", "output_port", TOP}
    return [getCustomOp(node).emit_rtl(model, identifier(node.name, taken)) for node in region.nodes]


def adapter_unit(ident: str, in_bits: int, out_bits: int, image_bits: int, fmt_in, fmt_out) -> RtlUnit:
    params = dict(IN_W=in_bits, OUT_W=out_bits, IMAGE_BITS=image_bits)
    return RtlUnit(ident.replace("_", " "), "PortAdapter", ident, "qnnflow_dwc", params, fmt_in, fmt_out)


def _word_bits(fmt) -> int:
    return fmt.axi_bits if isinstance(fmt, PortFormat) else fmt.packed_bits


def _param_value(value) -> str:
    return f'"{value}"' if isinstance(value, str) else str(int(value))


def _count_bits(unit: RtlUnit) -> int:
    """Bits of a FIFO unit's occupancy (qnnflow_fifo's count)."""
    return int(unit.params["DEPTH"]).bit_length()


def _port(direction: str, k: int) -> str:
    """The name of stream port ``k`` of a unit: in/out, in1/out1, ..."""
    return direction if k == 0 else f"{direction}{k}"


def _out_depth(unit: RtlUnit, k: int) -> int:
    return unit.out_depths[k] if unit.out_depths else STREAM_DEPTH


def _connections(unit: RtlUnit, wire) -> list[str]:
    """Port connections of ``unit``'s stream ports, one line a stream, ``wire(direction, k)`` naming the signals
    connected to port ``_port(direction, k)`` (without _data/_valid/_ready); the last line has no comma."""
    lines = [f"        .{_port(d, k)}_data({wire(d, k)}_data), .{_port(d, k)}_valid({wire(d, k)}_valid), "
             f".{_port(d, k)}_ready({wire(d, k)}_ready),"
             for d, fmts in (("in", unit.in_fmts), ("out", unit.out_fmts)) for k in range(len(fmts))]
    lines[-1] = lines[-1][:-1]
    return lines


def _wrapper(unit: RtlUnit, fifo: bool, last_port: bool) -> str:
    """Module qf_<ident>: the unit's module (and a FIFO on each output stream) behind its stream ports (in, in1,
    ... and out, out1, ...); the output port adapter's also has out_last (TLAST)."""
    ins, outs = [_word_bits(f) for f in unit.in_fmts], [_word_bits(f) for f in unit.out_fmts]
    params = ",\n".join(f"        .{k}({_param_value(v)})" for k, v in unit.params.items())
    last = unit.module == "qnnflow_dwc"
    core = [_port("core", k) if fifo else _port("out", k) for k in range(len(outs))]
    lines = [f"// {unit.op_type} '{unit.node}': "
             + " and ".join(f"{f.words} x {_word_bits(f)}-bit words" for f in unit.in_fmts) + " in, "
             + " and ".join(f"{f.words} x {_word_bits(f)}-bit words" for f in unit.out_fmts) + " out per image.",
             f"// Generated by qnnflow {__version__}; do not edit.",
             f"module qf_{unit.ident} (",
             "    input wire clk,", "    input wire rst,"]
    for k, w in enumerate(ins):
        p = _port("in", k)
        lines += [f"    input wire [{w - 1}:0] {p}_data,", f"    input wire {p}_valid,", f"    output wire {p}_ready,"]
    for k, w in enumerate(outs):
        p = _port("out", k)
        lines += [f"    output wire [{w - 1}:0] {p}_data,", f"    output wire {p}_valid,", f"    input wire {p}_ready,"]
    lines[-1] = lines[-1][:-1] + (",\n    output wire out_last" if last_port else "") \
        + (f",\n    output wire [{_count_bits(unit)}-1:0] count" if unit.buffers_output else "")
    lines.append(");")
    if fifo:
        for k, w in enumerate(outs):
            lines += [f"    wire [{w - 1}:0] {core[k]}_data;", f"    wire {core[k]}_valid, {core[k]}_ready;"]
    connect = _connections(unit, lambda d, k: _port("in", k) if d == "in" else core[k])
    connect[-1] += (f",\n        .out_last({'out_last' if last_port else ''})" if last else "") \
        + (",\n        .count(count)" if unit.buffers_output else "")
    lines += [f"    {unit.module} #(", params, "    ) core (", "        .clk(clk), .rst(rst),", *connect, "    );"]
    if fifo:
        for k, w in enumerate(outs):
            p = _port("out", k)
            lines += [f"    qnnflow_fifo #(.WIDTH({w}), .DEPTH({_out_depth(unit, k)})) {_port('stream', k)} (",
                      "        .clk(clk), .rst(rst),",
                      f"        .in_data({core[k]}_data), .in_valid({core[k]}_valid), .in_ready({core[k]}_ready),",
                      f"        .out_data({p}_data), .out_valid({p}_valid), .out_ready({p}_ready), .count()", "    );"]
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Wire:
    """A stream of the top: output port ``out_port`` of ``units[producer]`` to input ``in_port`` of
    ``units[consumer]``."""

    producer: int
    out_port: int
    consumer: int
    in_port: int


def _wires(region: Region, ports: str) -> list[Wire]:
    """The streams between the top's units by consumer: the region's links and, with ``ports="axi"``, the
    adapters' (the first node reads the region's input and the last writes its output, hardware_region)."""
    shift = 1 if ports == "axi" else 0
    wires = [Wire(link.producer + shift, link.out_port, link.consumer + shift, link.in_port) for link in region.links]
    if ports == "axi":
        last = len(region.nodes) + 1
        wires += [Wire(0, 0, 1, 0), Wire(last - 1, 0, last, 0)]
    return sorted(wires, key=lambda w: (w.consumer, w.in_port))


def _top(model: ModelWrapper, units: list[RtlUnit], wires: list[Wire], ports: str) -> str:
    w_in, w_out = _word_bits(units[0].in_fmt), _word_bits(units[-1].out_fmt)
    n = len(units)
    dag = any(len(u.in_fmts) > 1 or len(u.out_fmts) > 1 for u in units)
    probes = ["    output wire [{}:0] probe_in_valid, probe_in_ready, probe_out_valid, probe_out_ready".format(n - 1)]
    if dag:  # the second stream of a join's input or a fork's output (0 for the other units)
        probes += [f"    output wire [{n - 1}:0] probe_in1_valid, probe_in1_ready, probe_out1_valid, probe_out1_ready"]
    probes += [f"    output wire [{_word_bits(u.out_fmt) - 1}:0] probe_data_{i}" for i, u in enumerate(units)]
    probes += [f"    output wire [31:0] probe_count_{i}" for i in range(n)]
    shape = f"{n} units, a graph of streams (forks and joins)" if dag else f"{n} units in a chain"
    lines = [f"// The accelerator of '{model.graph.name or 'graph'}': {shape}, AXI-Stream in and out.",
             f"// Generated by qnnflow {__version__}; do not edit.",
             f"module {TOP} (",
             "    input wire ap_clk,", "    input wire ap_rst_n,",
             f"    input wire [{w_in - 1}:0] s_axis_tdata,", "    input wire s_axis_tvalid,",
             "    output wire s_axis_tready,", "    input wire s_axis_tlast,",
             f"    output wire [{w_out - 1}:0] m_axis_tdata,", "    output wire m_axis_tvalid,",
             "    input wire m_axis_tready,", "    output wire m_axis_tlast",
             "`ifdef QNNFLOW_PROBES", "    ,", ",\n".join(probes), "`endif", ");",
             "    wire rst = !ap_rst_n;"]
    for u in units:
        names = [f"{u.ident}_{_port('in', k)}" for k in range(len(u.in_fmts))]
        names += [f"{u.ident}_{_port('out', k)}" for k in range(len(u.out_fmts))]
        for k, f in enumerate(u.in_fmts):
            lines.append(f"    wire [{_word_bits(f) - 1}:0] {u.ident}_{_port('in', k)}_data;")
        for k, f in enumerate(u.out_fmts):
            lines.append(f"    wire [{_word_bits(f) - 1}:0] {u.ident}_{_port('out', k)}_data;")
        handshakes = [f"{name}_{signal}" for name in names for signal in ("valid", "ready")]
        lines.append(f"    wire {', '.join(handshakes)};")
        if u.buffers_output:
            lines.append(f"    wire [{_count_bits(u)}-1:0] {u.ident}_count;")
    first, final = f"{units[0].ident}_in", f"{units[-1].ident}_out"
    lines += [f"    assign {first}_data = s_axis_tdata;", f"    assign {first}_valid = s_axis_tvalid;",
              f"    assign s_axis_tready = {first}_ready;",
              f"    assign m_axis_tdata = {final}_data;", f"    assign m_axis_tvalid = {final}_valid;",
              f"    assign {final}_ready = m_axis_tready;"]
    if ports == "axi":
        lines.append(f"    wire {units[-1].ident}_last;")
        lines.append(f"    assign m_axis_tlast = {units[-1].ident}_last;")
    else:
        lines.append("    assign m_axis_tlast = 1'b0;")
    for w in wires:
        a = f"{units[w.producer].ident}_{_port('out', w.out_port)}"
        b = f"{units[w.consumer].ident}_{_port('in', w.in_port)}"
        lines += [f"    assign {b}_data = {a}_data;", f"    assign {b}_valid = {a}_valid;",
                  f"    assign {a}_ready = {b}_ready;"]
    for i, u in enumerate(units):
        tlast = f", .out_last({u.ident}_last)" if ports == "axi" and i == n - 1 else ""
        connect = _connections(u, lambda d, k, u=u: f"{u.ident}_{_port(d, k)}")
        connect[-1] += tlast + (f", .count({u.ident}_count)" if u.buffers_output else "")
        lines += [f"    qf_{u.ident} {u.ident} (", "        .clk(ap_clk), .rst(rst),", *connect, "    );"]
    lines.append("`ifdef QNNFLOW_PROBES")
    port_probes = [("in", 0), ("out", 0)] + ([("in", 1), ("out", 1)] if dag else [])
    for direction, k in port_probes:
        for signal in ("valid", "ready"):
            bits = ", ".join(f"{u.ident}_{_port(direction, k)}_{signal}"
                             if k < len(u.in_fmts if direction == "in" else u.out_fmts) else "1'b0"
                             for u in reversed(units))
            lines.append(f"    assign probe_{_port(direction, k)}_{signal} = {{{bits}}};")
    lines += [f"    assign probe_data_{i} = {u.ident}_out_data;" for i, u in enumerate(units)]
    lines += [f"    assign probe_count_{i} = {u.ident + '_count' if u.buffers_output else '0'};"
              for i, u in enumerate(units)]
    lines += ["`endif", "endmodule"]
    return "\n".join(lines) + "\n"


def _manifest(model, project_units, in_fmt, out_fmt, ports) -> str:
    data = {"generator": f"qnnflow {__version__}", "graph": model.graph.name or "graph", "top": TOP, "ports": ports,
            "input": in_fmt.to_dict(), "output": out_fmt.to_dict(),
            "units": [{"ident": u.ident, "node": u.node, "op_type": u.op_type, "module": u.module,
                       "wrapper": f"units/{u.ident}.v", "params": u.params, "in": u.in_fmt.to_dict(),
                       "out": u.out_fmt.to_dict(), "memories": sorted(u.memories)} for u in project_units]}
    return json.dumps(data, indent=2) + "\n"


def generate_rtl(model: ModelWrapper, board: dict, ports: str = "axi") -> RtlProject:
    """The RTL project of ``model``'s hardware region for ``board``; QnnflowError naming the node for
    anything without RTL."""
    if ports not in ("axi", "stream"):
        raise ValueError(f"ports={ports!r}: use 'axi' or 'stream'")
    region = hardware_region(model)
    units = build_units(model, region)
    first, last = units[0], units[-1]
    if ports == "axi":
        in_fmt, out_fmt = port_formats(region, board)
        units = [adapter_unit("input_port", in_fmt.axi_bits, first.in_fmt.packed_bits, in_fmt.image_bits, in_fmt,
                              first.in_fmt),
                 *units,
                 adapter_unit("output_port", last.out_fmt.packed_bits, out_fmt.axi_bits, out_fmt.image_bits,
                              last.out_fmt, out_fmt)]
    else:
        in_fmt, out_fmt = first.in_fmt, last.out_fmt
    sources: dict[str, bytes] = {}
    for node in region.nodes:
        sources.update(type(getCustomOp(node)).rtl_sources())
    if ports == "axi":
        sources.update({name: (RTL_DIR / name).read_bytes() for name in ADAPTER_SOURCES})
    if any(not u.buffers_output for u in units):
        sources["qnnflow_fifo.v"] = (RTL_DIR / "qnnflow_fifo.v").read_bytes()
    files = {f"lib/{name}": data for name, data in sources.items()}
    files[f"{TOP}.v"] = _top(model, units, _wires(region, ports), ports).encode()
    for i, u in enumerate(units):
        output_adapter = ports == "axi" and i == len(units) - 1  # the top's TLAST; the stream leaves the design
        files[f"units/{u.ident}.v"] = _wrapper(u, not (u.buffers_output or output_adapter), output_adapter).encode()
        files.update(u.memories)
    files["manifest.json"] = _manifest(model, units, in_fmt, out_fmt, ports).encode()
    return RtlProject(dict(sorted(files.items())), units, in_fmt, out_fmt, region, ports)


def verilog_files(project: RtlProject) -> list[str]:
    """The project's Verilog sources, library first, for simulators and Yosys (relative paths)."""
    return [rel for rel in project.files if rel.endswith(".v")]
