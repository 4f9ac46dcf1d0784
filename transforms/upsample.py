"""Nearest-neighbour upsampling (ONNX Resize/Upsample as torch exports nn.Upsample(mode='nearest')).

An upsample by integer factors only repeats pixels, so it commutes with per-channel scales and
biases (streamlining moves them past it) and, on integers, becomes the UpsampleNearestNeighbour
dataflow node.  ``nearest_factors`` says whether a node is such an upsample.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from qnnflow.transforms.graph import fresh_name


def nearest_factors(model, node) -> tuple[int, ...] | None:
    """The integer factor per axis of a nearest-neighbour Resize/Upsample that repeats pixels
    (out[y] = in[floor(y / k)]), else None."""
    if node.op_type not in ("Resize", "Upsample"):
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    text = lambda name, default: (attrs.get(name, default).decode() if isinstance(attrs.get(name, default), bytes)  # noqa: E731
                                  else attrs.get(name, default))
    if text("mode", "nearest") != "nearest":
        return None
    if node.op_type == "Resize" and (text("coordinate_transformation_mode", "half_pixel") != "asymmetric"
                                     or text("nearest_mode", "round_prefer_floor") != "floor"):
        return None
    shape_in, shape_out = model.get_tensor_shape(node.input[0]), model.get_tensor_shape(node.output[0])
    if node.op_type == "Upsample":
        scales = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
    else:
        scales = model.get_initializer(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scales is None or scales.size == 0:  # Resize by sizes
        if not shape_in or not shape_out:
            return None
        scales = np.array(shape_out, dtype=np.float64) / np.array(shape_in, dtype=np.float64)
    scales = np.asarray(scales, dtype=np.float64)
    if np.any(scales < 1) or np.any(scales != np.round(scales)):
        return None
    if shape_in and shape_out and list(shape_out) != [int(s * k) for s, k in zip(shape_in, scales)]:
        return None
    return tuple(int(k) for k in scales)


def set_nearest_factors(model, node, factors) -> None:
    """Make ``node`` a Resize by ``factors`` given as scales (the form lowering and to_hw read)."""
    name = fresh_name(model, f"{node.name}_scales")
    model.set_initializer(name, np.array(factors, dtype=np.float32))
    if node.op_type == "Upsample":
        node.input[1] = name
    else:
        del node.input[1:]
        node.input.extend(["", name])
