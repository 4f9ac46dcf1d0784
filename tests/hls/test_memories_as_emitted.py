"""The cost model counts the memories the generated C++ declares: for the folded zoo, every array of a
layer's parameter header, shaped by its ARRAY_PARTITION / ARRAY_RESHAPE pragmas and bound by its
BIND_STORAGE pragma, is exactly one of the layer's ``memories()``, and nothing else is."""

from __future__ import annotations

import math
import re

import pytest
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.boards import load_board
from qnnflow.hls.codegen.project import generate
from qnnflow.models.export import export_source
from qnnflow.models.source import parse_model_source
from qnnflow.transforms.fold import fold
from qnnflow.transforms.streamline import streamline
from qnnflow.transforms.tidy import tidy
from qnnflow.transforms.to_hw import to_hw

ARRAY = re.compile(r"^\s*(?:static const )?(u?int(?:8|16|32|64)_t|ap_u?int<(\d+)>)\s+(\w+)((?:\[\d+\])+)", re.M)
PRAGMA = re.compile(r"#pragma HLS (ARRAY_PARTITION|ARRAY_RESHAPE) variable=(\w+) (complete|cyclic factor=(\d+)) "
                    r"dim=(\d+)")
BIND = re.compile(r"#pragma HLS BIND_STORAGE variable=(\w+) type=\w+ impl=(\w+)")
IMPL = {"bram": "block", "lutram": "distributed", "uram": "ultra"}


def declared_memories(header: str, top: str, ident: str) -> set[tuple]:
    """(name, count, depth, width, style) of every array a layer's C++ declares, as its pragmas shape it."""
    pragmas = PRAGMA.findall(header) + PRAGMA.findall(top)
    binds = dict(BIND.findall(header) + BIND.findall(top))
    found = set()
    for ctype, ap_bits, var, dims_text in ARRAY.findall(header):
        dims = [int(d) for d in re.findall(r"\d+", dims_text)]
        width = int(ap_bits) if ap_bits else int(re.search(r"\d+", ctype).group())
        count, kept = 1, list(range(len(dims)))
        for kind, name, how, factor, dim in pragmas:
            if name != var:
                continue
            d = int(dim) - 1
            if how == "complete":
                kept.remove(d)
                if kind == "ARRAY_RESHAPE":
                    width *= dims[d]
                else:
                    count *= dims[d]
            else:
                count *= int(factor)
                dims[d] = math.ceil(dims[d] / int(factor))
        style = IMPL.get(binds.get(var), "auto")
        found.add((var.removeprefix(f"{ident}_"), count, math.prod(dims[d] for d in kept), width, style))
    return found


def folded(name: str, board: dict):
    exported, _ = export_source(parse_model_source(name), "random", 1, 0)
    model, _ = to_hw(streamline(tidy(exported)))
    try:
        return fold(model, board)[0]
    except QnnflowError:  # fits no budget (cnv_w8a8): the unfolded design
        return model


@pytest.mark.parametrize("name", ["tfc_w1a1", "lfc_w1a2", "cnv_w1a1", "cnv_w2a2"] + [
    pytest.param(name, marks=pytest.mark.slow)
    for name in ("tfc_w1a2", "tfc_w2a2", "lfc_w1a1", "lfc_w2a2", "cnv_w1a2", "cnv_w4a4", "cnv_w8a8", "mobilenet_w4a4")
])
def test_costed_memories_are_the_declared_arrays(name):
    board = load_board("ultra96")
    model = folded(name, board)
    project = generate(model, board)
    top = project.files["top.cpp"].decode()
    nodes = {n.name: n for n in model.graph.node}
    checked = 0
    for kernel in project.kernels:
        header = project.files[f"params/{kernel.ident}.h"].decode()
        costed = {(m.name, m.count, m.depth, m.width, m.style)
                  for m in getCustomOp(nodes[kernel.node]).memories()}
        assert declared_memories(header, top, kernel.ident) == costed, kernel.node
        checked += len(costed)
    assert checked >= 2 * sum(n.op_type == "MVAU" for n in model.graph.node)  # weights and vectors at least
