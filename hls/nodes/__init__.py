"""The dataflow node library: qonnx custom ops in the ONNX domain ``qnnflow.hls.nodes``.

Each node kind is one module here plus its kernel header in hls/include/ (see base.py for
what a kind owns).  Fold search, FINN folding JSON, code generation, cppsim and the reports
reach the kinds through this registry and name none of them.  ``register_node`` adds a kind
defined elsewhere (a user's, or a test's); the built-in kinds are also in ``__all__``, where
qonnx's ``getCustomOp`` looks them up.
"""

from qonnx.custom_op.registry import add_op_to_domain

from qnnflow.hls.nodes.add_streams import AddStreams
from qnnflow.hls.nodes.base import DOMAIN, HWNode
from qnnflow.hls.nodes.channelwise import ChannelwiseOp
from qnnflow.hls.nodes.duplicate_streams import DuplicateStreams
from qnnflow.hls.nodes.dwc import StreamingDataWidthConverter
from qnnflow.hls.nodes.fifo import StreamingFIFO
from qnnflow.hls.nodes.global_acc_pool import GlobalAccPool
from qnnflow.hls.nodes.label_select import LabelSelect
from qnnflow.hls.nodes.maxpool import StreamingMaxPool
from qnnflow.hls.nodes.mvau import MVAU
from qnnflow.hls.nodes.padding import FMPadding
from qnnflow.hls.nodes.pixel_padding import FMPaddingPixel
from qnnflow.hls.nodes.sliding_window import ConvolutionInputGenerator
from qnnflow.hls.nodes.sliding_window_1d import ConvolutionInputGenerator1D
from qnnflow.hls.nodes.sum_pool import SumPool
from qnnflow.hls.nodes.streaming_concat import StreamingConcat
from qnnflow.hls.nodes.thresholding import Thresholding
from qnnflow.hls.nodes.upsample import UpsampleNearestNeighbour
from qnnflow.hls.nodes.vvau import VVAU

_BUILTIN = (
    MVAU,
    VVAU,
    ConvolutionInputGenerator,
    ConvolutionInputGenerator1D,
    FMPadding,
    FMPaddingPixel,
    StreamingMaxPool,
    SumPool,
    Thresholding,
    ChannelwiseOp,
    GlobalAccPool,
    UpsampleNearestNeighbour,
    DuplicateStreams,
    AddStreams,
    StreamingConcat,
    LabelSelect,
    StreamingFIFO,
    StreamingDataWidthConverter,
)
_KINDS: dict[str, type[HWNode]] = {cls.__name__: cls for cls in _BUILTIN}

# only node classes: qonnx enumerates __all__ as the ops of the domain
__all__ = [cls.__name__ for cls in _BUILTIN]


def register_node(cls: type[HWNode]) -> type[HWNode]:
    """Add a node kind (an HWNode subclass named as its op type) to the library; usable as a decorator."""
    if not (isinstance(cls, type) and issubclass(cls, HWNode)):
        raise TypeError(f"{cls!r} is not an HWNode subclass")
    add_op_to_domain(DOMAIN, cls)
    _KINDS[cls.__name__] = cls
    return cls


def node_kinds() -> dict[str, type[HWNode]]:
    """Every registered node kind by op type."""
    return dict(_KINDS)


def derived_kinds() -> frozenset[str]:
    """The kinds hls/widths.py places (converters, FIFOs): fold never searches them."""
    return frozenset(name for name, cls in _KINDS.items() if cls.DERIVED)
