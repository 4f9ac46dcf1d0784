"""Forks and joins: a residual Add -> AddStreams, a channel Concat -> StreamingConcat, and a
DuplicateStreams for each extra reader of a stream."""

from __future__ import annotations

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from qnnflow.transforms.graph import fresh_name, smallest_int_type
from qnnflow.transforms.to_hw.common import HW_DOMAIN, node_attr, replace_node, tensor_dtype


def convert_add(model, add):
    """A residual add of two integer NHWC tensors of the same shape -> AddStreams."""
    a, b = add.input
    shape = model.get_tensor_shape(a)
    da, db = tensor_dtype(model, a), tensor_dtype(model, b)
    if not (da.is_integer() and db.is_integer()) or shape != model.get_tensor_shape(b) or len(shape) not in (2, 4):
        return
    out_dtype = smallest_int_type(da.min() + db.min(), da.max() + db.max())
    node = helper.make_node(
        "AddStreams", [a, b], [add.output[0]], domain=HW_DOMAIN, name=add.name, NumChannels=shape[-1], PE=1,
        inputDataType=da.name, input1DataType=db.name, outputDataType=out_dtype.name,
        numInputVectors=list(shape[:-1]),
    )
    replace_node(model, [add], node)
    model.set_tensor_datatype(add.output[0], out_dtype)


def convert_concat(model, concat):
    """A channel concat of two integer NHWC tensors with the same pixels -> StreamingConcat."""
    a, b = concat.input if len(concat.input) == 2 else (None, None)
    shapes = [model.get_tensor_shape(t) for t in (a, b)] if a else []
    axis = node_attr(concat, "axis")
    if not shapes or shapes[0][:-1] != shapes[1][:-1] or axis % len(shapes[0]) != len(shapes[0]) - 1:
        return
    da, db = tensor_dtype(model, a), tensor_dtype(model, b)
    if not (da.is_integer() and db.is_integer()):
        return
    out_dtype = smallest_int_type(min(da.min(), db.min()), max(da.max(), db.max()))
    node = helper.make_node(
        "StreamingConcat", [a, b], [concat.output[0]], domain=HW_DOMAIN, name=concat.name,
        ChannelsPerStream=[shapes[0][-1], shapes[1][-1]], NumChannels=shapes[0][-1] + shapes[1][-1], PE=1,
        inputDataType=da.name, input1DataType=db.name, outputDataType=out_dtype.name,
        numInputVectors=list(shapes[0][:-1]),
    )
    replace_node(model, [concat], node)
    model.set_tensor_datatype(concat.output[0], out_dtype)


class InsertDuplicateStreams(Transformation):
    """A tensor read by several dataflow nodes (the start of a residual block) gets a fork: a DuplicateStreams
    per extra reader, since a stream has one reader.  Output 0 feeds the first reader in graph order."""

    def apply(self, model: ModelWrapper):
        for tensor in list(model.get_all_tensor_names()):
            readers = [n for n in model.find_consumers(tensor) or [] if n.domain == HW_DOMAIN]
            if len(readers) < 2:
                continue
            shape, dtype = model.get_tensor_shape(tensor), tensor_dtype(model, tensor)
            source = tensor
            for reader in readers[:-1]:
                name = fresh_name(model, "DuplicateStreams")
                outputs = []
                for _ in range(2):  # named and shaped one at a time, so the names differ
                    outputs.append(fresh_name(model, f"{name}_out"))
                    model.set_tensor_shape(outputs[-1], shape)
                    model.set_tensor_datatype(outputs[-1], dtype)
                fork = helper.make_node(
                    "DuplicateStreams", [source], outputs, domain=HW_DOMAIN, name=name, NumChannels=shape[-1], PE=1,
                    NumOutputStreams=2, inputDataType=dtype.name, numInputVectors=list(shape[:-1]),
                )
                model.graph.node.insert(list(model.graph.node).index(reader), fork)
                reader.input[list(reader.input).index(tensor)] = outputs[0]
                source = outputs[1]
            readers[-1].input[list(readers[-1].input).index(tensor)] = source
        return model, False
