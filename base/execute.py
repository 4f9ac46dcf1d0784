"""Executing a model on golden inputs, and comparing results with the reference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp


def _sample(model: ModelWrapper, x: np.ndarray) -> dict:
    name = model.graph.input[0].name
    shape = tuple(model.get_tensor_shape(name))
    return {name: x.reshape(shape).astype(np.float32)}


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _pad(node, ctx):
    """ONNX Pad in constant mode (pads given per axis as [begins..., ends...])."""
    x = ctx[node.input[0]]
    pads = [int(p) for p in ctx[node.input[1]]]
    value = float(ctx[node.input[2]]) if len(node.input) > 2 and node.input[2] else 0.0
    widths = list(zip(pads[: x.ndim], pads[x.ndim :]))
    return np.pad(x, widths, mode="constant", constant_values=value)


def _reshape(x, node, ctx):
    shape = [int(d) for d in ctx[node.input[1]]]
    return x.reshape([x.shape[0]] + shape[1:])


# Standard ops as numpy over a whole batch; float32 elementwise arithmetic is IEEE-exact,
# so these give onnxruntime's results bit for bit.
_NUMPY_OPS = {
    "Mul": lambda node, ctx: ctx[node.input[0]] * ctx[node.input[1]],
    "Add": lambda node, ctx: ctx[node.input[0]] + ctx[node.input[1]],
    "Sub": lambda node, ctx: ctx[node.input[0]] - ctx[node.input[1]],
    "Div": lambda node, ctx: ctx[node.input[0]] / ctx[node.input[1]],
    "Relu": lambda node, ctx: np.maximum(ctx[node.input[0]], np.float32(0)),
    "Identity": lambda node, ctx: ctx[node.input[0]],
    "Transpose": lambda node, ctx: np.transpose(ctx[node.input[0]], _attr(node, "perm")),
    "Flatten": lambda node, ctx: ctx[node.input[0]].reshape(ctx[node.input[0]].shape[0], -1),
    "Reshape": lambda node, ctx: _reshape(ctx[node.input[0]], node, ctx),
    "Pad": _pad,
}
# Custom-op domains whose execute_node is vectorised over any batch size.
_BATCHED_DOMAINS = ("qnnflow.hls.nodes",)
_BATCHED_QONNX_OPS = ("Quant", "BipolarQuant", "MultiThreshold")


def _batchable(model: ModelWrapper) -> bool:
    for node in model.graph.node:
        if node.domain in _BATCHED_DOMAINS or node.op_type in _BATCHED_QONNX_OPS:
            continue
        if node.op_type not in _NUMPY_OPS or (node.op_type == "Flatten" and _attr(node, "axis", 1) != 1) or \
                (node.op_type == "Pad" and _attr(node, "mode", b"constant") not in (b"constant", "constant")):
            return False
    return True


def _execute_batched(model: ModelWrapper, inputs: np.ndarray) -> np.ndarray:
    ctx = {init.name: model.get_initializer(init.name) for init in model.graph.initializer}
    name = model.graph.input[0].name
    shape = model.get_tensor_shape(name)
    ctx[name] = inputs.reshape(len(inputs), *shape[1:]).astype(np.float32)
    for node in model.graph.node:
        if node.op_type in _NUMPY_OPS and not node.domain:
            ctx[node.output[0]] = _NUMPY_OPS[node.op_type](node, ctx).astype(np.float32, copy=False)
        else:
            getCustomOp(node).execute_node(ctx, model.graph)
    return ctx[model.graph.output[0].name]


def execute_batch(model: ModelWrapper, inputs: np.ndarray, chunk: int = 16) -> np.ndarray:
    """Outputs for a batch of inputs (batch first).

    Graphs made of dataflow nodes and simple elementwise/layout ops run as one numpy
    pass per chunk of inputs (small chunks keep the sliding windows' copies in cache);
    anything else runs through qonnx, one sample at a time.
    """
    if _batchable(model):
        return np.concatenate([_execute_batched(model, inputs[i : i + chunk]) for i in range(0, len(inputs), chunk)])
    out_name = model.graph.output[0].name
    outs = [execute_onnx(model, _sample(model, x))[out_name] for x in inputs]
    return np.stack([o.reshape(o.shape[1:]) if o.shape[:1] == (1,) else o for o in outs])


def execute_context(model: ModelWrapper, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of one execution (inputs, initializers, intermediates, outputs)."""
    return execute_onnx(model, _sample(model, x), return_full_exec_context=True)


@dataclass
class Comparison:
    ok: bool
    max_abs_diff: float
    exact: bool  # compared exactly (integer output) rather than to a relative tolerance


def compare(produced: np.ndarray, golden: np.ndarray, dtype: DataType | None, rtol: float = 1e-5) -> Comparison:
    """Integer tensors must match exactly; float tensors to ``rtol`` relative to the golden tensor's scale."""
    golden = np.asarray(golden, dtype=np.float64)
    if np.size(produced) != golden.size:
        return Comparison(False, float("inf"), False)
    produced = np.asarray(produced, dtype=np.float64).reshape(golden.shape)
    diff = float(np.max(np.abs(produced - golden))) if golden.size else 0.0
    if dtype is not None and dtype.is_integer():
        return Comparison(diff == 0.0, diff, True)
    scale = max(float(np.max(np.abs(golden))) if golden.size else 0.0, 1e-12)
    return Comparison(diff <= rtol * scale, diff, False)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores along the last axis, ties to the lower index (as ONNX TopK)."""
    return np.argsort(-scores, axis=-1, kind="stable")[..., :k]


def compare_outputs(model: ModelWrapper, produced: np.ndarray, golden: np.ndarray) -> Comparison:
    """Compare a model's outputs with golden ones, exactly when the output is annotated integer.

    A graph ending in class labels (k indices where the golden output has scores) is
    compared with the golden scores' top-k indices.
    """
    produced = np.asarray(produced)
    if produced.ndim == golden.ndim and produced.shape[-1] < golden.shape[-1] and produced.shape[:-1] == golden.shape[:-1]:
        labels = top_k_indices(golden, produced.shape[-1])
        return compare(produced, labels, DataType["INT64"])
    return compare(produced, golden, model.get_tensor_datatype(model.graph.output[0].name))
