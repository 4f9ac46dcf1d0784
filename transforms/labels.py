"""Class labels out of the accelerator: a TopK at the end, with the float tail absorbed.

The top-k indices of a*x + b equal those of x when a > 0 and b are scalars, so a Mul/Add
chain with such constants between the last layer and the TopK is dropped. A per-class
scale or bias changes the ranking and stays (the partition check then names it).
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.insert_topk import InsertTopK

from qnnflow.transforms.graph import const_operand, remove_node, single_consumer


class AbsorbScalarAffineIntoTopK(Transformation):
    """Mul(a > 0 scalar) / Add(b scalar) right before a TopK: removed, the ranking is unchanged."""

    def apply(self, model: ModelWrapper):
        for topk in model.graph.node:
            if topk.op_type != "TopK":
                continue
            producer = model.find_producer(topk.input[0])
            if producer is None or producer.op_type not in ("Mul", "Add"):
                continue
            operand = const_operand(model, producer)
            if operand is None or operand[1].size != 1 or single_consumer(model, producer.output[0]) is None:
                continue
            if producer.op_type == "Mul" and not float(np.asarray(operand[1]).reshape(-1)[0]) > 0:
                continue
            remove_node(model, producer)
            return model, True
        return model, False


def insert_label_select(model: ModelWrapper, k: int = 1) -> ModelWrapper:
    """End the graph with the indices of the k largest scores, tail absorbed where possible."""
    model = model.transform(InsertTopK(k=k))
    return model.transform(AbsorbScalarAffineIntoTopK())
