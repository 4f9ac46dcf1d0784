"""Conversion of the lowered NHWC graph to hardware dataflow nodes (``qnnflow.hls.nodes``).

- MatMul (integer weights) + MultiThreshold -> MVAU with thresholds; a MatMul alone -> MVAU
  without activation; Im2Col -> [FMPadding] + ConvolutionInputGenerator (ConvolutionInputGenerator1D
  for a height-1 image and kernel); a depthwise convolution (a MatMul reading a ``depthwise=1``
  Im2Col) -> the sliding window in depthwise mode + VVAU, with thresholds as the MVAU's; MaxPoolNHWC ->
  StreamingMaxPool; a MultiThreshold alone -> Thresholding; TopK -> LabelSelect; an integer
  per-channel Mul in front of a MultiThreshold (a factored-out sign) -> ChannelwiseOp; ReduceSum
  over H, W (a global average pool's sum) -> GlobalAccPool; an average pool's window sum
  (QuantAvgPool2d without truncation) -> SumPool; a nearest upsample (Resize by integer factors) ->
  UpsampleNearestNeighbour.
- Binary activations: a bipolar (+-1) tensor whose readers (through pools, unpadded
  convolutions and flattens) are all MatMul/Conv with bipolar weights travels as bits
  (0/1) and those MatMuls become XNOR-popcount MVAUs, with thresholds moved to popcount
  units, T_pc = ceil((T + MW) / 2). Otherwise it travels as a 2-bit integer -1/+1
  (two equal thresholds from -1), so zero padding stays exact. An XNOR MVAU without its own
  activation whose popcounts reach a MultiThreshold through max-pools (XNOR conv, pool, sign)
  streams popcounts, and that MultiThreshold compares popcounts (max-pool commutes with
  2 * pc - MW); any other one gets 2 * pc - MW on the host, for the float tail.
- Thresholds are clipped to the accumulator's reachable range, so their datatype is tight.
- The last linear layer, when a per-channel float scale in front of it cannot be absorbed (two
  linear layers with no activation between them, a batch-norm after the last activation), stays
  a float MatMul in the tail on the host; the to_hw step's notes list the tail.
- No Flatten/Reshape stays between two dataflow nodes: a stream is its tensor's elements in
  row-major order, which a reshape keeps, so the MVAU after it reads the producer's stream
  directly (lowering already put the classifier's weight rows in (h, w, c) order); see
  RemoveStreamReshapes.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from qnnflow.base.errors import QnnflowError
from qnnflow.transforms.graph import (
    add_const,
    broadcast_channelwise,
    const_operand,
    fresh_name,
    head_nodes,
    single_consumer,
    smallest_int_type,
)
from qnnflow.transforms.lower import LowerToNHWC
from qnnflow.transforms.prune import RemoveDeadInputChannels
from qnnflow.hls.nodes.base import DOMAIN as HW_DOMAIN
from qnnflow.hls.partition import LAYOUT_OPS, STREAM_TRANSPARENT, find_partition
from qnnflow.transforms.streamline import (
    MoveAffineDownstream,
    aligned_scales,
    branch_scale,
    is_channel_concat,
    is_join,
)
from qnnflow.transforms.deconv import pixel_pad_strides
from qnnflow.transforms.upsample import nearest_factors

PASS_THROUGH = ("MaxPool", "MaxPoolNHWC", "Im2Col", *STREAM_TRANSPARENT)
LINEAR = ("MatMul", "Conv")
# Dataflow nodes whose input may be any tensor with the right number of elements per image
# (they group the stream by their attributes; see hls/nodes/mvau.py).
STREAM_READERS = ("MVAU",)
# What may read a ChannelwiseOp: the nodes that become dataflow nodes.
CHANNELWISE_READERS = ("MultiThreshold", "MaxPoolNHWC", "Im2Col", "MatMul")


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _dtype(model, tensor) -> DataType:
    dtype = model.get_tensor_datatype(tensor)
    return dtype if dtype is not None else DataType["FLOAT32"]


def _float_culprit(model, tensor):
    """Why ``tensor`` (a linear layer's input) is float: (the node making floats of integer inputs,
    the unsupported node upstream of it that kept streamlining from absorbing it, or None)."""
    path, producer = [], model.find_producer(tensor)
    while producer is not None:
        inputs = [t for t in producer.input if t and model.get_initializer(t) is None]
        if any(_dtype(model, t).is_integer() for t in inputs):
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


def _reachable(model, tensor):
    """The nodes that read ``tensor`` through pass-through nodes, and whether any zero padding is crossed."""
    readers, padded, stack = [], False, [tensor]
    while stack:
        current = stack.pop()
        for node in model.find_consumers(current) or []:
            if node.op_type in PASS_THROUGH:
                padded |= node.op_type == "Im2Col" and any(_attr(node, "pad_amount", [0]))
                stack.append(node.output[0])
            else:
                padded |= node.op_type == "Conv" and any(_attr(node, "pads", [0]))
                readers.append(node)
        if any(o.name == current for o in model.graph.output):
            readers.append(None)
    return readers, padded


def _is_bipolar_linear(model, node) -> bool:
    return (
        node is not None
        and node.op_type in LINEAR
        and node.input[0] != ""
        and model.get_initializer(node.input[1]) is not None
        and _dtype(model, node.input[1]) == DataType["BIPOLAR"]
        and _attr(node, "group", 1) == 1  # a depthwise VVAU multiplies integers; it has no XNOR mode
    )


class EncodeBipolarActivations(Transformation):
    """Choose bits (XNOR) or 2-bit integers for every bipolar MultiThreshold output."""

    def apply(self, model: ModelWrapper):
        for mt in model.graph.node:
            if mt.op_type != "MultiThreshold" or _dtype(model, mt.output[0]) != DataType["BIPOLAR"]:
                continue
            inst = getCustomOp(mt)
            readers, padded = _reachable(model, mt.output[0])
            thresholds = model.get_initializer(mt.input[1])
            if not padded and readers and all(_is_bipolar_linear(model, r) for r in readers):
                inst.set_nodeattr("out_dtype", "BINARY")
                inst.set_nodeattr("out_scale", 1.0)
                inst.set_nodeattr("out_bias", 0.0)
            else:  # -1 + [x >= T] + [x >= T] is -1 or +1, with zero padding still meaning 0
                model.set_initializer(mt.input[1], np.repeat(thresholds, 2, axis=1))
                inst.set_nodeattr("out_dtype", "INT2")
                inst.set_nodeattr("out_scale", 1.0)
                inst.set_nodeattr("out_bias", -1.0)
        return model.transform(InferDataTypes()), False


def _acc_range(x_dtype: DataType, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel, the smallest and largest accumulator value reachable."""
    lo, hi = float(x_dtype.min()), float(x_dtype.max())
    w = weights.astype(np.float64)
    return np.minimum(w * lo, w * hi).sum(axis=0), np.maximum(w * lo, w * hi).sum(axis=0)


def _depthwise_window(model, tensor) -> bool:
    """Whether ``tensor`` is the output of a depthwise Im2Col (lowering's form of a depthwise Conv)."""
    producer = model.find_producer(tensor)
    return producer is not None and producer.op_type == "Im2Col" and _attr(producer, "depthwise", 0) == 1


def _vvau_weights(matmul, weights: np.ndarray, channels: int) -> np.ndarray:
    """The (C, K) weights of a depthwise layer from its lowered dense (K*C, C) MatMul weights."""
    k = weights.shape[0] // channels
    dense = weights.reshape(k, channels, channels)
    own = dense[:, np.arange(channels), np.arange(channels)]  # (K, C)
    if np.count_nonzero(dense) != np.count_nonzero(own):
        raise QnnflowError(f"node '{matmul.name}' (MatMul): reads a depthwise window but mixes channels; "
                           f"only depthwise weights (column c reading channel c) can become a VVAU")
    return np.ascontiguousarray(own.T)


class ConvertToHWNodes(Transformation):
    """Pattern-rewrite the lowered graph into dataflow nodes (one sweep; reaches a fixed point)."""

    def apply(self, model: ModelWrapper):
        # In stream order, each MVAU's output type (its accumulator range) is propagated before the
        # nodes after it are converted: a max-pool or sliding window copies its input's type.
        for node in list(model.graph.node):
            if node.op_type == "MatMul" and model.get_initializer(node.input[1]) is not None:
                self._mvau(model, node)
                InferDataTypes().apply(model)
            elif node.op_type == "ReduceSum":
                self._global_acc_pool(model, node)
                InferDataTypes().apply(model)
            elif node.op_type == "Mul":  # before the MVAU after it, which needs its integer type
                self._channelwise(model, node)
                InferDataTypes().apply(model)
            elif node.op_type == "QuantAvgPool2d":
                self._sum_pool(model, node)
                InferDataTypes().apply(model)
            elif node.op_type == "Concat":  # before the per-channel Mul after it, which reads its joint type
                self._concat(model, node)
                InferDataTypes().apply(model)
        for node in list(model.graph.node):
            if node.op_type == "Im2Col":
                self._sliding_window(model, node)
            elif node.op_type == "MaxPoolNHWC":
                self._maxpool(model, node)
            elif nearest_factors(model, node) is not None:
                self._upsample(model, node)
            elif is_join(model, node):
                self._add_streams(model, node)
        model = model.transform(InferDataTypes())
        for node in list(model.graph.node):
            if node.op_type == "MultiThreshold":
                self._thresholding(model, node)
            elif node.op_type == "TopK":
                self._label_select(model, node)
        model = model.transform(InferShapes()).transform(InferDataTypes()).transform(GiveUniqueNodeNames())
        return model, False

    @staticmethod
    def _replace(model, old_nodes, new_node):
        index = list(model.graph.node).index(old_nodes[0])
        for old in old_nodes:
            model.graph.node.remove(old)
        model.graph.node.insert(index, new_node)
        return model.graph.node[index]  # protobuf inserted a copy

    def _mvau(self, model, matmul):
        x, w_name = matmul.input
        weights = model.get_initializer(w_name)
        w_dtype = _dtype(model, w_name)
        x_dtype = _dtype(model, x)
        maker, blocker = (None, None) if x_dtype.is_integer() else _float_culprit(model, x)
        if maker is not None and blocker is None and self._trailing_after_linear(model, matmul, maker):
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
            node = self._replace(model, [matmul], node)
            if not xnor or (reader is not None and reader.op_type == "TopK"):
                return  # a TopK ranks popcounts and bipolar dot products alike
            activation = self._monotone_reader(model, node.output[0], "MultiThreshold")
            if activation is not None:  # pools and reshapes commute with d = 2 * pc - MW: threshold pc
                t = model.get_initializer(activation.input[1]).astype(np.float64)
                model.set_initializer(activation.input[1], np.ceil((t + mw) / 2).astype(np.float32))
            else:  # popcount -> bipolar dot product on the host, for the float tail
                self._tail_correction(model, node, mw)
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
        self._replace(model, [matmul, mt], node)

    @staticmethod
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
        return producer is not None and producer.op_type in ("MVAU", "MultiThreshold") and _dtype(model, source[0]).is_integer()

    @staticmethod
    def _monotone_reader(model, tensor, op_type):
        """The ``op_type`` node reading ``tensor`` through a chain of max-pools and reshapes (each the
        only reader of its input), or None. Those commute with any increasing map of the values."""
        reader = single_consumer(model, tensor)
        while reader is not None and reader.op_type in ("MaxPoolNHWC", *STREAM_TRANSPARENT):
            reader = single_consumer(model, reader.output[0])
        return reader if reader is not None and reader.op_type == op_type else None

    @staticmethod
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

    def _sliding_window(self, model, im2col):
        x = im2col.input[0]
        n, h, w, c = model.get_tensor_shape(x)
        kh, kw = _attr(im2col, "kernel_size")
        sh, sw = _attr(im2col, "stride")
        pads = list(_attr(im2col, "pad_amount", [0, 0, 0, 0]))
        dtype = _dtype(model, x)
        nodes = []
        if any(pads):
            padded = fresh_name(model, f"{im2col.name}_padded")
            h, w = h + pads[0] + pads[2], w + pads[1] + pads[3]
            model.set_tensor_shape(padded, [n, h, w, c])
            nodes.append(helper.make_node(
                "FMPadding", [x], [padded], domain=HW_DOMAIN, name=f"{im2col.name}_pad",
                ImgDim=list(model.get_tensor_shape(x)[1:3]), Padding=pads, NumChannels=c, SIMD=1,
                inputDataType=dtype.name, PadValue=int(_attr(im2col, "pad_value", 0)),
            ))
            x = padded
        _, oh, ow, _ = model.get_tensor_shape(im2col.output[0])
        one_d = h == 1 and kh == 1  # a Conv1d or 1xK kernel: the ring-buffer unit
        nodes.append(helper.make_node(
            "ConvolutionInputGenerator1D" if one_d else "ConvolutionInputGenerator", [x], [im2col.output[0]],
            domain=HW_DOMAIN, name=im2col.name,
            ConvKernelDim=[kh, kw], IFMChannels=c, IFMDim=[h, w], OFMDim=[oh, ow], Stride=[sh, sw],
            Dilation=[1, 1], SIMD=1, inputDataType=dtype.name, outputDataType=dtype.name,
            depthwise=int(_attr(im2col, "depthwise", 0)),
        ))
        index = list(model.graph.node).index(im2col)
        model.graph.node.remove(im2col)
        for offset, node in enumerate(nodes):
            model.graph.node.insert(index + offset, node)

    def _maxpool(self, model, pool):
        _, h, w, c = model.get_tensor_shape(pool.input[0])
        node = helper.make_node(
            "StreamingMaxPool", [pool.input[0]], [pool.output[0]], domain=HW_DOMAIN, name=pool.name,
            ImgDim=[h, w], PoolDim=list(_attr(pool, "kernel_shape")), Stride=list(_attr(pool, "strides")),
            NumChannels=c, PE=1, dataType=_dtype(model, pool.input[0]).name,
        )
        self._replace(model, [pool], node)

    def _global_acc_pool(self, model, reduce):
        """ReduceSum over H, W of an integer NHWC tensor (a global average pool's sum) -> GlobalAccPool."""
        x = reduce.input[0]
        shape = model.get_tensor_shape(x)
        axes = model.get_initializer(reduce.input[1]) if len(reduce.input) > 1 else None
        dtype = _dtype(model, x)
        if len(shape) != 4 or axes is None or sorted(np.asarray(axes).tolist()) != [1, 2] or not dtype.is_integer():
            return
        pixels = shape[1] * shape[2]
        out_dtype = smallest_int_type(pixels * dtype.min(), pixels * dtype.max())
        node = helper.make_node(
            "GlobalAccPool", [x], [reduce.output[0]], domain=HW_DOMAIN, name=reduce.name, NumChannels=shape[3],
            PE=1, inputDataType=dtype.name, outputDataType=out_dtype.name, numInputVectors=list(shape[:3]),
        )
        self._replace(model, [reduce], node)

    def _sum_pool(self, model, pool):
        """An average pool's exact window sum (QuantAvgPool2d without truncation, NHWC) -> SumPool."""
        inst = getCustomOp(pool)
        x = pool.input[0]
        shape, dtype = model.get_tensor_shape(x), _dtype(model, x)
        k, stride = inst.get_nodeattr("kernel"), inst.get_nodeattr("stride")
        if inst.get_nodeattr("data_layout") != "NHWC" or inst.get_shifts() or not dtype.is_integer():
            return
        node = helper.make_node(
            "SumPool", [x], [pool.output[0]], domain=HW_DOMAIN, name=pool.name, ImgDim=list(shape[1:3]),
            PoolDim=[k, k], Stride=[stride, stride], NumChannels=shape[3], PE=1, inputDataType=dtype.name,
            outputDataType=smallest_int_type(k * k * dtype.min(), k * k * dtype.max()).name,
        )
        self._replace(model, [pool], node)

    def _upsample(self, model, resize):
        """A nearest upsample of an integer NHWC tensor by (1, sh, sw, 1) -> UpsampleNearestNeighbour."""
        x = resize.input[0]
        shape, dtype = model.get_tensor_shape(x), _dtype(model, x)
        factors = nearest_factors(model, resize)
        if len(shape) != 4 or factors[0] != 1 or factors[3] != 1 or not dtype.is_integer():
            return
        node = helper.make_node(
            "UpsampleNearestNeighbour", [x], [resize.output[0]], domain=HW_DOMAIN, name=resize.name,
            ImgDim=list(shape[1:3]), Factor=list(factors[1:3]), NumChannels=shape[3], SIMD=1, inputDataType=dtype.name,
        )
        self._replace(model, [resize], node)

    def _channelwise(self, model, mul):
        """An integer per-channel Mul [+ Add] on an integer tensor that a dataflow node reads (the sign
        streamlining factors out of a negative scale, the integer form of a per-channel power-of-two
        scale, a residual branch's scale lined up with the other's) -> ChannelwiseOp."""
        operand = const_operand(model, mul)
        if operand is None:
            return
        x = mul.input[operand[0]]
        shape = tuple(model.get_tensor_shape(x))
        in_dtype = _dtype(model, x)
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
        self._replace(model, nodes, node)
        model.set_tensor_datatype(out, out_dtype)

    def _add_streams(self, model, add):
        """A residual add of two integer NHWC tensors of the same shape -> AddStreams."""
        a, b = add.input
        shape = model.get_tensor_shape(a)
        da, db = _dtype(model, a), _dtype(model, b)
        if not (da.is_integer() and db.is_integer()) or shape != model.get_tensor_shape(b) or len(shape) not in (2, 4):
            return
        out_dtype = smallest_int_type(da.min() + db.min(), da.max() + db.max())
        node = helper.make_node(
            "AddStreams", [a, b], [add.output[0]], domain=HW_DOMAIN, name=add.name, NumChannels=shape[-1], PE=1,
            inputDataType=da.name, input1DataType=db.name, outputDataType=out_dtype.name,
            numInputVectors=list(shape[:-1]),
        )
        self._replace(model, [add], node)
        model.set_tensor_datatype(add.output[0], out_dtype)

    def _concat(self, model, concat):
        """A channel concat of two integer NHWC tensors with the same pixels -> StreamingConcat."""
        a, b = concat.input if len(concat.input) == 2 else (None, None)
        shapes = [model.get_tensor_shape(t) for t in (a, b)] if a else []
        axis = _attr(concat, "axis")
        if not shapes or shapes[0][:-1] != shapes[1][:-1] or axis % len(shapes[0]) != len(shapes[0]) - 1:
            return
        da, db = _dtype(model, a), _dtype(model, b)
        if not (da.is_integer() and db.is_integer()):
            return
        out_dtype = smallest_int_type(min(da.min(), db.min()), max(da.max(), db.max()))
        node = helper.make_node(
            "StreamingConcat", [a, b], [concat.output[0]], domain=HW_DOMAIN, name=concat.name,
            ChannelsPerStream=[shapes[0][-1], shapes[1][-1]], NumChannels=shapes[0][-1] + shapes[1][-1], PE=1,
            inputDataType=da.name, input1DataType=db.name, outputDataType=out_dtype.name,
            numInputVectors=list(shapes[0][:-1]),
        )
        self._replace(model, [concat], node)
        model.set_tensor_datatype(concat.output[0], out_dtype)

    def _thresholding(self, model, mt):
        x = mt.input[0]
        if not _dtype(model, x).is_integer():
            return  # a float threshold (e.g. the input quantizer's) stays outside the accelerator
        inst = getCustomOp(mt)
        shape = model.get_tensor_shape(x)
        thresholds = model.get_initializer(mt.input[1])
        channels = shape[-1]
        thresholds = np.broadcast_to(thresholds, (channels, thresholds.shape[1]))
        in_dtype = _dtype(model, x)
        thresholds = np.clip(np.ceil(thresholds), in_dtype.min(), in_dtype.max() + 1)
        t_new = fresh_name(model, f"{mt.name}_thresholds")
        model.set_initializer(t_new, thresholds.astype(np.float32))
        node = helper.make_node(
            "Thresholding", [x, t_new], [mt.output[0]], domain=HW_DOMAIN, name=mt.name,
            NumChannels=channels, PE=1, inputDataType=in_dtype.name, outputDataType=inst.get_nodeattr("out_dtype"),
            ActVal=int(inst.get_nodeattr("out_bias")), numInputVectors=list(shape[:-1]),
        )
        self._replace(model, [mt], node)

    def _label_select(self, model, topk):
        k = model.get_initializer(topk.input[1])
        x = topk.input[0]
        if not _dtype(model, x).is_integer():
            return  # ranking float scores (a tail that could not be absorbed) stays on the host
        labels = model.get_tensor_shape(x)[-1]
        node = helper.make_node(
            "LabelSelect", [x], [topk.output[1]], domain=HW_DOMAIN, name=topk.name,
            Labels=labels, PE=1, K=int(np.asarray(k).reshape(-1)[0]), inputDataType=_dtype(model, x).name,
        )
        self._replace(model, [topk], node)


class RemoveStreamReshapes(Transformation):
    """Drop the Flatten/Reshape chains between two dataflow nodes: the consumer reads the stream.

    A Flatten (axis 1) or a Reshape that keeps the batch axis changes how the elements of one
    image are grouped, never their order, and an MVAU groups its input stream by its own
    attributes (numInputVectors, MW).  So ``producer -> Flatten -> MVAU`` becomes
    ``producer -> MVAU`` with the MVAU reading e.g. the (1, H, W, C) tensor as MW = H*W*C.
    Before any other dataflow node only reshapes that give the tensor its shape back go (e.g. a
    Flatten of an (N, C) tensor); a reshape in the host head or tail stays.
    """

    def apply(self, model: ModelWrapper):
        for node in list(model.graph.node):
            if node.domain != HW_DOMAIN:
                continue
            chain, tensor = [], node.input[0]
            while True:
                producer = model.find_producer(tensor)
                if (producer is None or producer.op_type not in STREAM_TRANSPARENT
                        or not self._batch_kept(model, producer)):
                    break
                reader = chain[-1] if chain else node
                only = single_consumer(model, tensor)
                if only is None or only.name != reader.name:
                    break
                chain.append(producer)
                tensor = producer.input[0]
            source = model.find_producer(tensor)
            if not chain or source is None or source.domain != HW_DOMAIN:
                continue
            same_shape = model.get_tensor_shape(tensor) == model.get_tensor_shape(node.input[0])
            if node.op_type not in STREAM_READERS and not same_shape:
                continue  # its input shape check would fail; the partition names the reshape
            node.input[0] = tensor
            for reshape in chain:
                model.graph.node.remove(reshape)
        return model, False

    @staticmethod
    def _batch_kept(model, node) -> bool:
        """The reshape keeps axis 0 (the batch) and the elements of each image."""
        src, dst = model.get_tensor_shape(node.input[0]), model.get_tensor_shape(node.output[0])
        if not src or not dst or src[0] != dst[0] or int(np.prod(src)) != int(np.prod(dst)):
            return False
        return node.op_type != "Flatten" or _attr(node, "axis", 1) == 1


class InsertDuplicateStreams(Transformation):
    """A tensor read by several dataflow nodes (the start of a residual block) gets a fork: a DuplicateStreams
    per extra reader, since a stream has one reader.  Output 0 feeds the first reader in graph order."""

    def apply(self, model: ModelWrapper):
        for tensor in list(model.get_all_tensor_names()):
            readers = [n for n in model.find_consumers(tensor) or [] if n.domain == HW_DOMAIN]
            if len(readers) < 2:
                continue
            shape, dtype = model.get_tensor_shape(tensor), _dtype(model, tensor)
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


# Encoding first: a zero-padded binary activation must become a 2-bit integer before lowering
# pads it.  Last, the popcount-to-bipolar Mul/Add an unthresholded XNOR layer gets merge into
# the float tail's scale and bias (on the host: one Mul and one Add).
TO_HW = (EncodeBipolarActivations, LowerToNHWC, ConvertToHWNodes, RemoveDeadInputChannels, RemoveStreamReshapes,
         InsertDuplicateStreams, MoveAffineDownstream)


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
        return f"a {_dtype(model, tensor).name} tensor from '{producer.name if producer else tensor}'"
    scale, _, mul = side
    values = np.unique(np.asarray(scale, dtype=np.float64))
    text = f"{values[0]:.6g}" if values.size == 1 else f"per-channel {np.array2string(values[:4], precision=4)}"
    return f"scale {text}" + (f" from '{mul.name}'" if mul is not None else " (an integer tensor)")


def _check_residual_add(model: ModelWrapper, node) -> None:
    """A residual add must sum integers: streamlining lines up the two branches' scales where their ratio is
    an integer; otherwise it is refused here, naming the add and both scales."""
    if all(_dtype(model, t).is_integer() for t in node.input):
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
            if not all(_dtype(model, t).is_integer() for t in node.input):
                raise QnnflowError(
                    f"{what} concatenates branches that are not integer tensors ({_describe_scale(model, node.input[0])}"
                    f" and {_describe_scale(model, node.input[1])}): quantize each branch with an activation "
                    f"quantizer right before the concat")
        elif node.op_type in ("Add", "Sum", "Concat", "Mul") and len(dynamic) > 1:
            raise QnnflowError(f"{what} joins two branches of the network: {BRANCHES}")
        if node.op_type in LINEAR and node.input[1] and not _dtype(model, node.input[1]).is_integer():
            raise QnnflowError(f"{what} has float weights inside the network: quantize them (QuantConv2d, "
                               f"QuantLinear with a weight quantizer), or keep float layers before the input "
                               f"quantizer or after the last layer")


def to_hw(model: ModelWrapper):
    """Lower, encode binary activations, convert to dataflow nodes, drop the reshapes between them,
    merge the float tail (``TO_HW``, in order); returns (model, partition). A layer with no hardware
    form inside the network is refused first, by name (``refuse_unbuildable``)."""
    refuse_unbuildable(model)
    for transform in TO_HW:
        model = model.transform(transform())
    return model, find_partition(model)
