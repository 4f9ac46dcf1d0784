"""FIFO sizing from measured occupancy: simulate the RTL with a deep FIFO on every input stream of every
node (a join has two), record each FIFO's peak occupancy, set the depths to what was needed and simulate
again.

A node that reads its input in bursts (an MVAU reads a vector's MW/SIMD words during its first
output fold only) stalls its producer unless a FIFO holds what the producer makes meanwhile;
the depth-2 streams of the generated tops do not.  ``size_fifos`` returns the graph with a
StreamingFIFO node of the measured depth (rounded to the memory primitive: up to 32 words a
shift register, above that the next power of two) on every stream that needed more than the
stream's own STREAM_DEPTH, so the HLS and RTL back ends both build them.  The
second simulation must be as fast as the deep one and finish (no deadlock), else QnnflowError.

On a fork the short branch holds the fork's words while the long one fills; the fork's own output
streams are as deep as fold's estimate chose (hls/branch_fifos.py), and where that is too little
the whole-image FIFO in front of the join measures what is missing (a fork whose branch streams
are too shallow deadlocks; behind whole-image FIFOs it cannot, since every node makes an image's
output from that image's input).
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
from qnnflow.hls.partition import Region, hardware_region, stream_input_count
from qnnflow.hls.rtlsim import rtlsim
from qnnflow.hls.widths import port_formats

FIFO = "StreamingFIFO"


def fifo_name(stream: str) -> str:
    return f"{FIFO}_{stream}"


def input_streams(region: Region) -> dict[str, tuple[object, int]]:
    """Every node's input streams by name: a node's input 0 by the node's name, a join's input 1 by
    ``<node>_in1``; each -> (node, input port)."""
    streams = {}
    for node in region.nodes:
        for port in range(stream_input_count(node)):
            streams[node.name if port == 0 else f"{node.name}_in{port}"] = (node, port)
    return streams


def _folded_shape(op, port: int) -> list[int]:
    """Input stream ``port`` of ``op`` per image as (1, ..., words, lanes)."""
    if port == 0:
        return [int(d) for d in op.folded_input_shape()]
    fmt = op.input_format(port)
    return [1, *fmt.shape[:-1], fmt.shape[-1] // fmt.lanes, fmt.lanes]


def insert_fifos(model: ModelWrapper, depths: dict[str, int]) -> ModelWrapper:
    """A copy of ``model`` with a StreamingFIFO of ``depths[stream]`` words on each named input stream
    (``input_streams``)."""
    model = ModelWrapper(model.model.__deepcopy__())
    streams = input_streams(hardware_region(model))
    for name, depth in depths.items():
        node, port = streams[name]
        op = getCustomOp(node)
        src, dst = node.input[port], f"{fifo_name(name)}_out"
        fifo = helper.make_node(FIFO, [src], [dst], domain=DOMAIN, name=fifo_name(name), depth=int(depth),
                                folded_shape=_folded_shape(op, port), dataType=op.input_format(port).datatype)
        node.input[port] = dst
        model.graph.node.insert(list(model.graph.node).index(node), fifo)
        model.set_tensor_shape(dst, model.get_tensor_shape(src))
        model.set_tensor_datatype(dst, model.get_tensor_datatype(src))
    return model


def rounded_depth(peak: int) -> int:
    """The depth for a measured peak: whole shift registers up to SRL_MAX_DEPTH, then powers of two."""
    depth = max(peak, STREAM_DEPTH)
    return depth if depth <= SRL_MAX_DEPTH else 1 << math.ceil(math.log2(depth))


def _sized(model, depths, board, inputs, cache_dir, work_dir, min_images, deep_cycles):
    """(the graph with FIFOs of ``depths``, its rtlsim result, why it does not do: None when it runs bit-exact
    and as fast as the deep design)."""
    sized_model = insert_fifos(model, depths)
    try:
        sized = rtlsim(sized_model, inputs, board, cache_dir, work_dir, min_images=min_images)
    except QnnflowError as err:  # a deadlock: a stream needed words beyond the measured peak
        return sized_model, None, f"the design with the sized FIFOs {depths} fails: {err}"
    if not sized.bit_exact:
        raise QnnflowError(sized.message())
    cycles = sized.performance["cycles_per_image"]
    if cycles > deep_cycles:
        return sized_model, sized, (f"{cycles:,.1f} cycles per image with the sized FIFOs, {deep_cycles:,.1f} with "
                                    f"deep ones; the measured peaks do not suffice")
    return sized_model, sized, None


def size_fifos(model: ModelWrapper, board: dict, inputs, cache_dir: Path, work_dir: Path,
               min_images: int = 24) -> tuple[ModelWrapper, dict]:
    """(the graph with sized FIFOs, the report {"fifos": {stream: {peak_occupancy, depth, inserted}},
    "cycles_per_image": {"deep", "sized"}, "peaks_measured_with": ...}), streams named as ``input_streams``
    names them.

    The peaks are first measured with the input paced at the deep design's throughput: fed back to back,
    every FIFO in front of the slowest node would fill up with words that no node waits for.  Where
    those depths lose throughput or deadlock, the peaks measured with back-to-back input are used."""
    region = hardware_region(model)
    if any(n.op_type == FIFO for n in region.nodes):
        raise QnnflowError("FIFO sizing needs a graph without StreamingFIFO nodes, as fold leaves it; run fifo_size "
                           "once, after fold")
    # deep enough for a whole image: a node never waits on a full FIFO
    deep = {name: math.prod(_folded_shape(getCustomOp(node), port)[:-1]) + STREAM_DEPTH
            for name, (node, port) in input_streams(region).items()}
    deep_model = insert_fifos(model, deep)
    work_dir = Path(work_dir)
    measured = rtlsim(deep_model, inputs, board, cache_dir, work_dir / "deep", min_images=min_images)
    if not measured.bit_exact:
        raise QnnflowError(measured.message())
    deep_cycles = measured.performance["cycles_per_image"]
    period = deep_cycles / port_formats(region, board)[0].words  # cycles per input word at that throughput
    paced = rtlsim(deep_model, inputs, board, cache_dir, work_dir / "paced", min_images=min_images,
                   input_period=period)
    attempts = [("input paced at the deep design's throughput", paced), ("input back to back", measured)]
    for how, run in attempts:
        peaks = {name: run.performance["nodes"][fifo_name(name)]["peak_occupancy"] for name in deep}
        depths = {name: rounded_depth(peak) for name, peak in peaks.items() if peak > STREAM_DEPTH}
        sized_model, sized, problem = _sized(model, depths, board, inputs, cache_dir, work_dir / f"sized-{how[:5]}",
                                             min_images, deep_cycles)
        if problem is None:
            break
    if problem:
        raise QnnflowError(f"FIFO sizing: {problem}")
    report = {"fifos": {name: {"peak_occupancy": peaks[name], "depth": depths.get(name, STREAM_DEPTH),
                               "inserted": name in depths} for name in deep},
              "cycles_per_image": {"deep": deep_cycles, "sized": sized.performance["cycles_per_image"]},
              "peaks_measured_with": how, "stream_depth": STREAM_DEPTH}
    return sized_model, report
