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

from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.hls.partition import find_partition
from qnnflow.transforms.lower import LowerToNHWC
from qnnflow.transforms.prune import RemoveDeadInputChannels
from qnnflow.transforms.streamline import MoveAffineDownstream
from qnnflow.transforms.to_hw.bipolar import EncodeBipolarActivations
from qnnflow.transforms.to_hw.convert import ConvertToHWNodes
from qnnflow.transforms.to_hw.joins import InsertDuplicateStreams
from qnnflow.transforms.to_hw.refuse import refuse_unbuildable
from qnnflow.transforms.to_hw.reshapes import RemoveStreamReshapes

__all__ = ["TO_HW", "RemoveStreamReshapes", "to_hw"]

# Encoding first: a zero-padded binary activation must become a 2-bit integer before lowering
# pads it.  Last, the popcount-to-bipolar Mul/Add an unthresholded XNOR layer gets merge into
# the float tail's scale and bias (on the host: one Mul and one Add).
TO_HW = (EncodeBipolarActivations, LowerToNHWC, ConvertToHWNodes, RemoveDeadInputChannels, RemoveStreamReshapes,
         InsertDuplicateStreams, MoveAffineDownstream)


def to_hw(model: ModelWrapper):
    """Lower, encode binary activations, convert to dataflow nodes, drop the reshapes between them,
    merge the float tail (``TO_HW``, in order); returns (model, partition). A layer with no hardware
    form inside the network is refused first, by name (``refuse_unbuildable``)."""
    refuse_unbuildable(model)
    for transform in TO_HW:
        model = model.transform(transform())
    return model, find_partition(model)
