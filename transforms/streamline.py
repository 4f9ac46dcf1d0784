"""Streamlining: move scales and biases downstream and absorb them into thresholds.

After ``quantizers``, every layer reads like
``MultiThreshold -> Mul(s_act) -> [MaxPool, Reshape] -> MatMul/Conv(int W) -> Mul(s_w) -> Mul/Add(BN) -> MultiThreshold``.
These rewrites move each Mul/Add towards the next MultiThreshold and fold them there,
so that layers compute integer accumulators compared against integer thresholds:

- first the graph is put in canonical form (``canonical``: explicit pads, biases as Adds,
  Gemm as MatMul), before the weight scale is split off, so a bias is not scaled with
  the weights;
- Sub/Div by constants become Add/Mul; batch-norm becomes Mul + Add; a global average pool
  becomes a sum (ReduceSum) and a scale 1/(H*W);
- Add before Mul swaps (x + b) * a = x * a + a * b; consecutive Muls or Adds merge;
- a Mul/Add read by several nodes (a fork) is copied per reader; at a residual add (a join)
  a bias moves through, and the two branches' scales are lined up: a x + c y = s (m_a x + m_c y)
  with integer m where the scales' ratio is an integer (an integer multiply stays on a branch,
  s moves on); past a channel concat each branch's scale and bias become one per-channel
  constant of the result;
- a scalar Mul moves past MatMul/Conv; an Add moves past MatMul (as b @ W) and
  unpadded Conv; Mul (non-negative) and Add move past MaxPool (on integers, a Mul with negative
  entries leaves an integer +-1 Mul in front of the pool and moves its magnitude past it);
  per-channel Mul and Add move past a global sum (the Add times H*W), an unpadded square average
  pool and a nearest upsample, and a Mul past a transposed convolution's pixel padding; both move
  past Reshape/Flatten/Transpose (the constant is reshaped with the tensor), except a per-channel
  Mul on its way into a linear layer, which stays on its channel axis;
- a non-negative Mul moves past Relu, and a Relu right before a MultiThreshold folds
  into its thresholds;
- a per-channel Mul with negative entries right after MatMul/Conv negates those
  output channels' integer weights, so every scale is non-negative;
- Mul + Add in front of a MultiThreshold are absorbed: T' = (T - b) / a, computed in
  float64, rounded up to integers when the input is integer (exact for >=); where some a < 0
  on an integer input (a batch-norm's negative gamma behind a max-pool), an integer +-1 Mul
  stays in front (sign(a) x >= (T - b) / |a|), which to_hw makes a ChannelwiseOp;
- what still stands per channel in front of a linear layer on integers becomes an integer
  multiply-add and a scalar power of two where its values share a power-of-two grid
  (``IntegerChannelAffine``); anything else is left for to_hw to refuse by name.
- an average pool of integers whose output reaches thresholds becomes an exact window sum and a
  scale 1/(k*k) that moves on into them (``avgpool``).

Each rewrite handles every match in one pass, with numpy over whole tensors; nodes in
the float head (before the input quantizer) are never touched.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.batchnorm_to_affine import BatchNormToAffine
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from qnnflow.transforms.avgpool import AveragePoolToWindowSum, TruncToQuant, square_unpadded_pool
from qnnflow.transforms.canonical import CANONICAL
from qnnflow.transforms.deconv import pixel_pad_strides
from qnnflow.transforms.graph import (
    add_const,
    broadcast_channelwise,
    const_operand,
    fresh_name,
    head_nodes,
    insert_after,
    insert_before,
    remove_node,
    single_consumer,
    smallest_int_type,
)
from qnnflow.transforms.upsample import nearest_factors

LINEAR = ("MatMul", "Conv")
RESHAPING = ("Reshape", "Flatten", "Transpose")
POOLS = ("MaxPool", "MaxPoolNHWC")
# Far beyond any accumulator: a threshold that is always (or never) reached.
ALWAYS, NEVER = -(2.0**30), 2.0**30


def _affine(model, node):
    """(dynamic input index, constant) for a Mul/Add with one constant operand, else None."""
    if node.op_type not in ("Mul", "Add"):
        return None
    return const_operand(model, node)


def _set_const(model, node, value):
    """Give Mul/Add ``node`` the constant ``value``, without more axes than its output has: a
    (1, 1, 1, 1) scale moved past a flatten would otherwise broadcast a flat tensor back to 4D."""
    idx, _ = const_operand(model, node)
    value = np.asarray(value, dtype=np.float32)
    shape = model.get_tensor_shape(node.output[0])
    extra = value.ndim - len(shape) if shape is not None else 0
    if extra > 0 and all(d == 1 for d in value.shape[:extra]):
        value = value.reshape(value.shape[extra:])
    model.set_initializer(node.input[1 - idx], value)


def _swap(model, first, second):
    """Exchange a Mul/Add ``first`` with the single-input node ``second`` that reads it."""
    x = first.input[_affine(model, first)[0]]
    mid, y = first.output[0], second.output[0]
    second.input[list(second.input).index(mid)] = x
    second.output[0] = mid
    first.input[list(first.input).index(x)] = mid
    first.output[0] = y
    model.graph.node.remove(first)
    model.graph.node.insert(list(model.graph.node).index(second) + 1, first)
    model.set_tensor_shape(mid, model.get_tensor_shape(y))
    _set_const(model, first, _affine(model, first)[1])


def _channel_axis(model, tensor: str, layout: str | None = None) -> int:
    rank = len(model.get_tensor_shape(tensor))
    return rank - 1 if layout == "NHWC" or rank == 2 else 1


def _is_channelwise(value: np.ndarray, shape, axis: int) -> bool:
    if value.size == 1:
        return True
    v = np.broadcast_to(value, shape)
    return bool(np.all(np.moveaxis(v, axis, -1) == np.moveaxis(v, axis, -1).reshape(-1, shape[axis])[:1]))


class ConvertSubDivToAddMul(Transformation):
    """x - c -> x + (-c); x / c -> x * (1/c), for constant c, outside the float head."""

    def apply(self, model):
        head = head_nodes(model)
        changed = False
        for node in model.graph.node:
            if node.op_type not in ("Sub", "Div") or node.name in head:
                continue
            c = model.get_initializer(node.input[1])
            if c is None or model.get_initializer(node.input[0]) is not None:
                continue
            model.set_initializer(node.input[1], (-c if node.op_type == "Sub" else 1.0 / c).astype(np.float32))
            node.op_type = "Add" if node.op_type == "Sub" else "Mul"
            changed = True
        return model, changed


class GlobalAveragePoolToSum(Transformation):
    """GlobalAveragePool (or an unpadded AveragePool over the whole map), outside the float head ->
    ReduceSum over H, W followed by Mul(1 / (H * W)): the sum is a GlobalAccPool in hardware and the
    scale moves downstream like any other."""

    def apply(self, model):
        head = head_nodes(model)
        for node in list(model.graph.node):
            if node.name in head or not self._is_global(model, node):
                continue
            shape = model.get_tensor_shape(node.input[0])
            axes = fresh_name(model, f"{node.name}_axes")
            model.set_initializer(axes, np.array([2, 3], dtype=np.int64))
            summed = fresh_name(model, f"{node.name}_sum")
            model.set_tensor_shape(summed, [shape[0], shape[1], 1, 1])
            scale = fresh_name(model, f"{node.name}_scale")
            model.set_initializer(scale, np.array(1.0 / (shape[2] * shape[3]), dtype=np.float32))
            index = list(model.graph.node).index(node)
            model.graph.node.remove(node)
            model.graph.node.insert(index, helper.make_node("Mul", [summed, scale], [node.output[0]],
                                                            name=fresh_name(model, "Mul")))
            model.graph.node.insert(index, helper.make_node("ReduceSum", [node.input[0], axes], [summed], keepdims=1,
                                                            name=node.name.replace(node.op_type, "ReduceSum")))
        return model, False

    @staticmethod
    def _is_global(model, node) -> bool:
        shape = model.get_tensor_shape(node.input[0])
        if shape is None or len(shape) != 4:
            return False
        if node.op_type == "GlobalAveragePool":
            return True
        if node.op_type != "AveragePool":
            return False
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        return (list(attrs.get("kernel_shape", [])) == list(shape[2:]) and not any(attrs.get("pads", [0]))
                and not attrs.get("ceil_mode", 0))


class MoveAffineDownstream(Transformation):
    """One sweep of the move/merge rules above (the caller repeats to a fixed point)."""

    def apply(self, model):
        head = head_nodes(model)
        for node in list(model.graph.node):
            if node.name in head or _affine(model, node) is None:
                continue
            consumer = single_consumer(model, node.output[0])
            if consumer is None:
                continue
            if self._rewrite(model, node, consumer):
                return model, True  # the graph changed under the loop: start a new sweep
        return model, False

    def _rewrite(self, model, node, consumer) -> bool:
        _, c = _affine(model, node)
        op, cop = node.op_type, consumer.op_type
        c_aff = _affine(model, consumer)
        if c_aff is not None and consumer.input[c_aff[0]] == node.output[0]:
            c2 = c_aff[1]
            if op == cop:  # merge into the consumer
                _set_const(model, consumer, c * c2 if op == "Mul" else c + c2)
                remove_node(model, node)
                return True
            if op == "Add" and cop == "Mul":  # (x + b) * a = x * a + a * b
                _set_const(model, node, c * c2)
                _swap(model, node, consumer)
                return True
            return False
        if is_join(model, consumer):
            return _past_join(model, node, consumer)
        if is_channel_concat(model, consumer):
            return _past_concat(model, node, consumer)
        if cop in LINEAR and consumer.input[0] == node.output[0] and model.get_initializer(consumer.input[1]) is not None:
            return self._past_linear(model, node, consumer, c)
        if cop in POOLS:
            layout = "NHWC" if cop == "MaxPoolNHWC" else None
            shape = model.get_tensor_shape(node.output[0])
            axis = _channel_axis(model, node.output[0], layout)
            if not _is_channelwise(c, shape, axis):
                return False
            if op == "Mul" and np.any(c < 0):
                return self._sign_stays_before_pool(model, node, consumer, c, axis)
            _swap(model, node, consumer)
            return True
        if op == "Mul" and pixel_pad_strides(model, consumer) is not None and consumer.input[0] == node.output[0]:
            if not _is_channelwise(c, model.get_tensor_shape(node.output[0]), 1):  # the zeros it inserts stay 0
                return False
            _swap(model, node, consumer)
            return True
        if nearest_factors(model, consumer) is not None and consumer.input[0] == node.output[0]:  # repeats pixels
            if not _is_channelwise(c, model.get_tensor_shape(node.output[0]), 1):
                return False
            _swap(model, node, consumer)
            return True
        if cop == "AveragePool" and square_unpadded_pool(consumer) is not None:  # avg(a x + b) = a avg(x) + b
            if not _is_channelwise(c, model.get_tensor_shape(node.output[0]), 1):
                return False
            _swap(model, node, consumer)
            return True
        if cop == "ReduceSum" and consumer.input[0] == node.output[0]:  # a global sum pool (NCHW, keepdims)
            shape = model.get_tensor_shape(node.output[0])
            if not _is_channelwise(c, shape, 1):
                return False
            if op == "Add":  # sum(x + b) = sum(x) + H * W * b
                _set_const(model, node, np.asarray(c, dtype=np.float64) * shape[2] * shape[3])
            _swap(model, node, consumer)
            return True
        if cop == "Relu" and op == "Mul" and np.all(c >= 0):  # relu(a x) = a relu(x) for a >= 0
            _swap(model, node, consumer)
            return True
        if cop in RESHAPING:
            if op == "Mul" and np.unique(c).size > 1 and _flattens_into_linear(model, consumer):
                return False  # a per-channel scale no linear layer takes is made integer on its channel axis
            if c.size != 1:
                in_shape = model.get_tensor_shape(node.output[0])
                full = np.broadcast_to(c, in_shape)
                _set_const(model, node, self._reshape_like(model, consumer, full))
            _swap(model, node, consumer)
            return True
        return False

    @staticmethod
    def _sign_stays_before_pool(model, node, pool, c, axis) -> bool:
        """max(a x) is not a max(x) where some a < 0 (a batch-norm's negative gamma after an activation,
        before a pool). On an integer x the sign becomes an integer +-1 Mul in front of the pool (a
        ChannelwiseOp in hardware) and |a| moves past the pool."""
        index = _affine(model, node)[0]
        x = node.input[index]
        dtype = model.get_tensor_datatype(x)
        if dtype is None or not dtype.is_integer() or np.all(np.abs(c) == 1):
            return False  # a float input, or the +-1 multiply this rewrite leaves
        per_channel = broadcast_channelwise(c, tuple(model.get_tensor_shape(x)), axis)
        _insert_sign(model, node, np.where(per_channel < 0, -1.0, 1.0), axis, index)
        _set_const(model, node, np.abs(c))
        _swap(model, node, pool)
        return True

    @staticmethod
    def _reshape_like(model, node, value):
        if node.op_type == "Transpose":
            perm = getCustomOp(node).get_nodeattr("perm") if node.domain else [a.ints for a in node.attribute][0]
            return np.transpose(value, perm)
        return value.reshape(model.get_tensor_shape(node.output[0]))

    @staticmethod
    def _past_linear(model, node, linear, c) -> bool:
        weights = model.get_initializer(linear.input[1])
        if node.op_type == "Mul":
            if np.unique(c).size != 1:
                return False  # a per-input-channel scale would make the weights non-integer
            _swap(model, node, linear)
            _set_const(model, node, np.asarray(c).reshape(-1)[:1])  # equal per-channel values: a scalar
            return True
        # Add: linear(x + b) = linear(x) + linear(b)
        if linear.op_type == "MatMul":
            in_shape = model.get_tensor_shape(node.output[0])
            b = np.broadcast_to(c, in_shape).reshape(-1, in_shape[-1])
            if not np.all(b == b[:1]):
                return False
            bias = (b[:1].astype(np.float64) @ weights.astype(np.float64)).astype(np.float32)
        else:
            pads = [a.ints for a in linear.attribute if a.name == "pads"]
            groups = [a.i for a in linear.attribute if a.name == "group"]
            shape = model.get_tensor_shape(node.output[0])
            if (pads and any(pads[0])) or (groups and groups[0] != 1) or not _is_channelwise(c, shape, 1):
                return False
            b = np.broadcast_to(c, shape)[0, :, 0, 0].astype(np.float64)
            bias = np.einsum("oikl,i->o", weights.astype(np.float64), b).astype(np.float32).reshape(1, -1, 1, 1)
        out = linear.output[0]
        model.set_initializer(node.input[1 - _affine(model, node)[0]], bias)
        remove_node(model, node)
        # re-insert the Add after the linear op
        _reinsert_after(model, linear, node, out)
        return True


def _flattens_into_linear(model, reshape) -> bool:
    """Whether ``reshape`` feeds a linear layer through reshapes only."""
    reader = reshape
    while reader is not None and reader.op_type in RESHAPING:
        reader = single_consumer(model, reader.output[0])
    return reader is not None and reader.op_type in LINEAR


def _reinsert_after(model, producer, node, out):
    mid = fresh_name(model, f"{node.name}_in")
    model.set_tensor_shape(mid, model.get_tensor_shape(out))
    producer.output[0] = mid
    dyn = _affine(model, node)[0]
    node.input[dyn] = mid
    node.output[0] = out
    model.graph.node.insert(list(model.graph.node).index(producer) + 1, node)


def is_join(model, node) -> bool:
    """An Add of two computed tensors: where a residual block's branches meet."""
    return node.op_type == "Add" and len([i for i in node.input if i and model.get_initializer(i) is None]) == 2


def _integer_multiply(model, node) -> bool:
    """A Mul by integers that streamlining put on a branch to line it up with the other (it stays)."""
    aff = _affine(model, node)
    dtype = model.get_tensor_datatype(node.input[1 - aff[0]]) if aff else None
    return node.op_type == "Mul" and dtype is not None and dtype.is_integer()


def branch_scale(model, tensor):
    """(scale, integer tensor it scales, the Mul applying it or None) of a join's input, when the input is
    an integer tensor times a constant (scale 1: no Mul); None when it is anything else (yet)."""
    producer = model.find_producer(tensor)
    aff = _affine(model, producer) if producer is not None else None
    if aff is not None and producer.op_type == "Mul" and not _integer_multiply(model, producer):
        source = producer.input[aff[0]]
        dtype = model.get_tensor_datatype(source)
        if dtype is not None and dtype.is_integer() and single_consumer(model, tensor) is not None:
            return aff[1], source, producer
        return None
    dtype = model.get_tensor_datatype(tensor)
    return (np.ones(1), tensor, None) if dtype is not None and dtype.is_integer() else None


def aligned_scales(a, b, shape, axis):
    """(s, m_a, m_b) with a = s m_a and b = s m_b per channel, s > 0 and m_a, m_b integers, or None.

    s is the smaller magnitude of the two per channel, so one of m_a, m_b is +-1 there."""
    va, vb = (broadcast_channelwise(v, tuple(shape), axis) for v in (a, b))
    if va is None or vb is None or np.any(va == 0) or np.any(vb == 0):
        return None
    s = np.minimum(np.abs(va), np.abs(vb))
    ma, mb = va / s, vb / s
    if np.any(ma != np.rint(ma)) or np.any(mb != np.rint(mb)):
        return None
    return s, np.rint(ma), np.rint(mb)


def _channel_vector(model, tensor, vector):
    """A per-channel vector shaped to broadcast over ``tensor`` (a scalar when all entries are equal)."""
    if np.all(vector == vector[0]):
        return np.asarray(vector[:1], dtype=np.float32)
    rank = len(model.get_tensor_shape(tensor))
    axis = _channel_axis(model, tensor)
    return vector.astype(np.float32).reshape([-1 if i == axis else 1 for i in range(rank)])


def _past_join(model, node, join) -> bool:
    """Move a branch's bias or scale through the residual add ``join``.

    (x + b) + y = (x + y) + b.  For scales, a x + c y = s (m_a x + m_c y) with integers m_a, m_c
    (``aligned_scales``): each branch keeps an integer multiply where its m is not 1 (a ChannelwiseOp in
    hardware), the add sums integers, and s moves on downstream.  Scales whose ratio is not an integer
    stay; to_hw then refuses the add, naming both."""
    if node.op_type == "Add":
        x = node.input[_affine(model, node)[0]]
        bias = _affine(model, node)[1]
        join.input[list(join.input).index(node.output[0])] = x
        model.graph.node.remove(node)
        insert_after(model, join, "Add", bias)
        return True
    if _integer_multiply(model, node):
        return False
    sides = [branch_scale(model, t) for t in join.input]
    if any(side is None for side in sides):
        return False
    shape = model.get_tensor_shape(join.output[0])
    aligned = aligned_scales(sides[0][0], sides[1][0], shape, _channel_axis(model, join.output[0]))
    if aligned is None:
        return False
    s, *multipliers = aligned
    for port, ((_, source, mul), m) in enumerate(zip(sides, multipliers)):
        if mul is not None:
            model.graph.node.remove(mul)
        join.input[port] = source
        if np.any(m != 1):
            new = insert_before(model, join, "Mul", _channel_vector(model, source, m), index=port)
            model.set_tensor_datatype(new.input[1], DataType.get_smallest_possible(-np.abs(m).max() - 1))  # holds +-max
    insert_after(model, join, "Mul", _channel_vector(model, join.output[0], s))
    return True


def is_channel_concat(model, node) -> bool:
    """A Concat of two computed tensors along the channel axis (NCHW, or (N, C))."""
    if node.op_type != "Concat" or len([i for i in node.input if i and model.get_initializer(i) is None]) != 2 \
            or len(node.input) != 2:
        return False
    axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
    rank = len(model.get_tensor_shape(node.output[0]))
    return axis % rank == 1


def _past_concat(model, node, concat) -> bool:
    """Move a branch's bias or scale past a channel concat as one per-channel constant of the result:
    concat(a x + b, c y) = [a, c] concat(x, y) + [b, 0] (each branch keeps its own scale, per channel)."""
    out_shape = model.get_tensor_shape(concat.output[0])
    channel_counts = [model.get_tensor_shape(t)[1] for t in concat.input]
    if node.op_type == "Add":
        port = list(concat.input).index(node.output[0])
        bias = broadcast_channelwise(_affine(model, node)[1], tuple(model.get_tensor_shape(node.output[0])), 1)
        if bias is None:
            return False
        parts = [bias if k == port else np.zeros(n) for k, n in enumerate(channel_counts)]
        concat.input[port] = node.input[_affine(model, node)[0]]
        model.graph.node.remove(node)
        insert_after(model, concat, "Add", _channel_vector(model, concat.output[0], np.concatenate(parts)))
        return True
    sides = [branch_scale(model, t) for t in concat.input]
    if any(side is None for side in sides):
        return False
    parts = [broadcast_channelwise(scale, (1, n, *out_shape[2:]), 1) for (scale, _, _), n in zip(sides, channel_counts)]
    if any(part is None for part in parts):
        return False
    for port, (_, source, mul) in enumerate(sides):
        if mul is not None:
            model.graph.node.remove(mul)
        concat.input[port] = source
    insert_after(model, concat, "Mul", _channel_vector(model, concat.output[0], np.concatenate(parts)))
    return True


class SplitForkedAffine(Transformation):
    """A Mul/Add by a constant read by several nodes (a fork, e.g. a residual skip) becomes one copy per
    reader, so that each branch moves its own copy downstream."""

    def apply(self, model):
        head = head_nodes(model)
        for node in list(model.graph.node):
            aff = _affine(model, node) if node.name not in head else None
            readers = (model.find_consumers(node.output[0]) or []) if aff is not None else []
            if len(readers) < 2 or any(o.name == node.output[0] for o in model.graph.output):
                continue
            for reader in readers[1:]:
                out = fresh_name(model, f"{node.output[0]}_branch")
                model.set_tensor_shape(out, model.get_tensor_shape(node.output[0]))
                const = add_const(model, aff[1], f"{node.name}_branch_param")
                inputs = [node.input[aff[0]], const] if aff[0] == 0 else [const, node.input[aff[0]]]
                copy = helper.make_node(node.op_type, inputs, [out], name=fresh_name(model, node.op_type))
                model.graph.node.insert(list(model.graph.node).index(node) + 1, copy)
                reader.input[list(reader.input).index(node.output[0])] = out
            return model, True
        return model, False


class MakeScalesNonNegative(Transformation):
    """Mul(a) right after MatMul/Conv with some a < 0: negate those output channels' weights."""

    def apply(self, model):
        changed = False
        for node in model.graph.node:
            aff = _affine(model, node)
            if aff is None or node.op_type != "Mul" or not np.any(aff[1] < 0):
                continue
            linear = model.find_producer(node.input[aff[0]])
            if linear is None or linear.op_type not in LINEAR or single_consumer(model, linear.output[0]) is None:
                continue
            weights = model.get_initializer(linear.input[1])
            if weights is None:
                continue
            out_shape = model.get_tensor_shape(linear.output[0])
            axis = len(out_shape) - 1 if linear.op_type == "MatMul" else 1
            a = aff[1]
            if not _is_channelwise(a, out_shape, axis):
                continue
            per_channel = np.moveaxis(np.broadcast_to(a, out_shape), axis, -1).reshape(-1, out_shape[axis])[0]
            flip = np.where(per_channel < 0, -1.0, 1.0).astype(np.float32)
            if linear.op_type == "MatMul":
                model.set_initializer(linear.input[1], weights * flip[None, :])
                new_a = (per_channel * flip).reshape([1] * (len(out_shape) - 1) + [-1])
            else:
                model.set_initializer(linear.input[1], weights * flip[:, None, None, None])
                new_a = (per_channel * flip).reshape(1, -1, *([1] * (len(out_shape) - 2)))
            _set_const(model, node, new_a)
            changed = True
        return model, changed


class AbsorbAffineIntoThresholds(Transformation):
    """[Mul(a)] -> [Add(b)] -> MultiThreshold(T)  ==>  MultiThreshold((T - b) / a), a > 0."""

    def apply(self, model):
        changed = False
        for mt in list(model.graph.node):
            if mt.op_type != "MultiThreshold":
                continue
            a_node, b_node = None, model.find_producer(mt.input[0])
            if b_node is None or _affine(model, b_node) is None or single_consumer(model, b_node.output[0]) is None:
                continue
            if b_node.op_type == "Mul":
                a_node, b_node = b_node, None
            else:
                prev = model.find_producer(b_node.input[_affine(model, b_node)[0]])
                if prev is not None and prev.op_type == "Mul" and _affine(model, prev) and single_consumer(model, prev.output[0]):
                    a_node = prev
            if self._absorb(model, mt, a_node, b_node):
                changed = True
        return model, changed

    @staticmethod
    def _absorb(model, mt, a_node, b_node) -> bool:
        inst = getCustomOp(mt)
        shape = model.get_tensor_shape(mt.input[0])
        axis = _channel_axis(model, mt.input[0], inst.get_nodeattr("data_layout"))
        channels = shape[axis]
        a = _affine(model, a_node)[1] if a_node is not None else np.ones(1)
        b = _affine(model, b_node)[1] if b_node is not None else np.zeros(1)
        if not (_is_channelwise(a, shape, axis) and _is_channelwise(b, shape, axis)):
            return False
        a = np.moveaxis(np.broadcast_to(a, shape), axis, -1).reshape(-1, channels)[0].astype(np.float64)
        b = np.moveaxis(np.broadcast_to(b, shape), axis, -1).reshape(-1, channels)[0].astype(np.float64)
        first = a_node if a_node is not None else b_node
        source = first.input[_affine(model, first)[0]]
        dtype = model.get_tensor_datatype(source)
        integer = dtype is not None and dtype.is_integer()
        sign = np.where(a < 0, -1.0, 1.0)
        if np.any(a < 0):
            # a x + b >= T  <=>  sign(a) x >= (T - b) / |a|: an integer +-1 multiply (a ChannelwiseOp in
            # hardware) stays, |a| is absorbed. Where a Mul follows a linear layer, MakeScalesNonNegative
            # flips its weights instead; a float input keeps its scale.
            if not integer or (np.all(np.abs(a) == 1) and np.all(b == 0) and b_node is None):
                return False  # a float input, or the +-1 multiply this rewrite leaves
            a = np.abs(a)
        thresholds = model.get_initializer(mt.input[1]).astype(np.float64)
        thresholds = np.broadcast_to(thresholds, (channels, thresholds.shape[1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            new = (thresholds - b[:, None]) / a[:, None]
        constant = np.where(b[:, None] >= thresholds, ALWAYS, NEVER)  # a == 0: the output is fixed
        new = np.where(a[:, None] == 0, constant, new)
        if integer:
            new = np.ceil(new)
        else:  # x >= t for float32 x  <=>  x >= the smallest float32 not below t
            new32 = new.astype(np.float32)
            new = np.where(new32.astype(np.float64) < new, np.nextafter(new32, np.float32(np.inf)), new32)
        model.set_initializer(mt.input[1], np.clip(new, ALWAYS, NEVER).astype(np.float32))
        mt.input[0] = source
        for node in (a_node, b_node):
            if node is not None:
                model.graph.node.remove(node)
        if np.any(sign < 0):
            _insert_sign(model, mt, sign, axis)
        return True


def _insert_sign(model, node, sign, axis, index=0):
    """``node`` (a MultiThreshold, or a Mul reading ``x`` on input ``index``) reads ``sign * x`` (per channel
    on ``axis``) instead of ``x``: an integer Mul that to_hw makes a ChannelwiseOp."""
    x = node.input[index]
    shape = model.get_tensor_shape(x)
    const = fresh_name(model, f"{node.name}_sign")
    model.set_initializer(const, sign.reshape([-1 if i == axis else 1 for i in range(len(shape))]).astype(np.float32))
    model.set_tensor_datatype(const, DataType["INT2"])
    signed = fresh_name(model, f"{node.name}_signed")
    model.set_tensor_shape(signed, shape)
    model.set_tensor_datatype(signed, model.get_tensor_datatype(x))
    position = list(model.graph.node).index(node)
    model.graph.node.insert(position, helper.make_node("Mul", [x, const], [signed], name=fresh_name(model, "Mul")))
    node.input[index] = signed


def _integer_type(model, x):
    """The integer DataType of ``x``, or None.  A global sum (ReduceSum) of integers, which InferDataTypes
    leaves FLOAT32, gets the range of its sums."""
    dtype = model.get_tensor_datatype(x)
    if dtype is not None and dtype.is_integer():
        return dtype
    producer = model.find_producer(x)
    if producer is None or producer.op_type != "ReduceSum":
        return None
    terms = model.get_tensor_datatype(producer.input[0])
    if terms is None or not terms.is_integer():
        return None
    n = int(np.prod(model.get_tensor_shape(producer.input[0])) // np.prod(model.get_tensor_shape(x)))
    return smallest_int_type(n * terms.min(), n * terms.max())


class IntegerChannelAffine(Transformation):
    """[Mul(a)] -> [Add(b)] on an integer x, per channel, before a linear layer (or a flatten into it), where nothing absorbed
    it (per-channel power-of-two activation scales, say): with a = m 2^-e and b = d 2^-e for integers m, d
    (the smallest such e), it becomes the integer m x + d (a ChannelwiseOp in hardware) and a scalar
    2^-e after the linear layer, which moves on into the next thresholds. Exact: only dyadic a and b
    have that form, and only values of at most ``LIMIT`` in magnitude are taken (beyond that, float32
    tensors and thresholds stop holding every integer). Any other per-channel scale there (a float
    batch-norm after an activation, float per-channel scales) has no exact integer form and stays, for
    to_hw to refuse by name."""

    LIMIT = 2**15

    def apply(self, model):
        head = head_nodes(model)
        changed = False
        for linear in list(model.graph.node):
            if linear.op_type not in LINEAR or linear.name in head or model.get_initializer(linear.input[1]) is None:
                continue
            changed |= self._rewrite(model, linear)
        return model, changed

    def _rewrite(self, model, linear) -> bool:
        tensor = linear.input[0]
        reshape = model.find_producer(tensor)
        while reshape is not None and reshape.op_type in RESHAPING and single_consumer(model, tensor) is not None:
            tensor = reshape.input[0]  # a per-channel scale stays in front of the flatten
            reshape = model.find_producer(tensor)
        a_node, b_node = None, model.find_producer(tensor)
        if b_node is None or _affine(model, b_node) is None or single_consumer(model, b_node.output[0]) is None:
            return False
        if b_node.op_type == "Mul":
            a_node, b_node = b_node, None
        else:
            prev = model.find_producer(b_node.input[_affine(model, b_node)[0]])
            if prev is not None and _affine(model, prev) and prev.op_type == "Mul" and single_consumer(model, prev.output[0]):
                a_node = prev
        first = a_node if a_node is not None else b_node
        index = _affine(model, first)[0]
        x = first.input[index]
        dtype, shape = _integer_type(model, x), tuple(model.get_tensor_shape(x))
        if dtype is None:
            return False
        axis = _channel_axis(model, x)
        a = broadcast_channelwise(_affine(model, a_node)[1], shape, axis) if a_node is not None else np.ones(shape[axis])
        b = broadcast_channelwise(_affine(model, b_node)[1], shape, axis) if b_node is not None else np.zeros(shape[axis])
        if a is None or b is None:
            return False
        e = _dyadic_exponent(np.concatenate([a, b]))
        if e is None or e == 0:
            return False  # not dyadic, or already integers
        m, d = a * 2.0**e, b * 2.0**e
        ends = np.stack([m * float(dtype.min()) + d, m * float(dtype.max()) + d])
        if np.abs(ends).max() > self.LIMIT:
            return False
        if a_node is None:
            a_node = model.find_producer(insert_before(model, b_node, "Mul", np.ones(1, np.float32), index).output[0])
        per_channel = [-1 if i == axis else 1 for i in range(len(shape))]
        for node, value in ((a_node, m), (b_node, d)):
            if node is not None:
                _set_const(model, node, value.reshape(per_channel))
                const = node.input[1 - _affine(model, node)[0]]
                model.set_tensor_datatype(const, DataType["INT32"])
        insert_after(model, linear, "Mul", np.float32(2.0**-e))
        return True


def _dyadic_exponent(values: np.ndarray, widest: int = 40) -> int | None:
    """The smallest e (|e| <= ``widest``) with every value times 2^e an integer, or None."""
    for e in range(-widest, widest + 1):
        scaled = np.asarray(values, dtype=np.float64) * 2.0**e
        if np.all(scaled == np.round(scaled)):
            return e
    return None


class RemoveReluBeforeThresholds(Transformation):
    """Relu -> MultiThreshold(T)  ==>  MultiThreshold(T') with T' = T where T > 0, else "always".

    relu(x) >= t equals x >= t for t > 0, and is always true for t <= 0.
    """

    def apply(self, model):
        changed = False
        for mt in list(model.graph.node):
            if mt.op_type != "MultiThreshold":
                continue
            relu = model.find_producer(mt.input[0])
            if relu is None or relu.op_type != "Relu" or single_consumer(model, relu.output[0]) is None:
                continue
            thresholds = model.get_initializer(mt.input[1])
            model.set_initializer(mt.input[1], np.where(thresholds > 0, thresholds, ALWAYS).astype(np.float32))
            mt.input[0] = relu.input[0]
            model.graph.node.remove(relu)
            changed = True
        return model, changed


def streamline(model: ModelWrapper, probes: np.ndarray | None = None, notes: list[str] | None = None) -> ModelWrapper:
    """The whole streamlining recipe: integer weights, thresholds, scales absorbed.

    ``probes`` (batch-first model inputs) are used to match thresholds to the input
    model's float32 arithmetic; by default two seeded inputs in [0, 1). What could not be
    matched is said in ``notes`` when a list is given.
    """
    import copy

    from qnnflow.transforms.quantizers import FoldWeightQuantizers, QuantToMultiThreshold, SplitActivationScales
    from qnnflow.transforms.refine_thresholds import MatchReferenceThresholds
    from qnnflow.transforms.tidy import tidy

    reference = copy.deepcopy(model)
    if probes is None:
        shape = model.get_tensor_shape(model.graph.input[0].name)
        probes = np.random.default_rng(0).uniform(0, 1, size=(2, *shape[1:])).astype(np.float32)
    for transform in (
        *(canonical() for canonical in CANONICAL),
        FoldWeightQuantizers(),
        TruncToQuant(),
        SplitActivationScales(),
        QuantToMultiThreshold(),
        BatchNormToAffine(),
        GlobalAveragePoolToSum(),
        ConvertSubDivToAddMul(),
        InferShapes(),
        InferDataTypes(),
    ):
        model = model.transform(transform)
    rewrites = (SplitForkedAffine(), MoveAffineDownstream(), MakeScalesNonNegative(), AbsorbAffineIntoThresholds(),
                RemoveReluBeforeThresholds(), IntegerChannelAffine(), AveragePoolToWindowSum())
    changed = True
    while changed:
        changed = False
        for rewrite in rewrites:
            did = True
            while did:  # each rewrite to its own fixed point before the next
                model, did = rewrite.apply(model)
                changed |= did
            # Absorption rounds thresholds up only where it knows the input is integer.
            model = model.transform(InferDataTypes())
    # Refinement changes threshold values only, so it runs on the tidied graph: its notes
    # then name the nodes as the saved model does.
    refine = MatchReferenceThresholds(reference, probes)
    model = tidy(model).transform(refine)
    if notes is not None:
        notes.extend(refine.notes)
    return model

