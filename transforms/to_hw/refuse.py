"""Refusals before lowering: a layer with no hardware form between the input quantizer and the last
linear layer, or a join of branches that cannot be summed as integers, named with what to change."""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.base.errors import QnnflowError
from qnnflow.transforms.deconv import pixel_pad_strides
from qnnflow.transforms.graph import head_nodes
from qnnflow.transforms.streamline import aligned_scales, branch_scale, is_channel_concat, is_join
from qnnflow.transforms.to_hw.common import LINEAR, tensor_dtype
from qnnflow.transforms.upsample import nearest_factors


# Layers with no hardware form, and what the user can change.
NO_HARDWARE_FORM = {
    "AveragePool": ("an average pool builds only between quantized activations, where its 1/(k*k) goes into the "
                    "next activation's thresholds (unpadded, square); add a quantized activation after it, use "
                    "nn.MaxPool2d, or pool after the last layer"),
    "GlobalAveragePool": "flatten into the classifier instead, or pool after the last layer",
    "Resize": ("only a nearest upsample by integer factors builds (nn.Upsample(scale_factor=k, mode='nearest')); "
               "use that, remove the upsampling or move it before the input quantizer"),
    "Upsample": ("only a nearest upsample by integer factors builds (nn.Upsample(scale_factor=k, mode='nearest')); "
                 "use that, remove the upsampling or move it before the input quantizer"),
    "ConvTranspose": ("only an ungrouped, undilated 2-D transposed convolution with constant weights builds; "
                      "use one, a strided Conv2d, or move the layer off the accelerator"),
    "Softmax": "keep it after the last layer (where it runs on the host) or drop it (the arg-max is unchanged)",
    "LogSoftmax": "keep it after the last layer (where it runs on the host) or drop it",
    "Sigmoid": "quantize the activation instead (QuantReLU, QuantHardTanh, QuantIdentity)",
    "Tanh": "use QuantHardTanh",
}
BRANCHES = ("qnnflow builds residual adds and channel concats of integer branches, not this join; remove it "
            "or write it as a residual add (+) or a channel concat (torch.cat along dim 1)")


def _feeds_hardware(model: ModelWrapper) -> set[str]:
    """Names of the nodes from which a linear layer with constant weights (a future MVAU) is reachable."""
    found: set[str] = set()
    wanted: set[str] = set()  # tensors a linear layer reads, directly or not
    for node in reversed(model.graph.node):
        linear = node.op_type in LINEAR and model.get_initializer(node.input[1]) is not None
        if linear or any(o in wanted for o in node.output):
            found.add(node.name)
            wanted.update(i for i in node.input if i and model.get_initializer(i) is None)
    return found


def _describe_scale(model, tensor) -> str:
    side = branch_scale(model, tensor)
    if side is None:
        producer = model.find_producer(tensor)
        return f"a {tensor_dtype(model, tensor).name} tensor from '{producer.name if producer else tensor}'"
    scale, _, mul = side
    values = np.unique(np.asarray(scale, dtype=np.float64))
    text = f"{values[0]:.6g}" if values.size == 1 else f"per-channel {np.array2string(values[:4], precision=4)}"
    return f"scale {text}" + (f" from '{mul.name}'" if mul is not None else " (an integer tensor)")


def _check_residual_add(model: ModelWrapper, node) -> None:
    """A residual add must sum integers: streamlining lines up the two branches' scales where their ratio is
    an integer; otherwise it is refused here, naming the add and both scales."""
    if all(tensor_dtype(model, t).is_integer() for t in node.input):
        return
    sides = [branch_scale(model, t) for t in node.input]
    shape = model.get_tensor_shape(node.output[0])
    if all(sides) and aligned_scales(sides[0][0], sides[1][0], shape, 1 if len(shape) == 4 else len(shape) - 1):
        return
    raise QnnflowError(
        f"node '{node.name}' ({node.op_type}) adds two branches whose integers cannot be lined up exactly: "
        f"{_describe_scale(model, node.input[0])} and {_describe_scale(model, node.input[1])} (one must be an integer "
        f"multiple of the other); quantize both branches with power-of-two scales (Brevitas *FixedPoint "
        f"quantizers) or one shared quantizer in front of the add (skip connection)")


def refuse_unbuildable(model: ModelWrapper) -> None:
    """Raise, naming the layer, for a layer between the input quantizer and the last linear layer
    that has no hardware form; before lowering builds Im2Col/MatMul nodes that would be blamed."""
    head, upstream = head_nodes(model), _feeds_hardware(model)
    for node in model.graph.node:
        if node.name in head or node.name not in upstream:
            continue
        what = f"node '{node.name}' ({node.op_type})"
        dynamic = [i for i in node.input if i and model.get_initializer(i) is None]
        buildable = nearest_factors(model, node) is not None or pixel_pad_strides(model, node) is not None
        if node.op_type in NO_HARDWARE_FORM and not buildable:
            raise QnnflowError(f"{what} sits between quantized layers and qnnflow has no dataflow node for "
                               f"{node.op_type}: {NO_HARDWARE_FORM[node.op_type]}")
        if is_join(model, node):
            _check_residual_add(model, node)
        elif is_channel_concat(model, node):
            if not all(tensor_dtype(model, t).is_integer() for t in node.input):
                raise QnnflowError(
                    f"{what} concatenates branches that are not integer tensors ({_describe_scale(model, node.input[0])}"
                    f" and {_describe_scale(model, node.input[1])}): quantize each branch with an activation "
                    f"quantizer right before the concat")
        elif node.op_type in ("Add", "Sum", "Concat", "Mul") and len(dynamic) > 1:
            raise QnnflowError(f"{what} joins two branches of the network: {BRANCHES}")
        if node.op_type in LINEAR and node.input[1] and not tensor_dtype(model, node.input[1]).is_integer():
            raise QnnflowError(f"{what} has float weights inside the network: quantize them (QuantConv2d, "
                               f"QuantLinear with a weight quantizer), or keep float layers before the input "
                               f"quantizer or after the last layer")
