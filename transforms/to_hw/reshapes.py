"""RemoveStreamReshapes: no Flatten/Reshape stays between two dataflow nodes."""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from qnnflow.hls.partition import STREAM_TRANSPARENT
from qnnflow.transforms.graph import single_consumer
from qnnflow.transforms.to_hw.common import HW_DOMAIN, node_attr

# Dataflow nodes whose input may be any tensor with the right number of elements per image
# (they group the stream by their attributes; see hls/nodes/mvau.py).
STREAM_READERS = ("MVAU",)


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
        return node.op_type != "Flatten" or node_attr(node, "axis", 1) == 1
