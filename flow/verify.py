"""Checking a step's model against the golden I/O, and naming the first node that differs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.base.errors import QnnflowError
from qnnflow.base.compare import compare
from qnnflow.base.execute import compare_outputs, execute_batch, execute_context


@dataclass
class Verification:
    verified: bool
    max_abs_diff: float


def _views(value: np.ndarray) -> list[np.ndarray]:
    """A reference tensor as the hardware graph may hold it: as is, and NCHW as NHWC."""
    value = np.asarray(value)
    return [value, value.transpose(0, 2, 3, 1)] if value.ndim == 4 else [value]


def first_differing_node(model: ModelWrapper, reference: ModelWrapper, x: np.ndarray):
    """The first node (in graph order) of ``model`` whose output the last verified model never computes.

    A tensor is matched by name when the reference has a tensor of that name and shape,
    otherwise by value against every reference tensor of the same shape (also NCHW
    tensors seen as NHWC), since transforms rename, reorder and relayout tensors. A BINARY
    (0/1) tensor also matches the BIPOLAR (-1/+1) tensor it encodes.
    """
    ctx = execute_context(model, x)
    ref = execute_context(reference, x)
    by_shape: dict[tuple, list[np.ndarray]] = {}
    for value in ref.values():
        for view in _views(value):
            by_shape.setdefault(np.shape(view), []).append(view)
    for node in model.graph.node:
        for out in node.output:
            value, dtype = ctx[out], model.get_tensor_datatype(out)
            same_name = out in ref and np.shape(ref[out]) == np.shape(value)
            candidates = [ref[out]] if same_name else by_shape.get(np.shape(value), [])
            encodings = [value, 2 * np.asarray(value) - 1] if dtype.name == "BINARY" else [value]
            ok = any(compare(v, r, dtype).ok for v in encodings for r in candidates)
            if not ok:
                return node
    return None


def verify_step(step: str, model: ModelWrapper, golden, reference: ModelWrapper | None) -> Verification:
    """Execute ``model`` on the golden inputs; raise a QnnflowError naming the culprit on mismatch."""
    produced = execute_batch(model, golden.input)
    result = compare_outputs(model, produced, golden.output)
    if result.ok:
        return Verification(True, result.max_abs_diff)
    how = "exactly" if result.exact else "to 1e-5 relative"
    where = ""
    if reference is not None:
        bad = next(
            i for i in range(len(golden.input)) if not compare_outputs(model, produced[i], golden.output[i]).ok
        )
        node = first_differing_node(model, reference, golden.input[bad])
        if node is not None:
            where = f"; first differing node: '{node.name}' ({node.op_type}) on golden input {bad}"
    raise QnnflowError(
        f"step '{step}': output does not match the golden output {how} "
        f"(max |diff| {result.max_abs_diff:.6g}, golden: {golden.source}){where}"
    )
