"""Executing a model on golden inputs, and comparing results with the reference."""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.compare import Comparison, compare_to_golden
from qnnflow.base.hostops import HOST_OPS, HostNode, run_node


def _sample(model: ModelWrapper, x: np.ndarray) -> dict:
    name = model.graph.input[0].name
    shape = tuple(model.get_tensor_shape(name))
    return {name: x.reshape(shape).astype(np.float32)}


def host_node(node) -> HostNode:
    """An ONNX node as a plain HostNode (attributes decoded), for ``base/hostops.py``."""
    attrs = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        attrs[a.name] = value.decode() if isinstance(value, bytes) else value
    return HostNode(node.op_type, list(node.input), list(node.output), attrs)


# Standard ops, and QONNX's quantizers and thresholds, run over a whole batch by
# base/hostops.py (the code the board driver runs too); float32 elementwise arithmetic is
# IEEE-exact, so these give onnxruntime's and qonnx's results bit for bit.
_QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")
# Custom-op domains whose execute_node is vectorised over any batch size.
_BATCHED_DOMAINS = ("qnnflow.hls.nodes",)


def _on_host(node) -> bool:
    """Whether base/hostops.py runs ``node``: a host op in the standard or a QONNX domain."""
    if node.op_type not in HOST_OPS or (node.domain and node.domain not in _QONNX_DOMAINS):
        return False
    if node.op_type == "Flatten":
        return host_node(node).attrs.get("axis", 1) == 1
    return node.op_type != "Pad" or host_node(node).attrs.get("mode", "constant") == "constant"


def _batchable(model: ModelWrapper) -> bool:
    return all(node.domain in _BATCHED_DOMAINS or _on_host(node) for node in model.graph.node)


def _execute_batched(model: ModelWrapper, inputs: np.ndarray) -> np.ndarray:
    ctx = {init.name: model.get_initializer(init.name) for init in model.graph.initializer}
    name = model.graph.input[0].name
    shape = model.get_tensor_shape(name)
    ctx[name] = inputs.reshape(len(inputs), *shape[1:]).astype(np.float32)
    for node in model.graph.node:
        if _on_host(node):
            run_node(host_node(node), ctx)
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


def compare_outputs(model: ModelWrapper, produced: np.ndarray, golden: np.ndarray) -> Comparison:
    """Compare a model's outputs with golden ones, exactly when the output is annotated integer.

    A graph ending in class labels (k indices where the golden output has scores) is
    compared with the golden scores' top-k indices.
    """
    return compare_to_golden(produced, golden, model.get_tensor_datatype(model.graph.output[0].name))
