"""Executing a model on golden inputs, and comparing results with the reference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx


def _sample(model: ModelWrapper, x: np.ndarray) -> dict:
    name = model.graph.input[0].name
    shape = tuple(model.get_tensor_shape(name))
    return {name: x.reshape(shape).astype(np.float32)}


def execute_batch(model: ModelWrapper, inputs: np.ndarray) -> np.ndarray:
    """Outputs for a batch of inputs (batch first), one model execution per sample."""
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


def compare_outputs(model: ModelWrapper, produced: np.ndarray, golden: np.ndarray) -> Comparison:
    """Compare a model's outputs with golden ones, exactly when the output is annotated integer."""
    return compare(produced, golden, model.get_tensor_datatype(model.graph.output[0].name))
