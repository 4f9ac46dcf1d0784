"""ConvertToHWNodes: the pattern rewrite of the lowered graph into dataflow nodes, in the order the
node types need (each converter in its own module)."""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from qnnflow.transforms.streamline import is_join
from qnnflow.transforms.to_hw.channelwise import convert_mul, convert_multithreshold, convert_topk
from qnnflow.transforms.to_hw.dot import convert_matmul
from qnnflow.transforms.to_hw.joins import convert_add, convert_concat
from qnnflow.transforms.to_hw.pools import convert_avg_pool, convert_reduce_sum
from qnnflow.transforms.to_hw.windows import convert_im2col, convert_maxpool, convert_resize
from qnnflow.transforms.upsample import nearest_factors


class ConvertToHWNodes(Transformation):
    """Pattern-rewrite the lowered graph into dataflow nodes (one sweep; reaches a fixed point)."""

    def apply(self, model: ModelWrapper):
        # In stream order, each MVAU's output type (its accumulator range) is propagated before the
        # nodes after it are converted: a max-pool or sliding window copies its input's type.
        for node in list(model.graph.node):
            if node.op_type == "MatMul" and model.get_initializer(node.input[1]) is not None:
                convert_matmul(model, node)
                InferDataTypes().apply(model)
            elif node.op_type == "ReduceSum":
                convert_reduce_sum(model, node)
                InferDataTypes().apply(model)
            elif node.op_type == "Mul":  # before the MVAU after it, which needs its integer type
                convert_mul(model, node)
                InferDataTypes().apply(model)
            elif node.op_type == "QuantAvgPool2d":
                convert_avg_pool(model, node)
                InferDataTypes().apply(model)
            elif node.op_type == "Concat":  # before the per-channel Mul after it, which reads its joint type
                convert_concat(model, node)
                InferDataTypes().apply(model)
        for node in list(model.graph.node):
            if node.op_type == "Im2Col":
                convert_im2col(model, node)
            elif node.op_type == "MaxPoolNHWC":
                convert_maxpool(model, node)
            elif nearest_factors(model, node) is not None:
                convert_resize(model, node)
            elif is_join(model, node):
                convert_add(model, node)
        model = model.transform(InferDataTypes())
        for node in list(model.graph.node):
            if node.op_type == "MultiThreshold":
                convert_multithreshold(model, node)
            elif node.op_type == "TopK":
                convert_topk(model, node)
        model = model.transform(InferShapes()).transform(InferDataTypes()).transform(GiveUniqueNodeNames())
        return model, False
