"""Structured pruning in SIMD-wide blocks of input channels, removed from the hardware, not zeroed.

What is pruned.  Each linear layer (Conv, MatMul with constant integer weights) of the
streamlined graph is read in the hardware's order: its weights as the MVAU holds them,
rows (ky, kx, c) with c fastest (NHWC), one column per output.  The layer's C input
channels are cut into C/SIMD blocks of SIMD consecutive channels; a block is every row of
those channels at every kernel position, for every output: SIMD-wide words of the MVAU's
input, the same across all its outputs.  A block's score is the Lp norm (``norm_order``) of
its weights; at sparsity s the floor(s * blocks) weakest blocks go (ties: the lower
index first), at least one block stays.  All scores come from the unpruned weights.

The pruned model is the unpruned one with the weights of the pruned channels zeroed
(``zeroed_reference``).  ``prune_layers`` computes the same function with the channels gone:

- where the channels come from another layer through channel-wise nodes (MultiThreshold,
  MaxPool, a per-channel Mul/Add, a Flatten of 1x1 pixels) that nothing else reads, that
  layer stops computing them: its weight rows, thresholds and per-channel constants go, and
  to_hw then builds a narrower stream, a smaller sliding window and MVAU;
- otherwise (the network's input, a tensor read twice) a convolution keeps them in its input
  but its weights there become zero; after to_hw, ``RemoveDeadInputChannels`` gives the
  sliding window a PruneMask that skips them and drops their MVAU rows.  A fully connected
  layer there has no window to skip them, so it is not pruned (the layer's ``reason`` says so).

Either way the MVAU's MW shrinks by exactly the pruned words (blocks x kernel positions words
of SIMD elements).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation

from qnnflow.base.errors import BadInputError
from qnnflow.base.values import divisors
from qnnflow.transforms.graph import const_operand, single_consumer

LINEAR = ("Conv", "MatMul")
# Nodes that keep channel c of their input in channel c of their output (axis 1, NCHW or (N, C)).
CHANNELWISE = ("MultiThreshold", "MaxPool", "Mul", "Add", "Flatten")


class PruneInputError(BadInputError):
    """A prune setting that does not fit the model: bad input, named by field and layer."""


# ----- scores and masks --------------------------------------------------------------------


def hardware_matrix(weights: np.ndarray, op_type: str) -> tuple[np.ndarray, int]:
    """A layer's weights as the MVAU holds them, (positions * C, outputs) with rows (ky, kx, c), and C."""
    w = np.asarray(weights)
    if op_type == "Conv":  # (OC, C, KH, KW)
        return w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]), w.shape[1]
    return w, w.shape[0]  # MatMul: (C, OC)


def block_scores(matrix: np.ndarray, channels: int, simd: int, norm_order: float = 1) -> np.ndarray:
    """Lp norm of each block of ``simd`` input channels over all kernel positions and outputs."""
    outputs = matrix.shape[1]
    blocks = np.abs(np.asarray(matrix, dtype=np.float64)).reshape(-1, channels // simd, simd, outputs)
    if math.isinf(norm_order):
        return blocks.max(axis=(0, 2, 3))
    return (blocks ** norm_order).sum(axis=(0, 2, 3)) ** (1.0 / norm_order)


def block_keep(scores: np.ndarray, sparsity: float) -> np.ndarray:
    """Which blocks stay: all but the floor(sparsity * n) weakest, and never none."""
    n = len(scores)
    pruned = min(int(math.floor(sparsity * n + 1e-9)), n - 1)
    keep = np.ones(n, dtype=bool)
    keep[np.argsort(scores, kind="stable")[:pruned]] = False
    return keep


# ----- which layers, and how ---------------------------------------------------------------


@dataclass
class LayerPrune:
    """One linear layer's pruning: its blocks, which stay, and how its removed channels go."""

    name: str  # node of the streamlined graph
    index: int  # position among the linear layers: the MVAU it becomes is MVAU_<index>
    op_type: str
    channels: int
    positions: int  # kernel positions KH*KW (1 for a MatMul)
    simd: int
    keep: np.ndarray  # per block
    how: str | None  # "producer", "window", or None when the layer cannot be pruned
    reason: str = ""

    @property
    def kept_channels(self) -> np.ndarray:
        return np.flatnonzero(np.repeat(self.keep, self.simd))

    @property
    def pruned_blocks(self) -> int:
        return int((~self.keep).sum())

    @property
    def pruned_words(self) -> int:
        """SIMD-wide words removed from each MVAU input vector."""
        return self.pruned_blocks * self.positions

    def to_json(self) -> dict:
        return {"layer": self.name, "mvau": f"MVAU_{self.index}", "channels": self.channels, "simd": self.simd,
                "blocks": len(self.keep), "pruned_blocks": self.pruned_blocks, "pruned_words": self.pruned_words,
                "kept_channels": int(self.kept_channels.size), "how": self.how, "reason": self.reason}


def linear_layers(model: ModelWrapper) -> list:
    """Conv and MatMul nodes with constant weights, in graph order (the MVAUs they become, in order)."""
    return [n for n in model.graph.node
            if n.op_type in LINEAR and len(n.input) > 1 and model.get_initializer(n.input[1]) is not None]


def _channel_axis_const(model: ModelWrapper, node, channels: int):
    """For a Mul/Add: (const input name, axis of the const along the tensor's channel axis or None for a
    scalar-like const), or None when the constant is not per-channel."""
    found = const_operand(model, node)
    if found is None:
        return None
    dyn, value = found
    rank = len(model.get_tensor_shape(node.input[dyn]))
    axis = 1 - (rank - value.ndim)
    if value.size == 1:
        return node.input[1 - dyn], None
    if 0 <= axis < value.ndim and value.shape[axis] == channels and value.size == channels:
        return node.input[1 - dyn], axis
    return None


def producer_path(model: ModelWrapper, tensor: str, channels: int):
    """(channel-wise nodes, producing linear layer) between ``tensor`` and the layer computing its
    channels, when only this path reads them; else (None, why not)."""
    path = []
    while True:
        if single_consumer(model, tensor) is None:
            return None, f"its input '{tensor}' is also read elsewhere"
        node = model.find_producer(tensor)
        if node is None:
            return None, "its input is the network's input"
        if node.op_type in LINEAR and model.get_initializer(node.input[1]) is not None:
            return path, node
        if node.op_type not in CHANNELWISE:
            if not _linear_upstream(model, node):
                return None, f"its input is the network's input (through '{node.name}')"
            return None, f"'{node.name}' ({node.op_type}) lies between it and the layer computing its input"
        if node.op_type == "Flatten" and math.prod(model.get_tensor_shape(node.input[0])[2:]) != 1:
            return None, f"'{node.name}' flattens pixels and channels together"
        if node.op_type in ("Mul", "Add"):
            if _channel_axis_const(model, node, channels) is None:
                return None, f"'{node.name}' ({node.op_type}) has a constant that is not per channel"
            tensor = node.input[const_operand(model, node)[0]]
        else:
            tensor = node.input[0]
        path.append(node)


def _linear_upstream(model: ModelWrapper, node) -> bool:
    """Whether a linear layer computes anything ``node`` reads."""
    stack = [node]
    while stack:
        for tensor in stack.pop().input:
            producer = model.find_producer(tensor) if tensor else None
            if producer is not None:
                if producer.op_type in LINEAR:
                    return True
                stack.append(producer)
    return False


def plan(model: ModelWrapper, sparsity: float, simd: list[int], norm_order: float = 1,
         keeps: dict[int, np.ndarray] | None = None) -> list[LayerPrune]:
    """Scores, kept blocks and the removal route of every linear layer; ``keeps[i]``, when given, are
    layer i's kept blocks as chosen elsewhere (the fine-tuning schedule)."""
    layers = linear_layers(model)
    if not layers:
        raise PruneInputError("prune: the model has no Conv or MatMul layer with constant weights to prune")
    if len(simd) != len(layers):
        raise PruneInputError(f"prune.simd: {len(simd)} values for {len(layers)} layers "
                              f"({', '.join(n.name for n in layers)}); give one SIMD per layer, or 'auto'")
    found = []
    for i, (node, s) in enumerate(zip(layers, simd)):
        matrix, channels = hardware_matrix(model.get_initializer(node.input[1]), node.op_type)
        if not isinstance(s, int) or isinstance(s, bool) or s < 1 or channels % s:
            raise PruneInputError(f"prune.simd[{i}]: SIMD={s!r} does not divide the {channels} input channels of "
                                  f"layer '{node.name}' (MVAU_{i}); legal: {', '.join(map(str, divisors(channels)))}")
        if node.op_type == "Conv" and _conv_group(node) != 1:
            how, reason = None, "grouped convolution"
        else:
            path, producer = producer_path(model, node.input[0], channels)
            how, reason = ("producer", "") if path is not None else (None, producer)
            if how is None and node.op_type == "Conv":
                how = "window"
        keep = block_keep(block_scores(matrix, channels, s, norm_order), sparsity if how else 0.0)
        if how and keeps is not None and i in keeps:
            keep = np.asarray(keeps[i], dtype=bool)
        if how and keep.all():
            reason = f"{channels // s} block(s) of {s} channels: none pruned at sparsity {sparsity:g}"
        found.append(LayerPrune(node.name, i, node.op_type, channels, matrix.shape[0] // channels, s, keep, how,
                                reason))
    if not any(layer.how for layer in found):
        raise PruneInputError("prune: no prunable layer: " + "; ".join(f"'{l.name}': {l.reason}" for l in found))
    return found


def _conv_group(node) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


# ----- applying it -------------------------------------------------------------------------


def _take(model: ModelWrapper, name: str, keep: np.ndarray, axis: int) -> None:
    dtype = model.get_tensor_datatype(name)
    model.set_initializer(name, np.take(model.get_initializer(name), keep, axis=axis))
    model.set_tensor_datatype(name, dtype)


def _narrow_shape(model: ModelWrapper, tensor: str, channels: int) -> None:
    shape = list(model.get_tensor_shape(tensor))
    shape[1] = channels
    model.set_tensor_shape(tensor, shape)


def _zero_inputs(model: ModelWrapper, node, keep_channels: np.ndarray) -> None:
    """Zero the weights of the input channels not in ``keep_channels`` (a bipolar tensor becomes INT2)."""
    name = node.input[1]
    w = np.array(model.get_initializer(name))
    axis = 1 if node.op_type == "Conv" else 0
    dropped = np.setdiff1d(np.arange(w.shape[axis]), keep_channels)
    index = [slice(None)] * w.ndim
    index[axis] = dropped
    w[tuple(index)] = 0
    dtype = model.get_tensor_datatype(name)
    model.set_initializer(name, w)
    model.set_tensor_datatype(name, DataType["INT2"] if dtype == DataType["BIPOLAR"] else dtype)


def zeroed_reference(model: ModelWrapper, layers: list[LayerPrune]) -> ModelWrapper:
    """The pruned model as a function: ``model`` with the pruned channels' weights zeroed."""
    ref = ModelWrapper(copy.deepcopy(model.model))
    nodes = {n.name: n for n in ref.graph.node}
    for layer in layers:
        if layer.how and layer.pruned_blocks:
            _zero_inputs(ref, nodes[layer.name], layer.kept_channels)
    return ref


def prune_layers(model: ModelWrapper, layers: list[LayerPrune]) -> ModelWrapper:
    """A copy of ``model`` computing ``zeroed_reference``'s function with the pruned channels removed
    (or, on the window route, zeroed for RemoveDeadInputChannels to remove after to_hw)."""
    model = ModelWrapper(copy.deepcopy(model.model))
    nodes = {n.name: n for n in model.graph.node}
    for layer in layers:
        if not layer.how or not layer.pruned_blocks:
            continue
        node, keep = nodes[layer.name], layer.kept_channels
        if layer.how == "window":
            _zero_inputs(model, node, keep)
            continue
        path, producer = producer_path(model, node.input[0], layer.channels)
        _take(model, node.input[1], keep, 1 if node.op_type == "Conv" else 0)
        for step in path:
            if step.op_type == "MultiThreshold" and model.get_initializer(step.input[1]).shape[0] == layer.channels:
                _take(model, step.input[1], keep, 0)
            elif step.op_type in ("Mul", "Add"):
                const, axis = _channel_axis_const(model, step, layer.channels)
                if axis is not None:
                    _take(model, const, keep, axis)
            _narrow_shape(model, step.output[0], keep.size)
        _take(model, producer.input[1], keep, 0 if producer.op_type == "Conv" else 1)
        if producer.op_type == "Conv" and len(producer.input) > 2 and producer.input[2]:
            _take(model, producer.input[2], keep, 0)
        _narrow_shape(model, producer.output[0], keep.size)
    return model


class RemoveDeadInputChannels(Transformation):
    """After to_hw: a sliding window's input channels whose MVAU weights are all zero leave the windows
    (PruneMask) and the MVAU (its rows; MW shrinks).  Exact: those channels only ever added zero.
    Weights left all +-1 in a widened INT2 go back to BIPOLAR."""

    def apply(self, model: ModelWrapper):
        for swg_node in model.get_nodes_by_op_type("ConvolutionInputGenerator"):
            mvau_node = single_consumer(model, swg_node.output[0])
            if mvau_node is None or mvau_node.op_type != "MVAU":
                continue
            swg, mvau = getCustomOp(swg_node), getCustomOp(mvau_node)
            if mvau.get_nodeattr("binaryXnorMode"):
                continue  # its 0/1 weights encode -1/+1: none is zero
            kept = swg.kept_channels()
            w = np.asarray(model.get_initializer(mvau_node.input[1]))
            rows = w.reshape(-1, kept.size, w.shape[1])  # (positions, kept channels, MH)
            alive = np.flatnonzero(np.any(rows != 0, axis=(0, 2)))
            if alive.size == kept.size or alive.size == 0:
                continue
            mask = np.zeros(swg.get_nodeattr("IFMChannels"), dtype=np.int64)
            mask[kept[alive]] = 1
            swg.set_nodeattr("PruneMask", [int(v) for v in mask])
            w = rows[:, alive].reshape(-1, w.shape[1])
            model.set_initializer(mvau_node.input[1], w)
            mvau.set_nodeattr("MW", int(w.shape[0]))
            if mvau.get_nodeattr("weightDataType") == "INT2" and np.all(np.abs(w) == 1):
                mvau.set_nodeattr("weightDataType", "BIPOLAR")
            model.set_tensor_datatype(mvau_node.input[1], DataType[mvau.get_nodeattr("weightDataType")])
            model.set_tensor_shape(swg_node.output[0], list(swg.normal_output_shape()))
            return model, True
        return model, False
