"""A global average pool's ReduceSum -> GlobalAccPool; an average pool's window sum -> SumPool."""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.transforms.graph import smallest_int_type
from qnnflow.transforms.to_hw.common import HW_DOMAIN, replace_node, tensor_dtype


def convert_reduce_sum(model, reduce):
    """ReduceSum over H, W of an integer NHWC tensor (a global average pool's sum) -> GlobalAccPool."""
    x = reduce.input[0]
    shape = model.get_tensor_shape(x)
    axes = model.get_initializer(reduce.input[1]) if len(reduce.input) > 1 else None
    dtype = tensor_dtype(model, x)
    if len(shape) != 4 or axes is None or sorted(np.asarray(axes).tolist()) != [1, 2] or not dtype.is_integer():
        return
    pixels = shape[1] * shape[2]
    out_dtype = smallest_int_type(pixels * dtype.min(), pixels * dtype.max())
    node = helper.make_node(
        "GlobalAccPool", [x], [reduce.output[0]], domain=HW_DOMAIN, name=reduce.name, NumChannels=shape[3],
        PE=1, inputDataType=dtype.name, outputDataType=out_dtype.name, numInputVectors=list(shape[:3]),
    )
    replace_node(model, [reduce], node)


def convert_avg_pool(model, pool):
    """An average pool's exact window sum (QuantAvgPool2d without truncation, NHWC) -> SumPool."""
    inst = getCustomOp(pool)
    x = pool.input[0]
    shape, dtype = model.get_tensor_shape(x), tensor_dtype(model, x)
    k, stride = inst.get_nodeattr("kernel"), inst.get_nodeattr("stride")
    if inst.get_nodeattr("data_layout") != "NHWC" or inst.get_shifts() or not dtype.is_integer():
        return
    node = helper.make_node(
        "SumPool", [x], [pool.output[0]], domain=HW_DOMAIN, name=pool.name, ImgDim=list(shape[1:3]),
        PoolDim=[k, k], Stride=[stride, stride], NumChannels=shape[3], PE=1, inputDataType=dtype.name,
        outputDataType=smallest_int_type(k * k * dtype.min(), k * k * dtype.max()).name,
    )
    replace_node(model, [pool], node)
