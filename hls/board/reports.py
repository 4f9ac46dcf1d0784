"""Parsing the tools' reports into ``OUT/report/``: Vitis HLS csynth.xml, Vivado utilisation and timing.

- ``parse_csynth(xml)``: one module's C synthesis report (the top ``csynth.xml`` or a
  ``<module>_csynth.xml``): latency and interval in cycles, estimated clock, resources,
  and the top's instances in call order (``RTLDesignHierarchy``).
- ``parse_utilization(text)``: ``report_utilization -hierarchical``: one row per instance
  with its depth, LUT, FF, BRAM18 (RAMB36 count twice) and DSP.
- ``parse_timing_summary(text, clock_ns)``: ``report_timing_summary``: WNS/TNS/WHS, the
  clocks, and the achieved fmax of the fabric clock, 1000 / (period - WNS).

``hls_synth_report``, ``post_synth_resources`` and ``timing_report`` shape them into the
JSON files, per dataflow node where the hierarchy allows (the top's instances, in call
order: the input port adapter, one per kernel, the output port adapter); ``side_by_side``
prints estimates and real figures together.  A malformed report raises QnnflowError naming
the file.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from qnnflow.base.errors import QnnflowError

RESOURCES = ("LUT", "FF", "BRAM18", "DSP")


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else None  # 'undef' for data-dependent latencies


def _float(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


# ----- Vitis HLS ------------------------------------------------------------------------------------


@dataclass
class CsynthModule:
    name: str
    target_clock_ns: float | None
    estimated_clock_ns: float | None
    latency_min: int | None
    latency_max: int | None
    interval_min: int | None
    interval_max: int | None
    resources: dict
    instances: list[tuple[str, str]] = field(default_factory=list)  # (instance, module), in call order

    def to_dict(self) -> dict:
        return {"module": self.name, "latency_min": self.latency_min, "latency_max": self.latency_max,
                "ii_min": self.interval_min, "ii_max": self.interval_max,
                "estimated_clock_ns": self.estimated_clock_ns, **self.resources}


def parse_csynth(path: Path) -> CsynthModule:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise QnnflowError(f"{path}: not a readable csynth XML report ({err})") from None
    name = root.findtext("./UserAssignments/TopModelName")
    perf = root.find("./PerformanceEstimates")
    area = root.find("./AreaEstimates/Resources")
    if name is None or perf is None or area is None:
        raise QnnflowError(f"{path}: no UserAssignments/TopModelName, PerformanceEstimates or AreaEstimates; "
                           f"is this a Vitis HLS csynth.xml?")
    latency = perf.find("./SummaryOfOverallLatency")
    get = (lambda tag: latency.findtext(tag)) if latency is not None else (lambda tag: None)
    res = {child.tag: _int(child.text) for child in area}
    resources = {"LUT": res.get("LUT"), "FF": res.get("FF"), "BRAM18": res.get("BRAM_18K"),
                 "DSP": res.get("DSP", res.get("DSP48E"))}  # DSP48E before Vitis HLS
    instances = [(inst.findtext("InstName"), inst.findtext("ModuleName"))
                 for inst in root.findall("./RTLDesignHierarchy/TopModule/InstancesList/Instance")]
    return CsynthModule(name, _float(root.findtext("./UserAssignments/TargetClockPeriod")),
                        _float(perf.findtext("./SummaryOfTimingAnalysis/EstimatedClockPeriod")),
                        _int(get("Best-caseLatency")), _int(get("Worst-caseLatency")),
                        _int(get("Interval-min")), _int(get("Interval-max")), resources, instances)


def kernel_instances(top: CsynthModule, nodes: list[str]) -> dict[str, tuple[str, str]]:
    """node -> (instance, module) from the top's instance list: port adapter, one per kernel, port adapter.

    Empty when the list does not have that shape (then no figure is attributed to a node).
    """
    if len(top.instances) != len(nodes) + 2:
        return {}
    return dict(zip(nodes, top.instances[1:-1]))


def hls_synth_report(report_dir: Path, top_name: str, nodes: list[str], estimated_cycles: dict) -> dict:
    """``report/hls_synth.json``: the top's figures, and per node II and latency against the estimate."""
    report_dir = Path(report_dir)
    top_path = report_dir / "csynth.xml"
    if not top_path.is_file():
        top_path = report_dir / f"{top_name}_csynth.xml"
    top = parse_csynth(top_path)
    modules = {}
    for path in sorted(report_dir.glob("*_csynth.xml")):
        module = parse_csynth(path)
        modules[module.name] = module
    mapping = kernel_instances(top, nodes)
    kernels = []
    for node in nodes:
        instance, module_name = mapping.get(node, (None, None))
        module = modules.get(module_name)
        entry = {"node": node, "instance": instance, "estimated_cycles": estimated_cycles.get(node)}
        entry.update(module.to_dict() if module else {"module": module_name})
        kernels.append(entry)
    return {"source": str(top_path), "top": top.to_dict(), "target_clock_ns": top.target_clock_ns,
            "kernels": kernels, "kernels_attributed": bool(mapping)}


# ----- Vivado utilisation ----------------------------------------------------------------------------


@dataclass
class UtilRow:
    instance: str
    module: str
    depth: int
    resources: dict


def _cells(line: str) -> list[str]:
    return [c for c in line.strip().strip("|").split("|")]


def parse_utilization(text: str, source: str = "report") -> list[UtilRow]:
    """The rows of a ``report_utilization -hierarchical`` table, top first."""
    lines = text.splitlines()
    header_at = next((i for i, line in enumerate(lines)
                      if line.startswith("|") and "Instance" in line and "Total LUTs" in line), None)
    if header_at is None:
        raise QnnflowError(f"{source}: no 'Instance | Module | Total LUTs' table; is this report_utilization "
                           f"-hierarchical output?")
    header = [c.strip() for c in _cells(lines[header_at])]
    col = {name: i for i, name in enumerate(header)}
    dsp = next((name for name in ("DSP Blocks", "DSP48 Blocks", "DSPs") if name in col), None)
    for needed in ("Total LUTs", "FFs", "RAMB36", "RAMB18"):
        if needed not in col:
            raise QnnflowError(f"{source}: the utilisation table has no '{needed}' column")
    rows = []
    for line in lines[header_at + 1:]:
        if line.startswith("+"):
            continue
        if not line.startswith("|"):
            break
        cells = _cells(line)
        if len(cells) != len(header):
            raise QnnflowError(f"{source}: a row has {len(cells)} cells, the header {len(header)}: {line.strip()}")
        raw = cells[col["Instance"]]
        name = raw.strip()
        depth = (len(raw) - len(raw.lstrip(" ")) - 1) // 2  # one leading space, two per level
        num = lambda c: int(float(cells[col[c]].strip() or 0))  # noqa: E731 (RAMB36 may be 0.5)
        bram = 2 * float(cells[col["RAMB36"]].strip() or 0) + float(cells[col["RAMB18"]].strip() or 0)
        rows.append(UtilRow(name, cells[col["Module"]].strip(), depth,
                            {"LUT": num("Total LUTs"), "FF": num("FFs"), "BRAM18": int(bram),
                             "DSP": num(dsp) if dsp else 0}))
    if not rows:
        raise QnnflowError(f"{source}: the utilisation table is empty")
    return rows


def _subtree(rows: list[UtilRow], start: int) -> list[UtilRow]:
    out = []
    for row in rows[start + 1:]:
        if row.depth <= rows[start].depth:
            break
        out.append(row)
    return out


def post_synth_resources(rows: list[UtilRow], top_name: str, node_instances: dict[str, str],
                         source: str, estimates: dict | None = None) -> dict:
    """``report/post_synth_resources.json``: the design, the accelerator, and per node where the hierarchy allows.

    The accelerator is the first instance of module ``top_name`` (the whole design in
    out-of-context synthesis); a node's figures are those of its dataflow instance below it.
    """
    accel_at = next((i for i, r in enumerate(rows) if r.module == top_name or r.module.endswith(f"_{top_name}")
                     or (r.depth == 0 and r.module == "(top)" and r.instance == top_name)), None)
    result = {"source": source, "design": rows[0].resources, "accelerator": None, "nodes": {}}
    if accel_at is None:
        return result
    result["accelerator"] = rows[accel_at].resources
    children = {r.instance: r for r in _subtree(rows, accel_at) if r.depth == rows[accel_at].depth + 1}
    for node, instance in node_instances.items():
        if instance in children:
            result["nodes"][node] = dict(children[instance].resources, instance=instance)
    if estimates:
        result["estimate"] = estimates
    return result


# ----- Vivado timing ---------------------------------------------------------------------------------


def _table_after(lines: list[str], title: str, first_column: str) -> list[list[str]]:
    """Rows (split on whitespace) of the table whose header starts with ``first_column`` after ``title``."""
    at = next((i for i, line in enumerate(lines) if line.strip().strip("|").strip() == title), None)
    if at is None:
        return []
    header = next((i for i in range(at + 1, len(lines)) if lines[i].split()[:1] == [first_column]), None)
    if header is None:
        return []
    rows = []
    for line in lines[header + 2:]:  # skip the dashes under the header
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def parse_timing_summary(text: str, clock_ns: float, source: str = "report") -> dict:
    """WNS/TNS/WHS of the design, its clocks, and the achieved fmax of the clock nearest ``clock_ns``."""
    lines = text.splitlines()
    summary = _table_after(lines, "Design Timing Summary", "WNS(ns)")
    if not summary:
        raise QnnflowError(f"{source}: no 'Design Timing Summary' table; is this report_timing_summary output?")
    values = summary[0]
    wns, tns, whs = _float(values[0]), _float(values[1]), _float(values[4])
    clocks = []
    for row in _table_after(lines, "Clock Summary", "Clock"):
        numbers = [t for t in row if re.fullmatch(r"-?\d+(\.\d+)?", t)]  # the waveform is in braces
        if len(numbers) >= 2:
            clocks.append({"name": row[0], "period_ns": float(numbers[-2]), "frequency_mhz": float(numbers[-1])})
    intra = {row[0]: _float(row[1]) for row in _table_after(lines, "Intra Clock Table", "Clock") if len(row) > 1}
    for clock in clocks:
        clock["wns_ns"] = intra.get(clock["name"])
    result = {"source": source, "wns_ns": wns, "tns_ns": tns, "whs_ns": whs, "met": wns is not None and wns >= 0
              and (whs is None or whs >= 0), "clocks": clocks, "clock": None, "period_ns": None, "fmax_mhz": None}
    if clocks:
        fabric = min(clocks, key=lambda c: abs(c["period_ns"] - clock_ns))
        slack = fabric["wns_ns"] if fabric["wns_ns"] is not None else wns
        result.update(clock=fabric["name"], period_ns=fabric["period_ns"])
        if slack is not None and math.isfinite(slack) and fabric["period_ns"] - slack > 0:
            result["fmax_mhz"] = round(1000.0 / (fabric["period_ns"] - slack), 3)
    return result


# ----- side by side ----------------------------------------------------------------------------------


def side_by_side(estimated: dict[str, dict], real: dict[str, dict], title: str, labels=("est", "real")) -> str:
    """A table of estimated (or, as ``labels`` say, other) and real LUT/FF/BRAM18/DSP per row name (nodes, then
    totals)."""
    names = list(dict.fromkeys([*estimated, *real]))
    head = f"{title}\n{'':<32}" + "".join(f"{r + ' ' + labels[0]:>12}{r + ' ' + labels[1]:>12}" for r in RESOURCES)
    lines = [head]
    for name in names:
        e, r = estimated.get(name, {}), real.get(name, {})
        cell = lambda d, k: f"{d[k]:>12,}" if isinstance(d.get(k), (int, float)) else f"{'-':>12}"  # noqa: E731
        lines.append(f"{name:<32}" + "".join(cell(e, k) + cell(r, k) for k in RESOURCES))
    return "\n".join(lines)


def cycles_side_by_side(hls_report: dict) -> str:
    """Per node: estimated cycles per image beside the HLS interval (II) and latency of its instance."""
    lines = [f"cycles per image, estimated and Vitis HLS\n{'':<32}{'estimate':>12}{'II':>10}{'latency':>10}"]
    for k in hls_report["kernels"]:
        cell = lambda v: f"{v:>10,}" if isinstance(v, int) else f"{'-':>10}"  # noqa: E731
        est = k.get("estimated_cycles")
        lines.append(f"{k['node']:<32}{(f'{est:,}' if est is not None else '-'):>12}"
                     f"{cell(k.get('ii_max'))}{cell(k.get('latency_max'))}")
    return "\n".join(lines)
