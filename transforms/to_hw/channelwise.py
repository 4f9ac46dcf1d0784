"""Per-channel nodes: an integer Mul [+ Add] -> ChannelwiseOp, a MultiThreshold -> Thresholding,
TopK -> LabelSelect."""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.hls.partition import STREAM_TRANSPARENT
from qnnflow.transforms.graph import broadcast_channelwise, const_operand, fresh_name, single_consumer, smallest_int_type
from qnnflow.transforms.streamline import is_join
from qnnflow.transforms.to_hw.common import HW_DOMAIN, replace_node, tensor_dtype

# What may read a ChannelwiseOp: the nodes that become dataflow nodes.
CHANNELWISE_READERS = ("MultiThreshold", "MaxPoolNHWC", "Im2Col", "MatMul")


def convert_mul(model, mul):
    """An integer per-channel Mul [+ Add] on an integer tensor that a dataflow node reads (the sign
    streamlining factors out of a negative scale, the integer form of a per-channel power-of-two
    scale, a residual branch's scale lined up with the other's) -> ChannelwiseOp."""
    operand = const_operand(model, mul)
    if operand is None:
        return
    x = mul.input[operand[0]]
    shape = tuple(model.get_tensor_shape(x))
    in_dtype = tensor_dtype(model, x)
    factors = broadcast_channelwise(operand[1], shape, len(shape) - 1)
    if factors is None or not in_dtype.is_integer() or np.any(factors != np.rint(factors)):
        return
    nodes, addends = [mul], np.zeros_like(factors)
    reader = single_consumer(model, mul.output[0])
    added = const_operand(model, reader) if reader is not None and reader.op_type == "Add" else None
    if added is not None:
        addends = broadcast_channelwise(added[1], shape, len(shape) - 1)
        if addends is None or np.any(addends != np.rint(addends)):
            return
        nodes.append(reader)
        reader = single_consumer(model, reader.output[0])
    while reader is not None and reader.op_type in STREAM_TRANSPARENT:  # a flatten into the classifier
        reader = single_consumer(model, reader.output[0])
    if reader is None or not (reader.op_type in CHANNELWISE_READERS or is_join(model, reader)):
        return
    out = nodes[-1].output[0]
    params = np.stack([factors, addends], axis=1)
    ends = np.stack([factors * in_dtype.min(), factors * in_dtype.max()]) + addends
    out_dtype = smallest_int_type(ends.min(), ends.max())
    p_name = fresh_name(model, f"{mul.name}_params")
    model.set_initializer(p_name, params.astype(np.float32))
    node = helper.make_node(
        "ChannelwiseOp", [x, p_name], [out], domain=HW_DOMAIN, name=mul.name,
        NumChannels=shape[-1], PE=1, inputDataType=in_dtype.name, outputDataType=out_dtype.name,
        paramDataType=smallest_int_type(min(params.min(), -1), params.max()).name,
        numInputVectors=list(shape[:-1]),
    )
    replace_node(model, nodes, node)
    model.set_tensor_datatype(out, out_dtype)


def convert_multithreshold(model, mt):
    """A MultiThreshold on an integer tensor -> Thresholding, thresholds rounded up and clipped to the input range."""
    x = mt.input[0]
    if not tensor_dtype(model, x).is_integer():
        return  # a float threshold (e.g. the input quantizer's) stays outside the accelerator
    inst = getCustomOp(mt)
    shape = model.get_tensor_shape(x)
    thresholds = model.get_initializer(mt.input[1])
    channels = shape[-1]
    thresholds = np.broadcast_to(thresholds, (channels, thresholds.shape[1]))
    in_dtype = tensor_dtype(model, x)
    thresholds = np.clip(np.ceil(thresholds), in_dtype.min(), in_dtype.max() + 1)
    t_new = fresh_name(model, f"{mt.name}_thresholds")
    model.set_initializer(t_new, thresholds.astype(np.float32))
    node = helper.make_node(
        "Thresholding", [x, t_new], [mt.output[0]], domain=HW_DOMAIN, name=mt.name,
        NumChannels=channels, PE=1, inputDataType=in_dtype.name, outputDataType=inst.get_nodeattr("out_dtype"),
        ActVal=int(inst.get_nodeattr("out_bias")), numInputVectors=list(shape[:-1]),
    )
    replace_node(model, [mt], node)


def convert_topk(model, topk):
    """TopK of integer scores -> LabelSelect."""
    k = model.get_initializer(topk.input[1])
    x = topk.input[0]
    if not tensor_dtype(model, x).is_integer():
        return  # ranking float scores (a tail that could not be absorbed) stays on the host
    labels = model.get_tensor_shape(x)[-1]
    node = helper.make_node(
        "LabelSelect", [x], [topk.output[1]], domain=HW_DOMAIN, name=topk.name,
        Labels=labels, PE=1, K=int(np.asarray(k).reshape(-1)[0]), inputDataType=tensor_dtype(model, x).name,
    )
    replace_node(model, [topk], node)
