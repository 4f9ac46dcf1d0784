"""Checking a step's model against the golden I/O, and naming the first node that differs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.base.errors import QnnflowError
from qnnflow.base.execute import compare, compare_outputs, execute_batch, execute_context


@dataclass
class Verification:
    verified: bool
    max_abs_diff: float


def first_differing_node(model: ModelWrapper, reference: ModelWrapper, x: np.ndarray):
    """The first node (in graph order) of ``model`` whose output the last verified model never computes.

    A tensor is matched by name when the reference has a tensor of that name and shape,
    otherwise by value against every reference tensor of the same shape, since transforms
    rename and reorder tensors.
    """
    ctx = execute_context(model, x)
    ref = execute_context(reference, x)
    by_shape: dict[tuple, list[np.ndarray]] = {}
    for value in ref.values():
        by_shape.setdefault(np.shape(value), []).append(value)
    for node in model.graph.node:
        for out in node.output:
            value, dtype = ctx[out], model.get_tensor_datatype(out)
            if out in ref and np.shape(ref[out]) == np.shape(value):
                ok = compare(value, ref[out], dtype).ok
            else:
                ok = any(compare(value, r, dtype).ok for r in by_shape.get(np.shape(value), []))
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
