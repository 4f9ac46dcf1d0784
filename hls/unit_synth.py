"""Yosys figures of single node instances, out of context: the samples the RTL cost model is fitted to.

``node_alone`` cuts one dataflow node out of a graph (with its parameters and stream types) into a
graph of its own, so that any node whose kind has RTL can be synthesised even when other nodes of
its network have none yet.  ``synthesize_units`` writes the RTL project of such a graph and runs
``hls.synth.synthesize`` on its units (the node's wrapper: its module and its depth-2 output
stream; with ``ports="axi"`` also the AXI port adapters around it), and returns one sample per
unit: what the cost model needs to cost the unit again (``unit_spec``) and Yosys's figures.
"""

from __future__ import annotations

from pathlib import Path

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import qonnx_make_model

from qnnflow.hls.codegen.rtl import generate_rtl
from qnnflow.hls.synth import synthesize
from qnnflow.hls.widths import port_adapters


def node_alone(model: ModelWrapper, node) -> ModelWrapper:
    """A graph of ``node`` alone: its stream input and output, its initializers and their datatypes."""
    inits = [model.get_initializer(t) for t in node.input]
    stream_in = next(t for t, v in zip(node.input, inits) if t and v is None)
    tensors = [stream_in, node.output[0]]
    graph = helper.make_graph(
        [node], node.name,
        [helper.make_tensor_value_info(stream_in, 1, model.get_tensor_shape(stream_in))],
        [helper.make_tensor_value_info(node.output[0], 1, model.get_tensor_shape(node.output[0]))])
    alone = ModelWrapper(qonnx_make_model(graph, producer_name="qnnflow"))
    for t, value in zip(node.input, inits):
        if value is not None:
            alone.set_initializer(t, value)
            tensors.append(t)
    for t in tensors:
        alone.set_tensor_datatype(t, model.get_tensor_datatype(t))
    return alone


def node_attrs(node) -> dict:
    """The node's attributes as JSON values (strings decoded)."""
    out = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list):
            value = [v.decode() if isinstance(v, bytes) else v for v in value]
        out[attr.name] = value
    return out


def adapter_spec(adapter) -> dict:
    return {"kind": "PortAdapter", "in_bits": adapter.in_bits, "out_bits": adapter.out_bits,
            "in_words": adapter.in_words, "out_words": adapter.out_words, "writes_stream": adapter.writes_stream}


def unit_spec(model: ModelWrapper, node) -> dict:
    """The node's kind, attributes, which of its inputs are connected (an MVAU activates only with thresholds) and
    how many outputs it has (a fork two)."""
    return {"kind": node.op_type, "attrs": node_attrs(node), "inputs": [bool(t) for t in node.input],
            "outputs": len(node.output)}


def synthesize_units(model: ModelWrapper, board: dict, family: str, work_dir: Path, ports: str = "stream",
                     jobs: int = 1) -> list[dict]:
    """[{spec, unit, yosys, seconds}] for every unit of ``model``'s RTL project (Yosys out of context)."""
    project = generate_rtl(model, board, ports=ports)
    for rel, data in project.files.items():
        (work_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (work_dir / rel).write_bytes(data)
    report = synthesize(project, work_dir, family, whole=False, jobs=jobs)
    specs = {n.name: unit_spec(model, n) for n in project.region.nodes}
    if ports == "axi":
        adapter_in, adapter_out = port_adapters(project.region, board)
        specs[adapter_in.name], specs[adapter_out.name] = adapter_spec(adapter_in), adapter_spec(adapter_out)
    return [{"unit": name, "spec": specs[name], "yosys": figures, "seconds": report["seconds"][name]}
            for name, figures in report["nodes"].items()]


def op_of(spec: dict):
    """The custom op (or port adapter) a stored ``unit_spec``/``adapter_spec`` describes, to cost it again."""
    from qnnflow.hls.nodes.base import DOMAIN
    from qnnflow.hls.widths import PortAdapter

    if spec["kind"] == "PortAdapter":
        fields = {k: v for k, v in spec.items() if k != "kind"}
        return PortAdapter("port adapter", **fields)
    inputs = [f"in{i}" if present else "" for i, present in enumerate(spec["inputs"])]
    outputs = [f"out{k}" for k in range(spec["outputs"])]
    node = helper.make_node(spec["kind"], inputs, outputs, domain=DOMAIN, name=spec["kind"], **spec["attrs"])
    return getCustomOp(node)
