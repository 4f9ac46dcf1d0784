"""The folding search space of a dataflow chain: every legal folding of every node, costed.

For each dataflow node, the candidates are the products of its knobs (PE/SIMD over the
divisors of the folded dimension, ram_style, resType), kept when the node itself finds
them legal (``problems()``) and, for MVAUs, when the weight word PE*SIMD*weight bits fits
``max_weight_width``.  Each candidate is costed by the node's own ``cycles()`` and
``resources_with_stream(board)`` (its logic and memories plus the FIFO of the stream it
writes): the node owns its cost model, the search only reads it.

Between consecutive nodes whose stream widths differ a StreamingDataWidthConverter is
needed; its cost (a function of the producer's output width and the consumer's input
width) is tabulated per chain edge, again by the converter node's own cost model.

The candidates are evaluated on a private copy of each node whose attribute reads are
memoised (HWNode re-reads and re-validates attributes on every access, about 1 ms per
candidate otherwise).
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.base.values import divisors
from qnnflow.hls.partition import is_hw

RESOURCES = ("LUT", "BRAM18", "DSP")
DERIVED_OPS = ("StreamingDataWidthConverter", "StreamingFIFO")  # inserted by fold, never searched over
# Parallelism knobs: attribute -> the attribute holding the dimension it must divide.
PARALLEL_KNOBS = {
    "MVAU": {"SIMD": "MW", "PE": "MH"},
    "ConvolutionInputGenerator": {"SIMD": "IFMChannels"},
    "FMPadding": {"SIMD": "NumChannels"},
    "StreamingMaxPool": {"PE": "NumChannels"},
    "Thresholding": {"PE": "NumChannels"},
    "LabelSelect": {"PE": "Labels"},
}
FOLDING_ATTRS = ("PE", "SIMD", "ram_style", "resType")
# Widest weight word (PE*SIMD*weight bits) an MVAU may read per cycle.  The cost model charges
# the memory such a word needs, so this is a guard on routing, not on cost: FINN's SetFolding
# stops at 36 bits, which caps CNV w1a1 on Pynq-Z1 near 8,000 FPS; 4096 lets binary layers
# unroll far enough to use the board (about 10,600 FPS estimated) while staying one block
# RAM deep or a few LUTRAMs wide per PE.
DEFAULT_MAX_WEIGHT_WIDTH = 4096
MEMORY_STYLES = ("block", "distributed")  # "auto" is always one of these; "ultra" only with UltraRAM


class _MemoAttrs:
    """Mixin memoising a HWNode's attribute reads and checks; ``set_nodeattr`` forgets what it may change."""

    def _memo(self, key, compute):
        cache = self.__dict__.setdefault("_fold_memo", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def _read_attr(self, *args):
        return self._memo(("read", *args), lambda: super(_MemoAttrs, self)._read_attr(*args))

    def _datatype_of(self, *args):  # a pure function of the DataType name: never forgotten
        return self._memo(("dtype", *args), lambda: super(_MemoAttrs, self)._datatype_of(*args))

    def attribute_problems(self):
        return self._memo(("checks", "attribute"), lambda: super(_MemoAttrs, self).attribute_problems())

    def folding_problems(self):
        return self._memo(("checks", "folding"), lambda: super(_MemoAttrs, self).folding_problems())

    def set_nodeattr(self, name, value):
        cache = self.__dict__.get("_fold_memo", {})
        for key in [k for k in cache if k[0] == "checks" or k[:2] == ("read", name)]:
            del cache[key]
        super().set_nodeattr(name, value)


_VIEW_CLASSES: dict[type, type] = {}


def op_view(node):
    """A CustomOp on a private copy of ``node``, with memoised attribute reads (for costing candidates)."""
    cls = type(getCustomOp(node))
    if cls not in _VIEW_CLASSES:
        _VIEW_CLASSES[cls] = type(f"Fold{cls.__name__}", (_MemoAttrs, cls), {})
    return _VIEW_CLASSES[cls](copy.deepcopy(node))


@dataclass
class NodeSpace:
    """The legal foldings of one node: ``attrs[k]`` costs ``cycles[k]`` and ``res[k]`` (LUT, BRAM18, DSP)."""

    name: str
    op_type: str
    attrs: list[dict]
    cycles: np.ndarray  # (K,) int64
    res: np.ndarray  # (K, 3) int64
    in_width: np.ndarray  # (K,) bits per input word
    out_width: np.ndarray  # (K,) bits per output word

    def __len__(self) -> int:
        return len(self.attrs)


@dataclass
class Edge:
    """The stream ``tensor`` from chain node ``index`` to node ``index + 1``.

    The two nodes may group its elements differently (an MVAU reads a (1, H, W, C) tensor as
    (1, H*W*C)): a width converter works on the consumer's view, else on the producer's.
    """

    index: int
    tensor: str
    shape: list[int]  # the consumer's per-image view, batch 1 first
    producer_shape: list[int]  # the producer's
    datatype: str
    costs: dict = field(default_factory=dict)  # (in width, out width) -> DwcCost or None (illegal)


@dataclass(frozen=True)
class DwcCost:
    res: tuple[int, int, int]
    cycles: int
    at_producer: bool  # the converter works on the producer's view of the stream


@dataclass
class FoldSpace:
    """The chain of dataflow nodes (graph order) with their candidates and the edges between them."""

    nodes: list[NodeSpace]
    edges: list[Edge]
    board: dict
    weight_limited: set = field(default_factory=set)  # MVAUs that max_weight_width keeps from full parallelism

    def dwc(self, edge: int, in_width: int, out_width: int) -> DwcCost | None:
        """Cost of converting ``in_width``-bit words to ``out_width``-bit words on ``edge``; None if illegal."""
        e = self.edges[edge]
        key = (int(in_width), int(out_width))
        if key not in e.costs:
            e.costs[key] = dwc_cost(e, *key, self.board)
        return e.costs[key]


# ----- the chain ---------------------------------------------------------------------------


def dataflow_chain(model: ModelWrapper) -> tuple[list, list[Edge]]:
    """The dataflow nodes in stream order and the edges between them; a branching region is an error."""
    hw = [n for n in model.graph.node if is_hw(n)]
    if not hw:
        raise QnnflowError("fold: the model has no dataflow nodes; run the 'to_hw' step before 'fold'")
    edges = []
    for i, node in enumerate(hw):
        tensor = node.output[0]
        consumers = model.find_consumers(tensor) or []
        if len(consumers) > 1:
            raise QnnflowError(
                f"node '{node.name}': its output feeds {len(consumers)} nodes; fold supports a chain of "
                f"dataflow nodes (one stream in, one out) only")
        nxt = consumers[0] if consumers and is_hw(consumers[0]) else None
        if i + 1 < len(hw):
            if nxt is None or nxt.name != hw[i + 1].name:
                raise QnnflowError(
                    f"node '{node.name}': the next dataflow node in the graph, '{hw[i + 1].name}', does not read "
                    f"its output; fold supports a single chain of dataflow nodes only")
            _check_stream_types(node, nxt)
            # the shapes as the nodes see the stream: an MVAU may read a (1, H, W, C) tensor as MW = H*W*C
            edges.append(Edge(i, tensor, _batch_one(getCustomOp(nxt).normal_input_shape()),
                              _batch_one(getCustomOp(node).normal_output_shape()), _stream_dtype(model, node)))
        elif nxt is not None:
            raise QnnflowError(f"node '{node.name}': reads after the last dataflow node; internal error")
    return hw, edges


def _check_stream_types(producer, consumer) -> None:
    """Words of one element type flow between two nodes; a width converter cannot retype them."""
    wrote, reads = getCustomOp(producer).output_datatype(), getCustomOp(consumer).input_datatype()
    if wrote != reads:
        raise QnnflowError(
            f"node '{consumer.name}': reads {reads.name} elements but '{producer.name}' writes {wrote.name}; "
            f"set {consumer.name}.inputDataType={wrote.name} (to_hw does) before folding")


def _batch_one(shape) -> list[int]:
    return [1, *[int(d) for d in shape[1:]]]


def _stream_dtype(model: ModelWrapper, producer) -> str:
    dtype = model.get_tensor_datatype(producer.output[0])
    return dtype.name if dtype is not None else getCustomOp(producer).output_datatype().name


def dwc_cost(edge: Edge, in_width: int, out_width: int, board: dict) -> DwcCost | None:
    """A converter's cost on ``edge`` (before the consumer; else after the producer); None if neither is legal."""
    if in_width == out_width:
        return DwcCost((0, 0, 0), 0, False)
    for shape, at_producer in ((edge.shape, False), (edge.producer_shape, True)):
        op = op_view(dwc_node("probe", "x", "y", in_width, out_width, shape, edge.datatype))
        if not op.problems():
            res = op.resources_with_stream(board)
            return DwcCost(tuple(int(res[r]) for r in RESOURCES), int(op.cycles()), at_producer)
    return None


def dwc_node(name: str, src: str, dst: str, in_width: int, out_width: int, shape, datatype: str):
    return helper.make_node(
        "StreamingDataWidthConverter", [src], [dst], domain="qnnflow.hls.nodes", name=name,
        inWidth=int(in_width), outWidth=int(out_width), shape=[int(d) for d in shape], dataType=datatype,
    )


# ----- candidates --------------------------------------------------------------------------


def weight_word_bits(op) -> int | None:
    """PE * SIMD * weight bits of an MVAU (the width of one weight memory word across PEs), else None."""
    if op.onnx_node.op_type != "MVAU":
        return None
    return op.get_nodeattr("PE") * op.get_nodeattr("SIMD") * op.get_weight_datatype().bitwidth()


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


def node_space(node, board: dict, max_weight_width: int) -> NodeSpace:
    """All legal foldings of ``node`` with their cost; a node without knobs has one candidate (as is)."""
    op = op_view(node)
    found = op.problems()
    if found:
        raise op.error("; ".join(found))
    original = {a: op.get_nodeattr(a) for a in FOLDING_ATTRS if a in op.get_nodeattr_types()}
    knobs = {attr: divisors(op.get_nodeattr(dim)) for attr, dim in PARALLEL_KNOBS.get(node.op_type, {}).items()}
    knobs |= {k: v for k, v in style_choices(op, board).items() if v and node.op_type in PARALLEL_KNOBS}
    for attr, value in original.items():
        op.set_nodeattr(attr, value)
    names = list(knobs)
    attrs, rows = [], []
    for values in itertools.product(*(knobs[n] for n in names)):
        choice = dict(zip(names, values))
        if "PE" in choice and "SIMD" in choice and node.op_type == "MVAU":
            if choice["PE"] * choice["SIMD"] * op.get_weight_datatype().bitwidth() > max_weight_width:
                continue
        for attr, value in choice.items():
            op.set_nodeattr(attr, value)
        if op.problems():
            continue
        res = op.resources_with_stream(board)
        attrs.append({a: choice.get(a, original[a]) for a in original})
        rows.append((op.cycles(), *(res[r] for r in RESOURCES), op.instream_width(), op.outstream_width()))
    if not rows:
        raise QnnflowError(
            f"node '{node.name}': no legal folding (PE/SIMD dividing its dimensions) fits fold.max_weight_width="
            f"{max_weight_width}; raise fold.max_weight_width")
    table = np.array(rows, dtype=np.int64)
    return NodeSpace(node.name, node.op_type, attrs, table[:, 0], table[:, 1:4], table[:, 4], table[:, 5])


def build_space(model: ModelWrapper, board: dict, max_weight_width: int) -> FoldSpace:
    nodes, edges = dataflow_chain(model)
    limited = set()
    for node in nodes:
        if node.op_type == "MVAU":
            op = getCustomOp(node)
            full = op.get_nodeattr("MW") * op.get_nodeattr("MH") * op.get_weight_datatype().bitwidth()
            if full > max_weight_width:
                limited.add(node.name)
    return FoldSpace([node_space(n, board, max_weight_width) for n in nodes], edges, board, limited)
