"""The folding search space of a dataflow region: every legal folding of every node, costed.

For each dataflow node, the candidates are the products of its knobs (its ``parallel_knobs``
over the divisors of the dimension each divides, its ram_style and resType), kept when the
node itself finds them legal (``problems()``, which include the back end's limits) and when
its parameter word (``parameter_word_bits``: an MVAU's PE*SIMD*weight bits) fits
``max_weight_width``.  Each candidate is costed by the node's own ``cycles()`` and
``resources_with_stream(board)`` (its logic and memories plus the FIFO of the stream it
writes): the node owns its cost model, the search only reads it.  The first and last node
also carry the AXI port adapter their input or output width needs (hls/widths.py).

Where a stream's producer and consumer widths differ a width converter is needed; its cost
(a function of the producer's output width and the consumer's input width) is tabulated per
stream by hls/widths.py, with the converter node's own cost model.

The candidates are evaluated on a private copy of each node whose attribute reads are
memoised (``hls.nodes.views.op_view``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.base.errors import QnnflowError
from qnnflow.base.values import divisors
from qnnflow.hls.nodes import derived_kinds
from qnnflow.hls.nodes.cost import RESOURCES
from qnnflow.hls.nodes.views import op_view
from qnnflow.hls.partition import hardware_region, stream_input_count
from qnnflow.hls.widths import ConverterCost, Edge, converter_cost, input_adapter, output_adapter, port_formats, \
    stream_edges

FOLDING_ATTRS = ("PE", "SIMD", "ram_style", "resType")
# Widest weight word (PE*SIMD*weight bits) an MVAU may read per cycle.  The cost model charges
# the memory such a word needs, so this is a guard on routing, not on cost: FINN's SetFolding
# stops at 36 bits, which caps CNV w1a1 on Pynq-Z1 near 8,000 FPS; 4096 lets binary layers
# unroll far enough to use the board while staying a few block RAMs or LUTRAMs wide per PE.
DEFAULT_MAX_WEIGHT_WIDTH = 4096
MEMORY_STYLES = ("block", "distributed")  # "auto" is always one of these; "ultra" only with UltraRAM


@dataclass
class NodeSpace:
    """The legal foldings of one node: ``attrs[k]`` costs ``cycles[k]`` and ``res[k]`` (LUT, BRAM18, DSP)."""

    name: str
    op_type: str
    attrs: list[dict]
    cycles: np.ndarray  # (K,) int64
    res: np.ndarray  # (K, 3) int64
    in_width: np.ndarray  # (K, stream inputs) bits per input word, by port
    out_width: np.ndarray  # (K, outputs) bits per output word, by port

    def __len__(self) -> int:
        return len(self.attrs)


@dataclass
class FoldSpace:
    """The dataflow nodes (topological order) with their candidates and the streams between them."""

    nodes: list[NodeSpace]
    edges: list[Edge]
    board: dict
    weight_limited: set = field(default_factory=set)  # MVAUs that max_weight_width keeps from full parallelism

    def dwc(self, edge: int, in_width: int, out_width: int) -> ConverterCost | None:
        """Cost of converting ``in_width``-bit words to ``out_width``-bit words on ``edge``; None if illegal."""
        e = self.edges[edge]
        key = (int(in_width), int(out_width))
        if key not in e.costs:
            e.costs[key] = converter_cost(e, *key, self.board)
        return e.costs[key]


# ----- candidates --------------------------------------------------------------------------


def style_choices(op, board: dict) -> dict[str, list[str]]:
    """ram_style / resType values worth searching for this node (those that change its cost)."""
    schema = op.get_nodeattr_types()
    out = {}
    if "ram_style" in schema:
        allowed = schema["ram_style"][3] if len(schema["ram_style"]) > 3 else None
        styles = list(MEMORY_STYLES) + (["ultra"] if board.get("resources", {}).get("URAM") else [])
        out["ram_style"] = [s for s in styles if allowed is None or s in allowed]
    if "resType" in schema:
        # probe at fold 1: when LUT and DSP give the same cost (XNOR layers) keep the node's own value
        probe = {}
        for res_type in ("lut", "dsp"):
            op.set_nodeattr("resType", res_type)
            probe[res_type] = op.resources(board) if not op.problems() else None
        out["resType"] = ["lut", "dsp"] if probe["lut"] != probe["dsp"] else []
    return out


def node_space(node, board: dict, max_weight_width: int) -> tuple[NodeSpace, bool]:
    """All legal foldings of ``node`` with their cost (a node without knobs has one candidate, as is), and
    whether max_weight_width excluded any."""
    op = op_view(node)
    found = op.problems()
    if found:
        raise op.error("; ".join(found))
    original = {a: op.get_nodeattr(a) for a in FOLDING_ATTRS if a in op.get_nodeattr_types()}
    parallel = op.parallel_knobs()
    knobs = {attr: divisors(op.get_nodeattr(dim)) for attr, dim in parallel.items()}
    knobs |= {k: v for k, v in style_choices(op, board).items() if v and parallel}
    for attr, value in original.items():
        op.set_nodeattr(attr, value)
    names = list(knobs)
    inputs, outputs = stream_input_count(node), len(node.output)
    attrs, rows, capped = [], [], False
    for values in itertools.product(*(knobs[n] for n in names)):
        choice = dict(zip(names, values))
        for attr, value in choice.items():
            op.set_nodeattr(attr, value)
        if op.problems():
            continue
        bits = op.parameter_word_bits()
        if bits is not None and bits > max_weight_width:
            capped = True
            continue
        res = op.resources_with_stream(board)
        attrs.append({a: choice.get(a, original[a]) for a in original})
        widths = [op.instream_width(), *(op.input_format(p).packed_bits for p in range(1, inputs)),
                  op.outstream_width(), *(op.output_format(p).packed_bits for p in range(1, outputs))]
        rows.append((op.cycles(), *(res[r] for r in RESOURCES), *widths))
    if not rows:
        raise QnnflowError(
            f"node '{node.name}': no legal folding (PE/SIMD dividing its dimensions) fits fold.max_weight_width="
            f"{max_weight_width}; raise fold.max_weight_width")
    table = np.array(rows, dtype=np.int64)
    space = NodeSpace(node.name, node.op_type, attrs, table[:, 0], table[:, 1:4], table[:, 4:4 + inputs],
                      table[:, 4 + inputs:])
    return space, capped


def _add_port(space: NodeSpace, adapter_of, widths: np.ndarray, board: dict) -> None:
    """Charge each candidate the port adapter its width needs: its resources add, and it is a pipeline
    stage of its own, so the candidate's cycles become the slower of the two."""
    for k, width in enumerate(widths):
        adapter = adapter_of(int(width))
        res = adapter.resources(board)
        space.res[k] += [res[r] for r in RESOURCES]
        space.cycles[k] = max(space.cycles[k], adapter.cycles())


def build_space(model: ModelWrapper, board: dict, max_weight_width: int) -> FoldSpace:
    region = hardware_region(model)
    derived = [n.name for n in region.nodes if n.op_type in derived_kinds()]
    if derived:
        raise QnnflowError(f"fold: the region still holds converter/FIFO nodes {derived}; remove them first "
                           f"(hls.widths.strip_derived)")
    edges = stream_edges(model, region)  # element types agree along each stream, before any node is costed
    spaces, limited = [], set()
    for node in region.nodes:
        space, capped = node_space(node, board, max_weight_width)
        spaces.append(space)
        if capped:
            limited.add(node.name)
    port_in, port_out = port_formats(region, board)
    _add_port(spaces[0], lambda width: input_adapter(port_in, width), spaces[0].in_width[:, 0], board)
    _add_port(spaces[-1], lambda width: output_adapter(port_out, width), spaces[-1].out_width[:, 0], board)
    return FoldSpace(spaces, edges, board, limited)
