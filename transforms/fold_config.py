"""FINN folding JSON: ``{"Defaults": {...}, "<node name>": {"PE": .., "SIMD": .., "ram_style": .., "resType": ..}}``.

``folding_config(model)`` writes the folding of every tunable dataflow node;
``read_folding(path)`` parses a file; ``apply_folding(model, config)`` sets the attributes
after checking every entry, so a bad file fails in one line naming the node and field.

``Defaults`` follows FINN: ``{"attr": [value, "all" | ["OpType", ...]]}`` sets ``attr`` on
every node (of those op types) that has it, before the per-node entries; a bare value
means "all".  FINN's per-node FIFO depth lists (inFIFODepths, outFIFODepths) are accepted
and ignored: FIFO sizing is not part of folding here.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.flow.errors import QnnflowError
from qnnflow.transforms.fold_space import DERIVED_OPS, FOLDING_ATTRS, PARALLEL_KNOBS, weight_word_bits
from qnnflow.transforms.partition import is_hw

IGNORED_FIELDS = ("inFIFODepths", "outFIFODepths")


def tunable_nodes(model: ModelWrapper) -> list:
    """The dataflow nodes a folding configures (width converters and FIFOs are derived, not configured)."""
    return [n for n in model.graph.node if is_hw(n) and n.op_type not in DERIVED_OPS]


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


def _defaults(config: dict, source: str) -> list[tuple[str, object, object]]:
    """[(attr, value, op types or 'all')] from the Defaults section."""
    section = config.get("Defaults", {})
    if not isinstance(section, dict):
        raise QnnflowError(f"{source}: 'Defaults' must be a mapping of attribute to [value, \"all\" | [op types]]")
    out = []
    for attr, spec in section.items():
        where = f"{source}: Defaults"
        if attr not in FOLDING_ATTRS:
            raise QnnflowError(f"{where}: field '{attr}' is not a folding attribute; use one of {', '.join(FOLDING_ATTRS)}")
        value, ops = (spec[0], spec[1]) if isinstance(spec, list) and len(spec) == 2 else (spec, "all")
        if ops != "all" and not (isinstance(ops, list) and all(isinstance(o, str) for o in ops)):
            raise QnnflowError(f"{where}: field '{attr}': expected [value, \"all\" | [op types]], got {spec!r}")
        _check_value(where, attr, value)
        out.append((attr, value, ops))
    return out


def apply_folding(model: ModelWrapper, config: dict, max_weight_width: int, source: str = "folding") -> list[str]:
    """Set the folding attributes of ``config`` on ``model`` (in place); returns notes.

    Every problem raises a QnnflowError naming ``source``, the node and the field.
    """
    nodes = {n.name: n for n in tunable_nodes(model)}
    defaults = _defaults(config, source)
    for name, entry in config.items():
        if name == "Defaults":
            continue
        if name not in nodes:
            close = difflib.get_close_matches(name, list(nodes), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise QnnflowError(f"{source}: unknown node '{name}'; {hint}(dataflow nodes: {', '.join(nodes)})")
        if not isinstance(entry, dict):
            raise QnnflowError(f"{source}: node '{name}': expected a mapping of attribute to value, got {entry!r}")
    notes = []
    for name, node in nodes.items():
        op = getCustomOp(node)
        allowed = folding_attrs(node)
        for attr, value, ops in defaults:
            if attr in allowed and (ops == "all" or node.op_type in ops):
                _set(op, f"{source}: Defaults (node '{name}')", attr, value)
        entry = config.get(name, {})
        for field, value in entry.items():
            where = f"{source}: node '{name}'"
            if field in IGNORED_FIELDS:
                continue
            if field not in allowed:
                raise QnnflowError(f"{where}: field '{field}' is not a folding attribute of {node.op_type}; "
                                   f"use one of {', '.join(allowed) or '(none)'}")
            _set(op, where, field, value)
        found = op.problems()
        if found:
            raise QnnflowError(f"{source}: node '{name}': {found[0]}")
        bits = weight_word_bits(op)
        if bits is not None and bits > max_weight_width:
            raise QnnflowError(
                f"{source}: node '{name}': field 'PE'/'SIMD': PE*SIMD*weight bits = {bits} exceeds "
                f"fold.max_weight_width={max_weight_width}; lower PE or SIMD, or raise fold.max_weight_width")
        if name not in config and node.op_type in PARALLEL_KNOBS:
            notes.append(f"{name} is not in the folding file; kept as it was")
    return notes
