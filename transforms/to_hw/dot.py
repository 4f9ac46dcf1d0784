"""MatMul (+ MultiThreshold) -> MVAU, or VVAU after a depthwise window; XNOR-popcount for bits times
bipolar weights; the refusals for float scales that streamlining could not absorb."""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.partition import LAYOUT_OPS, STREAM_TRANSPARENT
from qnnflow.transforms.graph import add_const, const_operand, fresh_name, single_consumer, smallest_int_type
from qnnflow.transforms.to_hw.common import HW_DOMAIN, LINEAR, node_attr, replace_node, tensor_dtype


def _float_culprit(model, tensor):
    """Why ``tensor`` (a linear layer's input) is float: (the node making floats of integer inputs,
    the unsupported node upstream of it that kept streamlining from absorbing it, or None)."""
    path, producer = [], model.find_producer(tensor)
    while producer is not None:
        inputs = [t for t in producer.input if t and model.get_initializer(t) is None]
        if any(tensor_dtype(model, t).is_integer() for t in inputs):
            # Im2Col is lowering's own (the convolution's window), not a layer the user wrote
            blocker = next((n for n in path if n.op_type not in ("Mul", "Add", "Im2Col", *LAYOUT_OPS)), None)
            return producer, blocker if producer.op_type in ("Mul", "Add") else None
        if not inputs:
            break
        path.append(producer)
        producer = model.find_producer(inputs[0])
    return None, None


def _per_channel(model, node) -> bool:
    """Whether Mul/Add ``node``'s constant differs between channels."""
    operand = const_operand(model, node)
    return operand is not None and np.unique(operand[1]).size > 1


def _linear_follows(model, tensor) -> bool:
    """Whether a linear layer with constant weights (a future MVAU) reads ``tensor``, directly or not."""
    stack, seen = [tensor], set()
    while stack:
        for node in model.find_consumers(stack.pop()) or []:
            if node.op_type in LINEAR and model.get_initializer(node.input[1]) is not None:
                return True
            if node.name not in seen:
                seen.add(node.name)
                stack.extend(node.output)
    return False


def _acc_range(x_dtype: DataType, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel, the smallest and largest accumulator value reachable."""
    lo, hi = float(x_dtype.min()), float(x_dtype.max())
    w = weights.astype(np.float64)
    return np.minimum(w * lo, w * hi).sum(axis=0), np.maximum(w * lo, w * hi).sum(axis=0)


def _depthwise_window(model, tensor) -> bool:
    """Whether ``tensor`` is the output of a depthwise Im2Col (lowering's form of a depthwise Conv)."""
    producer = model.find_producer(tensor)
    return producer is not None and producer.op_type == "Im2Col" and node_attr(producer, "depthwise", 0) == 1


def _vvau_weights(matmul, weights: np.ndarray, channels: int) -> np.ndarray:
    """The (C, K) weights of a depthwise layer from its lowered dense (K*C, C) MatMul weights."""
    k = weights.shape[0] // channels
    dense = weights.reshape(k, channels, channels)
    own = dense[:, np.arange(channels), np.arange(channels)]  # (K, C)
    if np.count_nonzero(dense) != np.count_nonzero(own):
        raise QnnflowError(f"node '{matmul.name}' (MatMul): reads a depthwise window but mixes channels; "
                           f"only depthwise weights (column c reading channel c) can become a VVAU")
    return np.ascontiguousarray(own.T)


def convert_matmul(model, matmul):
    x, w_name = matmul.input
    weights = model.get_initializer(w_name)
    w_dtype = tensor_dtype(model, w_name)
    x_dtype = tensor_dtype(model, x)
    maker, blocker = (None, None) if x_dtype.is_integer() else _float_culprit(model, x)
    if maker is not None and blocker is None and _trailing_after_linear(model, matmul, maker):
        return  # the last of two linear layers with an unabsorbable float scale between: host tail
    fix = "remove it, or use a layer qnnflow converts (padding belongs in the convolution, pooling in a max-pool)"
    if blocker is not None:
        raise QnnflowError(
            f"node '{blocker.name}' ({blocker.op_type}) sits between layers: qnnflow has no dataflow node for "
            f"{blocker.op_type}, and it keeps the scale '{maker.name}' from being absorbed before "
            f"'{matmul.name}'; {fix}")
    if maker is not None and maker.op_type in ("Mul", "Add") and _per_channel(model, maker):
        source = model.find_producer(next(t for t in maker.input if model.get_initializer(t) is None))
        while source is not None and source.op_type in LAYOUT_OPS:  # lowering's, not the user's
            source = model.find_producer(source.input[0])
        after = f"'{source.name}' ({source.op_type})" if source is not None else "the input"
        raise QnnflowError(
            f"node '{maker.name}' ({maker.op_type}): a float {'scale' if maker.op_type == 'Mul' else 'bias'} in front "
            f"of '{matmul.name}' could not be absorbed into thresholds: it differs per channel after {after} (a "
            f"batch-norm after an activation or after the input quantizer, or per-channel activation scales that "
            f"are not powers of two) and has no exact integer form; put a "
            f"quantizer (QuantIdentity) after the batch-norm, move the batch-norm before the activation (or the "
            f"input quantizer), or use power-of-two scales")
    if maker is not None and maker.op_type in ("Mul", "Add"):
        raise QnnflowError(
            f"node '{maker.name}' ({maker.op_type}): a float {'scale' if maker.op_type == 'Mul' else 'bias'} "
            f"in front of '{matmul.name}' could not be absorbed into thresholds (streamlining moves only a "
            f"scalar scale past a linear layer); quantize the activation right before that layer")
    if maker is not None:
        raise QnnflowError(
            f"node '{maker.name}' ({maker.op_type}) turns the integer activations feeding '{matmul.name}' "
            f"into floats: qnnflow has no dataflow node for {maker.op_type}; {fix}")
    if not (w_dtype.is_integer() and x_dtype.is_integer()):
        raise QnnflowError(
            f"node '{matmul.name}' (MatMul): inputs are {x_dtype.name} x {w_dtype.name}; "
            "hardware needs integer activations and weights (streamline first)"
        )
    mw, mh = weights.shape
    in_shape = model.get_tensor_shape(x)
    depthwise = _depthwise_window(model, x)
    # Bits standing for +-1 (see EncodeBipolarActivations) times bipolar weights: XNOR-popcount.
    xnor = x_dtype == DataType["BINARY"] and w_dtype == DataType["BIPOLAR"] and not depthwise
    mt = single_consumer(model, matmul.output[0])
    if mt is not None and mt.op_type != "MultiThreshold":
        mt = None
    attrs = dict(
        MW=mw, MH=mh, SIMD=1, PE=1, inputDataType=x_dtype.name, weightDataType=w_dtype.name,
        binaryXnorMode=int(xnor), numInputVectors=list(in_shape[:-1]),
    )
    kind = "VVAU" if depthwise else "MVAU"
    if depthwise:
        acc_lo, acc_hi = _acc_range(x_dtype, weights)
        weights = _vvau_weights(matmul, weights, mh)
        attrs = dict(Channels=mh, KernelPositions=mw // mh, Dim=list(in_shape[1:3]), SIMD=1, PE=1,
                     inputDataType=x_dtype.name, weightDataType=w_dtype.name)
    elif xnor:
        weights = (weights + 1) / 2  # bit 1 is +1, bit 0 is -1
        attrs.update(inputDataType="BINARY", weightDataType="BINARY")
        acc_lo, acc_hi = np.zeros(mh), np.full(mh, float(mw))
    else:
        acc_lo, acc_hi = _acc_range(x_dtype, weights)
    w_new = fresh_name(model, f"{matmul.name}_weights")
    model.set_initializer(w_new, weights.astype(np.float32))
    model.set_tensor_datatype(w_new, DataType[attrs["weightDataType"]])
    if mt is None:
        acc_dtype = smallest_int_type(acc_lo.min(), acc_hi.max())
        attrs.update(noActivation=1, outputDataType=acc_dtype.name, accDataType=acc_dtype.name)
        node = helper.make_node(kind, [x, w_new], [matmul.output[0]], domain=HW_DOMAIN, name=matmul.name, **attrs)
        reader = single_consumer(model, matmul.output[0])
        node = replace_node(model, [matmul], node)
        if not xnor or (reader is not None and reader.op_type == "TopK"):
            return  # a TopK ranks popcounts and bipolar dot products alike
        activation = _monotone_reader(model, node.output[0], "MultiThreshold")
        if activation is not None:  # pools and reshapes commute with d = 2 * pc - MW: threshold pc
            t = model.get_initializer(activation.input[1]).astype(np.float64)
            model.set_initializer(activation.input[1], np.ceil((t + mw) / 2).astype(np.float32))
        else:  # popcount -> bipolar dot product on the host, for the float tail
            _tail_correction(model, node, mw)
        return
    inst = getCustomOp(mt)
    thresholds = model.get_initializer(mt.input[1]).astype(np.float64)
    thresholds = np.broadcast_to(thresholds, (mh, thresholds.shape[1]))
    # acc >= t  <=>  acc >= ceil(t) for integer accumulators
    thresholds = np.ceil((thresholds + mw) / 2) if xnor else np.ceil(thresholds)
    thresholds = np.clip(thresholds, acc_lo[:, None], acc_hi[:, None] + 1)
    t_new = fresh_name(model, f"{matmul.name}_thresholds")
    model.set_initializer(t_new, thresholds.astype(np.float32))
    model.set_tensor_datatype(t_new, smallest_int_type(thresholds.min(), thresholds.max()))
    acc_dtype = smallest_int_type(min(acc_lo.min(), thresholds.min()), max(acc_hi.max(), thresholds.max()))
    attrs.update(
        noActivation=0, ActVal=int(inst.get_nodeattr("out_bias")), outputDataType=inst.get_nodeattr("out_dtype"),
        accDataType=acc_dtype.name,
    )
    node = helper.make_node(kind, [x, w_new, t_new], [mt.output[0]], domain=HW_DOMAIN, name=matmul.name, **attrs)
    replace_node(model, [matmul, mt], node)


def _trailing_after_linear(model, matmul, maker) -> bool:
    """``matmul`` is the last linear layer and reads, through float Mul/Add only (``maker`` first), the
    accumulators or activations of another layer (two linear layers with no activation between them,
    or a batch-norm after the last activation)."""
    if maker.op_type not in ("Mul", "Add") or _linear_follows(model, matmul.output[0]):
        return False
    source = [t for t in maker.input if t and model.get_initializer(t) is None]
    producer = model.find_producer(source[0]) if source else None
    while producer is not None and producer.op_type in LAYOUT_OPS:
        producer = model.find_producer(producer.input[0])
    return producer is not None and producer.op_type in ("MVAU", "MultiThreshold") and tensor_dtype(model, source[0]).is_integer()


def _monotone_reader(model, tensor, op_type):
    """The ``op_type`` node reading ``tensor`` through a chain of max-pools and reshapes (each the
    only reader of its input), or None. Those commute with any increasing map of the values."""
    reader = single_consumer(model, tensor)
    while reader is not None and reader.op_type in ("MaxPoolNHWC", *STREAM_TRANSPARENT):
        reader = single_consumer(model, reader.output[0])
    return reader if reader is not None and reader.op_type == op_type else None


def _tail_correction(model, node, mw):
    out = node.output[0]
    pc = fresh_name(model, f"{node.name}_popcount")
    mid = fresh_name(model, f"{node.name}_bipolar")
    model.set_tensor_shape(pc, model.get_tensor_shape(out))
    model.set_tensor_shape(mid, model.get_tensor_shape(out))
    node.output[0] = pc
    two = add_const(model, 2.0, f"{node.name}_two")
    minus_mw = add_const(model, -float(mw), f"{node.name}_minus_mw")
    index = list(model.graph.node).index(node) + 1
    model.graph.node.insert(index, helper.make_node("Add", [mid, minus_mw], [out], name=f"{node.name}_unpopcount_add"))
    model.graph.node.insert(index, helper.make_node("Mul", [pc, two], [mid], name=f"{node.name}_unpopcount_mul"))
