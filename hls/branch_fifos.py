"""The depth of each fork's output streams: the words one branch must hold while the other fills.

A fork (DuplicateStreams) writes every word to both branches, and the join (AddStreams) reads
one word from each at a time.  A branch with a sliding window emits nothing until it has read
a few rows, so the other branch's words pile up in its stream meanwhile; a stream too shallow
to hold them stalls the fork, and with it the long branch: a deadlock.  The depth of the
short branch's stream is therefore sized from the cycles of the long branch (an estimate):

- a node's fill time (cycles before its first output word) is its cycles per image times the
  share of its input it reads first, estimated from its shapes (``fill_cycles``);
- a branch's fill time is the sum over its nodes, from the fork to the join;
- the fork writes an image's W words in C cycles, C the cycles of the slowest node from the
  accelerator's input to the fork (itself included), so a branch that fills ``d`` cycles sooner
  than the slowest one buffers about ``d * W / C`` words (never more than one image's words).

C simulation runs the kernels one after another and needs no depth; the depth matters in
hardware, and is what the generated STREAM pragma and the fork's cost (``memories``) carry.
"""

from __future__ import annotations

import math

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.hls.nodes.base import STREAM_DEPTH
from qnnflow.hls.partition import Region, hardware_region, stream_input_count

FORK = "DuplicateStreams"


def fill_cycles(op) -> float:
    """Estimated cycles before ``op`` writes its first word: its cycles times the rows of its input image
    it needs for its first output row (H - (OH - 1) * floor(H / OH) when the image shrinks: a window or a
    pool; one row otherwise) over the rows it reads.  A node not reading an image reads all of it first."""
    ins, outs = op.normal_input_shape(), op.normal_output_shape()
    if len(ins) != 4 or len(outs) != 4:
        return float(op.cycles())
    rows, out_rows = ins[1], outs[1]
    needed = rows - (out_rows - 1) * (rows // out_rows) if out_rows < rows else 1
    return op.cycles() * needed / rows


def _branch(region: Region, fork: int, port: int) -> tuple[list[int], int | None]:
    """The nodes from output ``port`` of node ``fork`` up to the join where the branch ends, and that join
    (None when the branch forks again or leaves the region first)."""
    after = {(link.producer, link.out_port): link for link in region.links}
    path, link = [], after.get((fork, port))
    while link is not None:
        node = region.nodes[link.consumer]
        if stream_input_count(node) > 1:
            return path, link.consumer
        if len(node.output) != 1:
            return path, None
        path.append(link.consumer)
        link = after.get((link.consumer, 0))
    return path, None


def _feeding(region: Region, index: int) -> set[int]:
    """Node ``index`` and every node of the region upstream of it."""
    before: dict[int, list[int]] = {}
    for link in region.links:
        before.setdefault(link.consumer, []).append(link.producer)
    found, stack = {index}, [index]
    while stack:
        for producer in before.get(stack.pop(), []):
            if producer not in found:
                found.add(producer)
                stack.append(producer)
    return found


def reset_branch_fifos(model: ModelWrapper) -> None:
    """Every fork's output streams back to the default depth (before a new folding is searched)."""
    for node in model.graph.node:
        if node.op_type == FORK:
            getCustomOp(node).set_nodeattr("outFIFODepths", [STREAM_DEPTH] * len(node.output))


def size_branch_fifos(model: ModelWrapper) -> list[str]:
    """Set every fork's ``outFIFODepths`` for the current folding (in place); one sentence per fork saying
    what was chosen and why."""
    region = hardware_region(model)
    notes = []
    for index, node in enumerate(region.nodes):
        if node.op_type != FORK:
            continue
        fork = getCustomOp(node)
        words = fork.cycles()  # one word per cycle: the words of one image
        branches = [_branch(region, index, port) for port in range(len(node.output))]
        joins = {join for _, join in branches}
        if None in joins or len(joins) != 1:
            fork.set_nodeattr("outFIFODepths", [words + STREAM_DEPTH] * len(branches))
            notes.append(f"{node.name}: its branches do not meet at one join, so each output stream holds a whole "
                         f"image ({words} words)")
            continue
        fills = [sum(fill_cycles(getCustomOp(region.nodes[i])) for i in path) for path, _ in branches]
        pace = max(getCustomOp(region.nodes[i]).cycles() for i in _feeding(region, index))
        depths = [STREAM_DEPTH + min(words, math.ceil((max(fills) - fill) * words / pace)) for fill in fills]
        fork.set_nodeattr("outFIFODepths", depths)
        long_branch = max(range(len(fills)), key=fills.__getitem__)
        for port, (path, join) in enumerate(branches):
            if depths[port] == STREAM_DEPTH:
                continue
            first = region.nodes[path[0]].name if path else region.nodes[join].name
            notes.append(
                f"{node.name}: output {port} (to '{first}') is a {depths[port]}-word FIFO, because the other "
                f"branch (from '{region.nodes[branches[long_branch][0][0]].name}') needs an estimated "
                f"{max(fills):,.0f} cycles before its first word reaches '{region.nodes[join].name}' against "
                f"{fills[port]:,.0f} on this one, and meanwhile the fork writes {words:,} words per {pace:,} cycles "
                f"(the pace of the slowest node feeding it)")
    return notes
