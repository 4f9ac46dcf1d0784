"""The dataflow node library: qonnx custom ops in the ONNX domain ``qnnflow.hls.nodes``.

qonnx's registry imports this package for that domain and looks classes up by ``__all__``,
so ``getCustomOp(node)`` works for every node listed here.
"""

from qnnflow.hls.nodes.base import DOMAIN, HWNode
from qnnflow.hls.nodes.dwc import StreamingDataWidthConverter
from qnnflow.hls.nodes.fifo import StreamingFIFO
from qnnflow.hls.nodes.label_select import LabelSelect
from qnnflow.hls.nodes.maxpool import StreamingMaxPool
from qnnflow.hls.nodes.mvau import MVAU
from qnnflow.hls.nodes.padding import FMPadding
from qnnflow.hls.nodes.sliding_window import ConvolutionInputGenerator
from qnnflow.hls.nodes.thresholding import Thresholding

NODE_CLASSES = (
    MVAU,
    ConvolutionInputGenerator,
    FMPadding,
    StreamingMaxPool,
    Thresholding,
    LabelSelect,
    StreamingFIFO,
    StreamingDataWidthConverter,
)

# only node classes: qonnx enumerates __all__ as the ops of the domain
__all__ = [cls.__name__ for cls in NODE_CLASSES]
