"""FIFO sizing from measured occupancy: simulate the RTL with a deep FIFO in front of every node, record
each FIFO's peak occupancy, set the depths to what was needed and simulate again.

A node that reads its input in bursts (an MVAU reads a vector's MW/SIMD words during its first
output fold only) stalls its producer unless a FIFO holds what the producer makes meanwhile;
the depth-2 streams of the generated tops do not.  ``size_fifos`` returns the graph with a
StreamingFIFO node of the measured depth (rounded to the memory primitive: up to 32 words a
shift register, above that the next power of two) in front of every node whose stream needed
more than the stream's own STREAM_DEPTH, so the HLS and RTL back ends both build them.  The
second simulation must be as fast as the deep one and finish (no deadlock), else QnnflowError.
"""

from __future__ import annotations

import math
from pathlib import Path

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.nodes.base import DOMAIN, STREAM_DEPTH
from qnnflow.hls.nodes.fifo import SRL_MAX_DEPTH
from qnnflow.hls.partition import hardware_region
from qnnflow.hls.rtlsim import rtlsim

FIFO = "StreamingFIFO"


def fifo_name(consumer: str) -> str:
    return f"{FIFO}_{consumer}"


def insert_fifos(model: ModelWrapper, depths: dict[str, int]) -> ModelWrapper:
    """A copy of ``model`` with a StreamingFIFO of ``depths[node]`` words on the input stream of each named node."""
    model = ModelWrapper(model.model.__deepcopy__())
    nodes = {n.name: n for n in hardware_region(model).nodes}
    for name, depth in depths.items():
        node = nodes[name]
        op = getCustomOp(node)
        src, dst = node.input[0], f"{fifo_name(name)}_out"
        fifo = helper.make_node(FIFO, [src], [dst], domain=DOMAIN, name=fifo_name(name), depth=int(depth),
                                folded_shape=[int(d) for d in op.folded_input_shape()],
                                dataType=op.input_datatype().name)
        node.input[0] = dst
        model.graph.node.insert(list(model.graph.node).index(node), fifo)
        model.set_tensor_shape(dst, model.get_tensor_shape(src))
        model.set_tensor_datatype(dst, model.get_tensor_datatype(src))
    return model


def rounded_depth(peak: int) -> int:
    """The depth for a measured peak: whole shift registers up to SRL_MAX_DEPTH, then powers of two."""
    depth = max(peak, STREAM_DEPTH)
    return depth if depth <= SRL_MAX_DEPTH else 1 << math.ceil(math.log2(depth))


def size_fifos(model: ModelWrapper, board: dict, inputs, cache_dir: Path, work_dir: Path,
               min_images: int = 24) -> tuple[ModelWrapper, dict]:
    """(the graph with sized FIFOs, the report {"fifos": {node: {peak, depth}}, "cycles_per_image": {...}})."""
    region = hardware_region(model)
    if any(n.op_type == FIFO for n in region.nodes):
        raise QnnflowError("FIFO sizing needs a graph without StreamingFIFO nodes, as fold leaves it; run fifo_size "
                           "once, after fold")
    # deep enough for a whole image: a node never waits on a full FIFO
    deep = {n.name: math.prod(getCustomOp(n).folded_input_shape()[:-1]) + STREAM_DEPTH for n in region.nodes}
    measured = rtlsim(insert_fifos(model, deep), inputs, board, cache_dir, Path(work_dir) / "deep",
                      min_images=min_images)
    if not measured.bit_exact:
        raise QnnflowError(measured.message())
    peaks = {name: measured.performance["nodes"][fifo_name(name)]["peak_occupancy"] for name in deep}
    depths = {name: rounded_depth(peak) for name, peak in peaks.items() if peak > STREAM_DEPTH}
    sized_model = insert_fifos(model, depths)
    sized = rtlsim(sized_model, inputs, board, cache_dir, Path(work_dir) / "sized", min_images=min_images)
    if not sized.bit_exact:
        raise QnnflowError(sized.message())
    deep_cycles, sized_cycles = measured.performance["cycles_per_image"], sized.performance["cycles_per_image"]
    if sized_cycles > deep_cycles:
        raise QnnflowError(f"FIFO sizing: {sized_cycles:,.1f} cycles per image with the sized FIFOs, "
                           f"{deep_cycles:,.1f} with deep ones; the measured peaks do not suffice")
    report = {"fifos": {name: {"peak_occupancy": peaks[name], "depth": depths.get(name, STREAM_DEPTH),
                               "inserted": name in depths} for name in deep},
              "cycles_per_image": {"deep": deep_cycles, "sized": sized_cycles},
              "stream_depth": STREAM_DEPTH}
    return sized_model, report
