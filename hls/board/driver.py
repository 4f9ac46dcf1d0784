"""The files of ``OUT/driver/``: the PYNQ driver, the host program it runs, and the code it needs.

``host_program(model, project)`` takes the verified graph apart at the accelerator: the
host head (graph input -> the tensor entering the region), the port formats, and the host
tail (the region's output -> graph output), as plain node lists and their parameters.
``driver_files(...)`` returns the directory's files:

- ``qnnflow_driver.py``: the driver (``hls/board/pynq_driver.py``);
- ``accel.json`` and ``host_params.npz``: the host program, the port formats and the DMA;
- ``lib/qnnflow/base/``: byte-for-byte copies of the qnnflow modules the driver imports
  (streams, hostops, compare, values, errors), which need numpy alone: the board runs the
  packing and the head and tail code that the flow verified, without qonnx or onnx.
"""

from __future__ import annotations

import io
import json
from importlib import resources
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.base import __version__
from qnnflow.base.errors import QnnflowError
from qnnflow.base.execute import host_node
from qnnflow.base.hostops import HOST_OPS
from qnnflow.hls.board.tcl import DMA_LENGTH_WIDTH, PROJECT
from qnnflow.hls.codegen.project import HlsProject
from qnnflow.hls.partition import find_partition

DRIVER_MODULE = "pynq_driver.py"
DRIVER_FILE = "qnnflow_driver.py"
# The modules of qnnflow.base the driver imports, directly or not (each imports numpy alone).
BASE_MODULES = ("__init__.py", "errors.py", "values.py", "streams.py", "hostops.py", "compare.py")
LABEL_OPS = ("TopK", "LabelSelect")  # a graph ending in one of these outputs class indices
DMA_NAME = "dma"  # the DMA's cell name in make_project.tcl, its attribute on pynq.Overlay


def _host_nodes(model: ModelWrapper, names: list[str], where: str) -> tuple[list[dict], dict[str, np.ndarray]]:
    nodes, params = [], {}
    by_name = {n.name: n for n in model.graph.node}
    for name in names:
        node = by_name[name]
        if node.op_type not in HOST_OPS:
            raise QnnflowError(f"node '{name}' ({node.op_type}) in the host {where} cannot run in the board driver "
                               f"(host ops: {', '.join(HOST_OPS)}); move it into the accelerator or remove it")
        nodes.append(host_node(node).to_dict())
        for tensor in node.input:
            value = model.get_initializer(tensor) if tensor else None
            if value is not None:
                params[tensor] = np.asarray(value)
    return nodes, params


def host_program(model: ModelWrapper, project: HlsProject, top_k: int = 1) -> tuple[dict, dict[str, np.ndarray]]:
    """(accel.json content, host parameters) of ``model``'s partition and ``project``'s ports."""
    partition = find_partition(model)
    region = project.region
    head, head_params = _host_nodes(model, partition.head, "head")
    tail, tail_params = _host_nodes(model, partition.tail, "tail")
    graph_in, graph_out = model.graph.input[0].name, model.graph.output[0].name
    producer = model.find_producer(graph_out)
    config = {
        "generator": f"qnnflow {__version__}",
        "bitfile": f"{PROJECT}.bit",
        "dma": DMA_NAME,
        "max_transfer_bytes": (1 << DMA_LENGTH_WIDTH) - 1,
        "input": {"name": graph_in, "shape": list(model.get_tensor_shape(graph_in))},
        "output": {"name": graph_out, "shape": list(model.get_tensor_shape(graph_out)),
                   "integer": bool(model.get_tensor_datatype(graph_out).is_integer()),
                   "labels": producer is not None and producer.op_type in LABEL_OPS},
        "region_input": {"name": region.input, "shape": list(model.get_tensor_shape(region.input))},
        "region_output": {"name": region.output, "shape": list(model.get_tensor_shape(region.output))},
        "port_in": project.input_format.to_dict(),
        "port_out": project.output_format.to_dict(),
        "head": head,
        "tail": tail,
        "top_k": top_k,
    }
    return config, {**head_params, **tail_params}


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def driver_source() -> bytes:
    return resources.files("qnnflow.hls.board").joinpath(DRIVER_MODULE).read_bytes()


def base_module_copies() -> dict[str, bytes]:
    """lib/qnnflow/...: the installed qnnflow.base modules the driver imports, as they are."""
    import qnnflow.base

    base_dir = Path(qnnflow.base.__file__).parent
    files = {"lib/qnnflow/__init__.py": b'"""The parts of qnnflow the board driver needs (copied at build time)."""\n'}
    for name in BASE_MODULES:
        files[f"lib/qnnflow/base/{name}"] = (base_dir / name).read_bytes()
    return files


def driver_files(model: ModelWrapper, project: HlsProject, top_k: int = 1) -> dict[str, bytes]:
    """The files of ``OUT/driver/`` (relative path -> bytes)."""
    config, params = host_program(model, project, top_k)
    files = {DRIVER_FILE: driver_source(), "accel.json": (json.dumps(config, indent=2) + "\n").encode(),
             "host_params.npz": _npz(params)}
    files.update(base_module_copies())
    return files


def check_host_program(model: ModelWrapper, project: HlsProject, config: dict, params: dict, inputs: np.ndarray,
                       cppsim_run: Path | None = None) -> str:
    """Run the driver's host program on ``inputs`` and require the verified graph's results; returns a note.

    The head must give the tensor the flow feeds the accelerator, exactly; the packed words
    must be the bytes the C++ testbench read (``cppsim_run/input.bin``, when present); the
    tail, applied to the testbench's output words (or, without them, to the Python execution
    of the region), must give the graph's outputs exactly.  QnnflowError otherwise.
    """
    from qnnflow.base.execute import execute_batch
    from qnnflow.hls.board.pynq_driver import HostProgram
    from qnnflow.hls.cppsim import execute_region, region_input

    program = HostProgram(config, params)
    x = program.head(inputs)
    want_x = region_input(model, project.region, inputs)
    if x.shape != want_x.shape or not np.array_equal(x, want_x):
        raise QnnflowError("driver: the host head's output differs from the tensor the verified graph feeds the "
                           "accelerator")
    words = program.pack(x)
    stream_in = cppsim_run / "input.bin" if cppsim_run else None
    stream_out = cppsim_run / "output.bin" if cppsim_run else None
    if stream_in is not None and stream_in.is_file():
        if stream_in.read_bytes() != words.tobytes():
            raise QnnflowError(f"driver: the packed input words differ from the C++ testbench's input {stream_in}")
        raw = np.frombuffer(stream_out.read_bytes(), np.uint8)
        source = "the C++ simulation's output words"
    else:
        y, _ = execute_region(model, project.region, x)
        raw = program.port_out.pack(y)
        source = "the Python execution of the region"
    outputs = program.tail(program.unpack(raw))
    verified = execute_batch(model, inputs)
    if outputs.shape != verified.shape or not np.array_equal(outputs, verified):
        raise QnnflowError(f"driver: head, packing and tail on {source} do not reproduce the verified graph's "
                           f"outputs (max |diff| {np.max(np.abs(outputs - verified.reshape(outputs.shape)))})")
    return f"driver host program reproduces the verified graph's outputs on {len(inputs)} golden inputs from {source}"
