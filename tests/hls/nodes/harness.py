"""Shared helpers for the dataflow node tests: building nodes, one-node models, random data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

DOMAIN = "qnnflow.hls.nodes"
BOARD_DIR = Path(__file__).resolve().parents[3] / "builds" / "boards"
# every integer DataType of 1 to 8 bits
INT_TYPES = ["BINARY", "BIPOLAR"] + [f"UINT{b}" for b in range(2, 9)] + [f"INT{b}" for b in range(2, 9)]


def board(name: str) -> dict:
    return yaml.safe_load((BOARD_DIR / f"{name}.yaml").read_text())


def make_node(op_type: str, inputs=("x",), name: str | None = None, **attrs):
    return helper.make_node(op_type, list(inputs), ["y"], domain=DOMAIN, name=name or f"{op_type}_0", **attrs)


def node_op(op_type: str, inputs=("x",), name: str | None = None, **attrs):
    """The registered CustomOp instance for a freshly made node (exercises the registry lookup)."""
    return getCustomOp(make_node(op_type, inputs, name, **attrs))


def random_values(rng: np.random.Generator, dt_name: str, shape) -> np.ndarray:
    """Uniform integers over a DataType's range, as float32 (the ONNX carrier)."""
    dt = DataType[dt_name]
    if dt_name == "BIPOLAR":
        return rng.choice(np.array([-1.0, 1.0], np.float32), size=shape)
    return rng.integers(int(dt.min()), int(dt.max()) + 1, size=shape).astype(np.float32)


def fitting_type(lo: int, hi: int) -> str:
    """Smallest INTn/UINTn DataType name holding [lo, hi]."""
    for bits in range(1, 64):
        if lo >= 0 and hi <= 2**bits - 1:
            return "BINARY" if bits == 1 else f"UINT{bits}"
        if lo < 0 and bits > 1 and -(2 ** (bits - 1)) <= lo and hi <= 2 ** (bits - 1) - 1:
            return f"INT{bits}"
    raise ValueError((lo, hi))


def run_direct(op, inputs: dict) -> np.ndarray:
    """Execute a CustomOp on a plain context dict; returns output 'y'."""
    context = dict(inputs)
    op.execute_node(context, None)
    return context["y"]


def single_node_model(node, x: np.ndarray, x_type: str, initializers: dict | None = None) -> ModelWrapper:
    """A one-node ModelWrapper around ``node`` with input 'x' of x's (batched) shape, inferred shapes and types."""
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, (v, _) in (initializers or {}).items()]
    graph = helper.make_graph([node], "single_node", [inp], [out], initializer=inits)
    model = ModelWrapper(qonnx_make_model(graph, producer_name="qnnflow-tests"))
    model.set_tensor_datatype("x", DataType[x_type])
    for k, (_, dt) in (initializers or {}).items():
        model.set_tensor_datatype(k, DataType[dt])
    model = model.transform(InferShapes()).transform(InferDataTypes())
    return model


def run_model(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    return execute_onnx(model, {"x": x})["y"]
