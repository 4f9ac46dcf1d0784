"""Shared helpers for the HLS back-end tests: one-node (or few-node) graphs, random data, parallel cppsim."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import qonnx_make_model

from qnnflow.flow.boards import load_board
from qnnflow.hls.cppsim import cppsim

DOMAIN = "qnnflow.hls.nodes"
BOARD = load_board("pynq-z1")  # 64-bit AXI ports


def random_ints(rng: np.random.Generator, dt_name: str, shape) -> np.ndarray:
    """Uniform integers over a DataType's whole range (BIPOLAR: -1/+1), as float32."""
    dt = DataType[dt_name]
    if dt_name == "BIPOLAR":
        return rng.choice(np.array([-1.0, 1.0], np.float32), size=shape)
    return rng.integers(int(dt.min()), int(dt.max()) + 1, size=shape).astype(np.float32)


def chain_model(layers: list[tuple[str, dict, dict]], name: str = "chain") -> ModelWrapper:
    """A graph of dataflow nodes in a chain: layers are (op_type, attributes, {input index: initializer}).

    Shapes come from each node's normal shapes (batch 1); datatypes from its attributes.
    """
    nodes, inits, tensor = [], [], "x"
    first_shape = None
    model_tensors = []
    for i, (op_type, attrs, params) in enumerate(layers):
        inputs = [tensor]
        for index in sorted(params):
            while len(inputs) < index:
                inputs.append("")
            pname = f"{op_type}_{i}_param{index}"
            inputs.append(pname)
            inits.append(helper.make_tensor(pname, TensorProto.FLOAT, params[index].shape,
                                            np.asarray(params[index], np.float32).reshape(-1)))
        out = f"t{i}" if i < len(layers) - 1 else "y"
        node = helper.make_node(op_type, inputs, [out], domain=DOMAIN, name=f"{op_type}_{i}", **attrs)
        nodes.append(node)
        inst = getCustomOp(node)
        if first_shape is None:
            first_shape = list(inst.normal_input_shape())
            first_dt = inst.input_datatype()
        model_tensors.append((out, list(inst.normal_output_shape()), inst.output_datatype()))
        tensor = out
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, first_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, model_tensors[-1][1])],
        initializer=inits,
        value_info=[helper.make_tensor_value_info(t, TensorProto.FLOAT, s) for t, s, _ in model_tensors[:-1]],
    )
    model = ModelWrapper(qonnx_make_model(graph, producer_name="qnnflow-tests"))
    model.set_tensor_datatype("x", first_dt)
    for t, _, dt in model_tensors:
        model.set_tensor_datatype(t, dt)
    return model


def node_model(op_type: str, attrs: dict, params: dict | None = None) -> ModelWrapper:
    return chain_model([(op_type, attrs, params or {})], name=op_type)


def model_inputs(model: ModelWrapper, rng: np.random.Generator, images: int) -> np.ndarray:
    shape = model.get_tensor_shape("x")
    return random_ints(rng, model.get_tensor_datatype("x").name, (images, *shape[1:]))


def cppsim_all(models: list[ModelWrapper], cache_dir, images: int = 3, seed: int = 0, native: bool = False):
    """cppsim every model on random inputs, two at a time (g++ runs in subprocesses), sharing a precompiled header."""
    def one(model):
        rng = np.random.default_rng(seed)
        return cppsim(model, model_inputs(model, rng, images), BOARD, cache_dir, precompiled_header=True,
                      native=native)

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, models))
