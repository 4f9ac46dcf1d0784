"""The host-side operators in numpy alone: what runs before and after the accelerator.

The float head (input quantisation) and tail (scale, bias, top-k) of a partitioned graph
are made of these operators.  They are written here once, over whole batches, and used
twice: ``base/execute.py`` runs them when it verifies every build step, and the board
driver (a copy of this file in the deployment package) runs them on the board, where
neither onnx nor qonnx is installed.  So the board runs the code the flow verified.

This module imports numpy only.  A node is ``HostNode(op_type, inputs, outputs, attrs)``
with plain attribute values (ints, floats, strings, lists); ``run_node`` evaluates one
in a context dict of arrays.  Semantics are ONNX's and, for Quant, BipolarQuant and
MultiThreshold, QONNX's (tests compare them with qonnx's own execution).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class HostNode:
    op_type: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"op_type": self.op_type, "inputs": list(self.inputs), "outputs": list(self.outputs),
                "attrs": dict(self.attrs)}

    @classmethod
    def from_dict(cls, d: dict) -> "HostNode":
        return cls(d["op_type"], list(d["inputs"]), list(d["outputs"]), dict(d.get("attrs", {})))


_ROUNDING = {
    "ROUND": np.round,  # half to even, as numpy and QONNX
    "HALF_EVEN": np.round,
    "CEIL": np.ceil,
    "FLOOR": np.floor,
    "DOWN": np.fix,
    "UP": lambda x: np.sign(x) * np.ceil(np.abs(x)),
    "HALF_UP": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
    "HALF_DOWN": lambda x: np.sign(x) * np.ceil(np.abs(x) - 0.5),
}


def _int_range(signed: bool, narrow: bool, bits: float) -> tuple[float, float]:
    if signed:
        low, high = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
        return (low + 1 if narrow else low), high
    return 0.0, (2.0**bits - 2 if narrow else 2.0**bits - 1)


def quant(x, scale, zeropt, bits, signed: int, narrow: int, rounding_mode: str):
    """QONNX Quant: clip to the integer range, round, rescale."""
    y = x / scale + zeropt
    bits = float(np.asarray(bits))
    if bits == 1 and signed:
        y = np.where(y >= 0.0, 1.0, -1.0).astype(y.dtype)
    else:
        low, high = _int_range(bool(signed), bool(narrow), bits)
        y = np.clip(y, low, high).astype(y.dtype, copy=False)
        mode = rounding_mode.upper()
        if mode not in _ROUNDING:
            raise ValueError(f"Quant rounding_mode '{rounding_mode}' is not supported ({', '.join(_ROUNDING)})")
        y = _ROUNDING[mode](y)
    return ((y - zeropt) * scale).astype(np.float32)


def bipolar_quant(x, scale):
    return (np.where(x / scale >= 0.0, 1.0, -1.0) * scale).astype(np.float32)


def multithreshold(x, thresholds, out_scale=1.0, out_bias=0.0, data_layout=""):
    """QONNX MultiThreshold: per channel, the number of thresholds x is >= to, scaled and biased."""
    layout = data_layout or {2: "NC", 3: "NWC", 4: "NCHW"}.get(x.ndim, "")
    channel = layout.index("C") if "C" in layout else 1
    moved = np.moveaxis(x, channel, -1)[..., None]  # (..., C, 1) against (C or 1, T)
    counts = np.count_nonzero(moved >= thresholds, axis=-1).astype(x.dtype)
    return (out_scale * np.moveaxis(counts, -1, channel) + out_bias).astype(np.float32)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores along the last axis, ties to the lower index (as ONNX TopK)."""
    return np.argsort(-scores, axis=-1, kind="stable")[..., :k]


def _reshape(x, shape):
    return x.reshape([x.shape[0]] + [int(d) for d in np.asarray(shape)[1:]])


def _pad(x, pads, value=None, mode="constant"):
    """ONNX Pad in constant mode (pads given per axis as [begins..., ends...])."""
    if mode != "constant":
        raise ValueError(f"Pad mode '{mode}' is not supported on the host (only constant)")
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    fill = 0.0 if value is None else float(np.asarray(value).reshape(-1)[0])
    return np.pad(x, list(zip(pads[: x.ndim], pads[x.ndim :])), mode="constant", constant_values=fill)


def _flatten(x, axis):
    if axis != 1:
        raise ValueError(f"Flatten with axis={axis} is not supported on the host (only axis=1, batch first)")
    return x.reshape(x.shape[0], -1)


# op type -> fn(attrs, *inputs) -> output (batch first)
_OPS = {
    "Mul": lambda a, x, y: x * y,
    "Add": lambda a, x, y: x + y,
    "Sub": lambda a, x, y: x - y,
    "Div": lambda a, x, y: x / y,
    "Relu": lambda a, x: np.maximum(x, np.float32(0)),
    "Identity": lambda a, x: x,
    "Transpose": lambda a, x: np.transpose(x, a.get("perm")),
    "Flatten": lambda a, x: _flatten(x, a.get("axis", 1)),
    "Reshape": lambda a, x, shape: _reshape(x, shape),
    "Pad": lambda a, x, pads, value=None: _pad(x, pads, value, a.get("mode", "constant")),
    "Quant": lambda a, x, s, z, b: quant(x, s, z, b, a.get("signed", 1), a.get("narrow", 0),
                                         a.get("rounding_mode", "ROUND")),
    "BipolarQuant": lambda a, x, s: bipolar_quant(x, s),
    "MultiThreshold": lambda a, x, t: multithreshold(x, t, a.get("out_scale", 1.0), a.get("out_bias", 0.0),
                                                     a.get("data_layout", "")),
}
HOST_OPS = (*_OPS, "TopK")


def _top_k(node: HostNode, ctx: dict) -> None:
    """ONNX TopK along the last axis, largest first: outputs (values, int64 indices)."""
    x, k = ctx[node.inputs[0]], int(np.asarray(ctx[node.inputs[1]]).reshape(-1)[0])
    if node.attrs.get("axis", -1) not in (-1, x.ndim - 1) or not node.attrs.get("largest", 1):
        raise ValueError("TopK runs on the host along the last axis, largest first, only")
    indices = top_k_indices(x, k).astype(np.int64)
    ctx[node.outputs[0]] = np.take_along_axis(x, indices, axis=-1)
    if len(node.outputs) > 1 and node.outputs[1]:
        ctx[node.outputs[1]] = indices


def run_node(node: HostNode, ctx: dict) -> None:
    """Evaluate ``node`` on the arrays in ``ctx`` (batch first) and store its output there."""
    if node.op_type == "TopK":
        return _top_k(node, ctx)
    if node.op_type not in _OPS:
        raise ValueError(f"node op '{node.op_type}' cannot run on the host (supported: {', '.join(HOST_OPS)})")
    out = _OPS[node.op_type](node.attrs, *(ctx[i] for i in node.inputs if i))
    ctx[node.outputs[0]] = out.astype(np.float32, copy=False)


def run_graph(nodes: list, initializers: dict, input_name: str, output_name: str, x: np.ndarray) -> np.ndarray:
    """Run a chain of host nodes on a batch ``x`` (batch first)."""
    ctx = dict(initializers)
    ctx[input_name] = np.asarray(x, dtype=np.float32)
    for node in nodes:
        run_node(node, ctx)
    return ctx[output_name]
