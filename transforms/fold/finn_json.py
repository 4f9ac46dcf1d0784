"""FINN folding JSON: ``{"Defaults": {...}, "<node name>": {"PE": .., "SIMD": .., "ram_style": .., "resType": ..}}``.

``folding_config(model)`` writes the folding of every tunable dataflow node;
``read_folding(path)`` parses a file; ``apply_folding(model, config)`` sets the attributes
after checking every entry, so a bad file fails in one line naming the node and field.

``Defaults`` follows FINN: ``{"attr": [value, "all" | ["OpType", ...]]}`` sets ``attr`` on
every node (of those op types) that has it, before the per-node entries; a bare value
means "all".

Files written by FINN itself are accepted.  FINN numbers nodes per op type in graph order,
as qnnflow does, so a FINN name keeps its number and its op type is translated
(``canonical_name``): the ``_hls``/``_rtl`` variant suffix is dropped and older op names
are mapped by each node kind's ``FINN_OP_TYPES`` (MatrixVectorActivation_3 and
StreamingFCLayer_Batch_3 -> MVAU_3, Thresholding_Batch_0 -> Thresholding_0); op types in
Defaults are translated the same way.  Two entries landing on one node are an error (FINN numbers its ``_hls`` and
``_rtl`` variants of an op separately, so a file mixing them cannot be mapped by name).
Entries for an op type of which the graph has no dataflow node at all (FINN's input
Thresholding or LabelSelect, which qnnflow may run on the host) are ignored; a missing node
of a kind the graph has (MVAU_9 in a graph of nine MVAUs) stays an error.
Entries for the derived kinds (StreamingFIFO, StreamingDataWidthConverter) are ignored (fold
inserts the converters its folding needs; FIFO sizing is not part of folding), as are the fields
FINN writes that have no qnnflow counterpart (FINN_FIELDS, each with its reason).  Every
translation and everything ignored is reported in a note.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.nodes import derived_kinds, node_kinds
from qnnflow.hls.partition import is_hw
from qnnflow.transforms.fold.space import FOLDING_ATTRS

FINN_VARIANTS = ("_hls", "_rtl")  # FINN >= 0.10 names are ours plus one of these
# Fields FINN writes in folding files that qnnflow has no counterpart for, by why they can be ignored.
FINN_FIELDS = {field: why for why, fields in (
    ("weights are always in on-chip memories of the kernel", ("mem_mode",)),
    ("weights are fixed when the kernel is generated", ("runtime_writeable_weights",)),
    ("an MVAU's threshold memory style is always auto", ("ram_style_thresholds",)),
    ("Thresholding memory is chosen by ram_style", ("depth_trigger_uram", "depth_trigger_bram")),
    ("the sliding window's only parallelism is SIMD", ("parallel_window",)),
    ("each node has one implementation", ("preferred_impl_style",)),
    ("FIFO sizing is not part of folding",
     ("depth", "impl_style", "inFIFODepths", "outFIFODepths", "inFIFODepth", "outFIFODepth")),
) for field in fields}


def canonical_op(op_type: str) -> str:
    """qnnflow's op type for a FINN one (MVAU_hls, MatrixVectorActivation -> MVAU); unknown op types unchanged."""
    kinds = node_kinds()
    finn = {old: ours for ours, cls in kinds.items() for old in cls.FINN_OP_TYPES}
    stem = next((op_type[:-len(s)] for s in FINN_VARIANTS if op_type.endswith(s)), op_type)
    ours = finn.get(stem, stem)
    return ours if ours in kinds else op_type


def canonical_name(name: str) -> str:
    """qnnflow's name for a node name in any FINN form (MVAU_hls_3, StreamingFCLayer_Batch_3 -> MVAU_3)."""
    parsed = re.fullmatch(r"(.+)_([0-9]+)", name)
    return f"{canonical_op(parsed[1])}_{parsed[2]}" if parsed else name


def tunable_nodes(model: ModelWrapper) -> list:
    """The dataflow nodes a folding configures (width converters and FIFOs are derived, not configured)."""
    derived = derived_kinds()
    return [n for n in model.graph.node if is_hw(n) and n.op_type not in derived]


def folding_attrs(node) -> list[str]:
    """The folding attributes ``node`` has, in FOLDING_ATTRS order."""
    schema = getCustomOp(node).get_nodeattr_types()
    return [a for a in FOLDING_ATTRS if a in schema]


def folding_config(model: ModelWrapper) -> dict:
    """The FINN folding JSON of ``model``: every tunable node's folding attributes."""
    config = {"Defaults": {}}
    for node in tunable_nodes(model):
        op = getCustomOp(node)
        attrs = {a: op.get_nodeattr(a) for a in folding_attrs(node)}
        if attrs:
            config[node.name] = attrs
    return config


def read_folding(path: str | Path) -> dict:
    """Parse a FINN folding JSON file into a mapping (one-line errors naming the file)."""
    path = Path(path)
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise QnnflowError(f"folding file {path}: not found; fold.file names a FINN folding JSON") from None
    except json.JSONDecodeError as err:
        where = f"line {err.lineno}, column {err.colno}"
        raise QnnflowError(f"folding file {path}: not valid JSON ({where}: {err.msg})") from None
    if not isinstance(config, dict):
        raise QnnflowError(
            f"folding file {path}: expected a mapping of node names to attributes, got {type(config).__name__}")
    return config


def _check_value(where: str, field: str, value) -> None:
    if field in ("PE", "SIMD"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise QnnflowError(f"{where}: field '{field}': expected an integer, got {value!r}")
    elif not isinstance(value, str):
        raise QnnflowError(f"{where}: field '{field}': expected a string, got {value!r}")


def _set(op, where: str, field: str, value) -> None:
    """Set a folding attribute after checking its type and allowed values (qonnx would raise a bare ValueError)."""
    _check_value(where, field, value)
    spec = op.get_nodeattr_types()[field]
    allowed = spec[3] if len(spec) > 3 else None
    if allowed is not None and value not in allowed:
        raise QnnflowError(f"{where}: field '{field}': {value!r} is not allowed for {op.onnx_node.op_type}; "
                           f"use one of {', '.join(map(repr, sorted(allowed)))}")
    op.set_nodeattr(field, value)


class _Seen:
    """What reading a file translated and ignored, for the notes."""

    def __init__(self):
        self.names, self.ops, self.derived, self.fields, self.absent = Counter(), {}, Counter(), set(), []

    def notes(self) -> list[str]:
        notes = []
        if self.names or self.ops:
            said = [f"{finn}_<n> -> {ours}_<n> ({k})" for (finn, ours), k in self.names.items()]
            said += [f"Defaults op type {finn} -> {ours}" for finn, ours in self.ops.items()]
            notes.append(f"FINN names translated to qnnflow's: {', '.join(said)}")
        if self.derived:
            kinds = ", ".join(f"{op} x{k}" for op, k in self.derived.items())
            notes.append(f"ignored {sum(self.derived.values())} FIFO/width-converter entries ({kinds}): fold "
                         f"inserts the width converters its folding needs; FIFO sizing is not part of folding")
        if self.absent:
            notes.append(f"ignored {', '.join(self.absent)}: this graph has no dataflow node of that kind "
                         f"(qnnflow runs it on the host, or the build has no such layer)")
        if self.fields:
            reasons = {}
            for field in (f for f in FINN_FIELDS if f in self.fields):
                reasons.setdefault(FINN_FIELDS[field], []).append(field)
            said = "; ".join(f"{', '.join(fields)} ({why})" for why, fields in reasons.items())
            notes.append(f"ignored FINN fields with no qnnflow counterpart: {said}")
        return notes


def _label(given: str, ours: str) -> str:
    return f"'{given}'" if given == ours else f"'{given}' (qnnflow's '{ours}')"


def _defaults(config: dict, source: str, seen: _Seen) -> list[tuple[str, object, object]]:
    """[(attr, value, our op types or 'all')] from the Defaults section."""
    section = config.get("Defaults", {})
    if not isinstance(section, dict):
        raise QnnflowError(f"{source}: 'Defaults' must be a mapping of attribute to [value, \"all\" | [op types]]")
    out = []
    for attr, spec in section.items():
        where = f"{source}: Defaults"
        if attr in FINN_FIELDS:
            seen.fields.add(attr)
            continue
        if attr not in FOLDING_ATTRS:
            raise QnnflowError(f"{where}: field '{attr}' is not a folding attribute; use one of {', '.join(FOLDING_ATTRS)}")
        value, ops = (spec[0], spec[1]) if isinstance(spec, list) and len(spec) == 2 else (spec, "all")
        if ops != "all" and not (isinstance(ops, list) and all(isinstance(o, str) for o in ops)):
            raise QnnflowError(f"{where}: field '{attr}': expected [value, \"all\" | [op types]], got {spec!r}")
        _check_value(where, attr, value)
        if ops != "all":
            ours = [canonical_op(o) for o in ops]
            seen.ops.update((o, c) for o, c in zip(ops, ours) if o != c)
            ops = ours
        out.append((attr, value, ops))
    return out


def _entries(config: dict, nodes: dict, source: str, seen: _Seen) -> dict[str, tuple[str, dict]]:
    """{our node name: (name in the file, entry)}; FIFO and width-converter entries are left out."""
    out = {}
    for given, entry in config.items():
        if given == "Defaults":
            continue
        ours = canonical_name(given)
        finn_op, our_op = given.rpartition("_")[0], ours.rpartition("_")[0]
        if our_op in derived_kinds():
            seen.derived[finn_op] += 1
            continue
        if ours not in nodes and our_op in node_kinds() and all(n.op_type != our_op for n in nodes.values()):
            seen.absent.append(given)  # e.g. FINN's input Thresholding, which qnnflow keeps on the host
            continue
        if ours not in nodes:
            close = difflib.get_close_matches(ours, list(nodes), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise QnnflowError(f"{source}: unknown node {_label(given, ours)}; {hint}"
                               f"(dataflow nodes: {', '.join(nodes)})")
        if not isinstance(entry, dict):
            raise QnnflowError(f"{source}: node {_label(given, ours)}: expected a mapping of attribute to value, "
                               f"got {entry!r}")
        if ours in out:
            raise QnnflowError(f"{source}: entries '{out[ours][0]}' and '{given}' both configure node '{ours}'; "
                               f"keep one")
        if given != ours:
            seen.names[(finn_op, our_op)] += 1
        out[ours] = (given, entry)
    return out


def apply_folding(model: ModelWrapper, config: dict, max_weight_width: int, source: str = "folding") -> list[str]:
    """Set the folding attributes of ``config`` on ``model`` (in place); returns notes.

    Node names may be ours or FINN's (see the module docstring).  Every problem raises a
    QnnflowError naming ``source``, the node and the field.
    """
    nodes = {n.name: n for n in tunable_nodes(model)}
    seen = _Seen()
    defaults = _defaults(config, source, seen)
    entries = _entries(config, nodes, source, seen)
    notes = []
    for name, node in nodes.items():
        op = getCustomOp(node)
        allowed = folding_attrs(node)
        for attr, value, ops in defaults:
            if attr in allowed and (ops == "all" or node.op_type in ops):
                _set(op, f"{source}: Defaults (node '{name}')", attr, value)
        given, entry = entries.get(name, (name, {}))
        where = f"{source}: node {_label(given, name)}"
        for field, value in entry.items():
            if field in FINN_FIELDS:
                seen.fields.add(field)
                continue
            if field not in allowed:
                raise QnnflowError(f"{where}: field '{field}' is not a folding attribute of {node.op_type}; "
                                   f"use one of {', '.join(allowed) or '(none)'}")
            _set(op, where, field, value)
        found = op.problems()
        if found:
            raise QnnflowError(f"{where}: {found[0]}")
        bits = op.parameter_word_bits()
        if bits is not None and bits > max_weight_width:
            raise QnnflowError(
                f"{where}: field 'PE'/'SIMD': PE*SIMD*weight bits = {bits} exceeds "
                f"fold.max_weight_width={max_weight_width}; lower PE or SIMD, or raise fold.max_weight_width")
        if name not in entries and op.parallel_knobs():
            notes.append(f"{name} is not in the folding file; kept as it was")
    return seen.notes() + notes
