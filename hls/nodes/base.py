"""``HWNode``: what every dataflow node kind shares; a kind is one module plus one kernel header.

A node is a qonnx ``CustomOp`` in the ONNX domain ``qnnflow.hls.nodes``.  On top of
qonnx's interface (attribute schema, shapes, datatypes, ``execute_node``) a kind owns its
hardware view, and nothing outside its module knows it by name:
- its folding space: ``parallel_knobs`` (PE/SIMD and the dimension each divides), its
  ``ram_style``/``resType`` attributes, and its legality (``problems``), including the back
  end's limits such as the widest stream word;
- its cost: ``cycles()`` and ``resources(board)`` of the kernel qnnflow emits, with the
  memories it declares (``memories``);
- its C++: ``emit`` (a kernel call and parameter header) and ``KERNEL_HEADER`` in
  hls/include/;
- its RTL: ``emit_rtl`` (a module instance with parameters and memory files) and
  ``RTL_SOURCES`` in hls/rtl/;
- its FINN names (``FINN_OP_TYPES``), for folding JSON.
Execution is bit-exact integer numpy over any leading batch size; folding only decides
legality, never the result.

Tensors travel through ONNX graphs as floats.  Inputs are checked to hold integers of
the node's declared DataType (a mismatch names the node), computed on as int64, and
returned as float32, or float64 where float32 would round (|v| > 2**24).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnx import helper, numpy_helper
from qonnx.core.datatype import BaseDataType, DataType
from qonnx.custom_op.base import CustomOp
from qonnx.util.basic import get_by_name

from qnnflow.base.errors import QnnflowError
from qnnflow.base.streams import MAX_WORD_BITS, StreamFormat
from qnnflow.base.values import datatype_holds, divisors, to_carrier, value_problem
from qnnflow.hls.codegen.cpp import element_type
from qnnflow.hls.nodes import cost, yosys_fit

DOMAIN = "qnnflow.hls.nodes"
INCLUDE_DIR = Path(__file__).resolve().parents[1] / "include"
RTL_DIR = Path(__file__).resolve().parents[1] / "rtl"
STREAM_DEPTH = 2  # words buffered by the stream each node writes (the generated top function's depth)


def fold_problem(attr: str, value: int, dim: str, size: int) -> str | None:
    """The message for ``attr=value`` not dividing ``dim=size``, or None when it divides."""
    if value >= 1 and size >= 1 and size % value == 0:
        return None
    legal = ", ".join(map(str, divisors(size)))
    return f"{attr}={value} does not divide {dim}={size}; legal {attr} values: {legal}"


@dataclass(frozen=True)
class Memory:
    """Memories a kernel declares, as its C++ partitions them: ``count`` of ``depth`` words x ``width`` bits.

    ``style`` is the ram_style they are bound as (auto, block, distributed); ``name`` the C++ array.
    """

    name: str
    count: int
    depth: int
    width: int
    style: str

    def bound(self) -> str:
        """The style the estimate costs and the RTL builds: 'auto' resolved by depth (cost.bound_style)."""
        return cost.bound_style(self.depth, self.style)


class HWNode(CustomOp):
    """Abstract dataflow node.  Subclasses declare attributes and implement ``compute``, the cost model
    and ``emit``.

    ``_input_dt_attr`` / ``_output_dt_attr`` name the attributes holding the DataType of
    input 0 and output 0.
    """

    _input_dt_attr = "inputDataType"
    _output_dt_attr = "outputDataType"
    STREAM_INPUTS = 1  # the first inputs that are streams (the others are parameters); a join reads several
    FINN_OP_TYPES: tuple[str, ...] = ()  # FINN's older op types for this kind (its own name needs none)
    KERNEL_HEADER: str | None = None  # the kernel's header in hls/include/
    RTL_SOURCES: tuple[str, ...] = ()  # its Verilog in hls/rtl/: the module it instantiates first, then what that uses
    DERIVED = False  # placed by hls/widths.py (converters, FIFOs): fold never searches it

    # ----- identity and errors -------------------------------------------------------

    @property
    def name(self) -> str:
        return self.onnx_node.name or self.onnx_node.op_type

    def error(self, message: str) -> QnnflowError:
        """A one-line user-facing error naming this node."""
        return QnnflowError(f"node '{self.name}': {message}")

    # ----- attributes ----------------------------------------------------------------

    def _raw_attr(self, name: str):
        """(is_set, value) of an attribute, decoded, without applying defaults or checks."""
        dtype = self.get_nodeattr_def(name)[0]
        attr = get_by_name(self.onnx_node.attribute, name)
        if attr is None:
            return False, None
        value = {"i": lambda: attr.i, "f": lambda: attr.f, "s": lambda: attr.s.decode("utf-8"),
                 "ints": lambda: list(attr.ints), "floats": lambda: list(attr.floats)}[dtype]()
        if dtype == "s" and value == "":
            return False, None
        return True, value

    def is_attr_set(self, name: str) -> bool:
        return self._raw_attr(name)[0]

    def _read_attr(self, name: str):
        """(value, problem): the attribute's value (default when unset) and why it is unusable, or None."""
        _dtype, required, default, allowed = self.get_nodeattr_def(name)
        is_set, value = self._raw_attr(name)
        if not is_set:
            if required:
                return None, f"required attribute {name} is not set; set it when creating the node"
            return (list(default) if isinstance(default, list) else default), None
        if allowed is not None and value not in allowed:
            return value, f"{name}={value!r} is not allowed; use one of {', '.join(map(repr, sorted(allowed)))}"
        return value, None

    def get_nodeattr(self, name: str):
        """An attribute's value (its default when unset); missing required or disallowed values raise QnnflowError."""
        value, problem = self._read_attr(name)
        if problem:
            raise self.error(problem)
        return value

    def _datatype_of(self, attr: str, value: str):
        """(DataType, problem) for the DataType name ``value`` held by attribute ``attr``."""
        try:
            dt = DataType[value]
        except Exception:
            return None, f"{attr}='{value}' is not a qonnx DataType; use e.g. INT4, UINT8, BINARY or BIPOLAR"
        if not dt.is_integer() or dt.is_fixed_point():
            return None, f"{attr}={value} is not an integer DataType; dataflow nodes carry integers only"
        return dt, None

    def datatype(self, attr: str) -> BaseDataType:
        """The qonnx DataType named by attribute ``attr`` (which must be an integer type)."""
        dt, problem = self._datatype_of(attr, self.get_nodeattr(attr))
        if problem:
            raise self.error(problem)
        return dt

    def input_datatype(self) -> BaseDataType:
        return self.datatype(self._input_dt_attr)

    def output_datatype(self) -> BaseDataType:
        return self.datatype(self._output_dt_attr)

    # ----- legality ------------------------------------------------------------------

    def attribute_problems(self) -> list[str]:
        """Generic attribute checks (required, allowed values, DataType names), then ``node_problems``."""
        found = []
        for name in self.get_nodeattr_types():
            value, problem = self._read_attr(name)
            if problem is None and name.endswith(("DataType", "dataType")) and value:
                problem = self._datatype_of(name, value)[1]
            if problem:
                found.append(problem)
        return found or self.node_problems()

    def node_problems(self) -> list[str]:
        """Node-specific attribute checks other than folding; attributes are known to be readable."""
        return []

    def folding_problems(self) -> list[str]:
        """Why the folding attributes (SIMD, PE, widths) are illegal, one message each; empty when legal."""
        return []

    def stream_problems(self) -> list[str]:
        """The back end's limit on stream words (MAX_WORD_BITS, ap_uint's widest), at a legal folding."""
        knobs = " or ".join(self.parallel_knobs()) or "the folding"
        return [f"the {what} word is {bits} bits wide, beyond the {MAX_WORD_BITS}-bit words the HLS kernels "
                f"support (ap_uint); lower {knobs}"
                for what, bits in (("input", self.instream_width()), ("output", self.outstream_width()))
                if bits > MAX_WORD_BITS]

    def problems(self) -> list[str]:
        """Every reason this node cannot be built from its attributes alone."""
        return self.attribute_problems() or self.folding_problems() or self.stream_problems()

    def model_problems(self, model) -> list[str]:
        """``problems()`` plus those only visible with the graph (initializers); see MVAU, Thresholding."""
        return self.problems()

    def check(self) -> None:
        """Raise a QnnflowError naming the node, attribute, value and legal values for the first category
        of problems found."""
        found = self.problems()
        if found:
            raise self.error("; ".join(found))

    def verify_node(self) -> list[str]:
        return [f"node '{self.name}': {p}" for p in self.problems()]

    # ----- execution -----------------------------------------------------------------

    def _fetch(self, context: dict, graph, tensor: str) -> np.ndarray:
        value = context.get(tensor)
        if value is None and graph is not None:
            init = get_by_name(graph.initializer, tensor)
            value = None if init is None else numpy_helper.to_array(init)
        if value is None:
            raise self.error(f"input '{tensor}' has no value in the execution context")
        return np.asarray(value)

    def check_shape(self, x: np.ndarray, tail: tuple[int, ...], hint: str = "") -> None:
        """Raise unless input 0 is (N, *tail) for some batch size N."""
        if x.ndim != len(tail) + 1 or x.shape[1:] != tuple(tail):
            want = ", ".join(["N", *map(str, tail)])
            raise self.error(f"input '{self.onnx_node.input[0]}' has shape {x.shape}, expected ({want}){hint}")

    def check_values(self, arr: np.ndarray, dt: BaseDataType, what: str) -> None:
        """Raise unless ``arr`` holds integers that ``dt`` can represent."""
        problem = value_problem(arr, dt)
        if problem:
            raise self.error(f"{what} {problem}; the producer and this node disagree on the data type")

    def int_array(self, arr: np.ndarray, dt: BaseDataType, what: str) -> np.ndarray:
        """``arr`` as int64 after checking that it holds integers ``dt`` can represent."""
        self.check_values(arr, dt, what)
        return np.asarray(arr).astype(np.int64)

    def execute_node(self, context: dict, graph) -> None:
        self.check()
        node = self.onnx_node
        arrays = [self._fetch(context, graph, t) if t else None for t in node.input]
        context[node.output[0]] = to_carrier(self.compute(*arrays))

    @abstractmethod
    def compute(self, *inputs: np.ndarray) -> np.ndarray:
        """The node's function on arrays as given (any leading batch size), as int64."""

    # ----- graph integration -----------------------------------------------------------

    def batch_of(self, model) -> int:
        """Leading dimension of input 0 in ``model`` (1 when unknown)."""
        shape = model.get_tensor_shape(self.onnx_node.input[0])
        return int(shape[0]) if shape else 1

    def infer_node_datatype(self, model) -> None:
        node = self.onnx_node
        expected = self.input_datatype()
        actual = model.get_tensor_datatype(node.input[0])
        if actual is not None and not datatype_holds(expected, actual):
            raise self.error(
                f"input '{node.input[0]}' is annotated {actual.name}, which {self._input_dt_attr}="
                f"{expected.name} cannot hold; fix the annotation or widen {self._input_dt_attr}"
            )
        model.set_tensor_datatype(node.output[0], self.output_datatype())

    # ----- hardware view ---------------------------------------------------------------

    @abstractmethod
    def normal_input_shape(self) -> tuple[int, ...]:
        """Shape of input 0 for one image (batch 1)."""

    @abstractmethod
    def normal_output_shape(self) -> tuple[int, ...]:
        """Shape of output 0 for one image (batch 1)."""

    @abstractmethod
    def folded_input_shape(self) -> tuple[int, ...]:
        """Input 0 as the stream sees it: the last axis split into (words, lanes per word)."""

    @abstractmethod
    def folded_output_shape(self) -> tuple[int, ...]:
        """Output 0 as the stream sees it: the last axis split into (words, lanes per word)."""

    def instream_width(self) -> int:
        """Bits per input stream word."""
        return self.folded_input_shape()[-1] * self.input_datatype().bitwidth()

    def outstream_width(self) -> int:
        """Bits per output stream word."""
        return self.folded_output_shape()[-1] * self.output_datatype().bitwidth()

    def input_format(self, port: int = 0) -> StreamFormat:
        """Stream input ``port`` as the kernel reads it (a node with several input streams overrides this)."""
        return StreamFormat(self.normal_input_shape()[1:], self.folded_input_shape()[-1], self.input_datatype().name)

    def output_format(self, port: int = 0) -> StreamFormat:
        """Stream output ``port`` as the kernel writes it (every output of a node is a stream)."""
        return StreamFormat(self.normal_output_shape()[1:], self.folded_output_shape()[-1],
                            self.output_datatype().name)

    def parallel_knobs(self) -> dict[str, str]:
        """Folding attributes that set parallelism -> the attribute holding the dimension each must divide."""
        return {}

    def parameter_word_bits(self) -> int | None:
        """Bits of parameter memory read per cycle across the node (an MVAU's weight word), or None.
        fold.max_weight_width caps it."""
        return None

    @abstractmethod
    def cycles(self) -> int:
        """Clock cycles per image of the emitted kernel."""

    @abstractmethod
    def resources(self, board: dict) -> dict:
        """Estimated {'LUT', 'BRAM18', 'DSP'} (ints) of the emitted kernel's logic and memories on ``board``
        (a builds/boards/*.yaml mapping)."""

    def memories(self) -> list[Memory]:
        """The memories the emitted kernel declares, as ``resources`` counts them."""
        return []

    # ----- C++ ---------------------------------------------------------------------------

    def emit(self, model, ident: str):
        """The kernel (hls.codegen.kernel.Kernel) implementing this node, C++ names prefixed ``ident``."""
        raise self.error(f"{self.onnx_node.op_type} has no HLS kernel")

    @classmethod
    def kernel_sources(cls) -> dict[str, bytes]:
        """The kernel's C++ headers by file name (copied into the project's include/)."""
        if cls.KERNEL_HEADER is None:
            return {}
        return {cls.KERNEL_HEADER: (INCLUDE_DIR / cls.KERNEL_HEADER).read_bytes()}

    # ----- RTL ---------------------------------------------------------------------------

    def emit_rtl(self, model, ident: str):
        """The RTL unit (hls.codegen.rtl_unit.RtlUnit) implementing this node, Verilog names prefixed ``ident``."""
        raise self.error(f"{self.onnx_node.op_type} has no RTL in qnnflow yet; build it with backend: hls")

    @classmethod
    def rtl_sources(cls) -> dict[str, bytes]:
        """The Verilog files of the node's RTL by file name (copied into the project's lib/)."""
        return {name: (RTL_DIR / name).read_bytes() for name in cls.RTL_SOURCES}

    def stream_resources(self) -> dict:
        """The FIFO of the stream the node writes: STREAM_DEPTH words of outstream_width bits, in
        shift registers, as the generated top function declares it."""
        return {"LUT": cost.stream_fifo_luts(STREAM_DEPTH, self.outstream_width()), "BRAM18": 0, "DSP": 0}

    def resources_with_stream(self, board: dict) -> dict:
        """What the node costs in the design: ``resources`` plus its output stream's FIFO.
        Folding and the reports count this."""
        own, stream = self.resources(board), self.stream_resources()
        formula = {r: own[r] + stream[r] for r in own}
        return yosys_fit.refit_resources(self, board, formula) if yosys_fit.uses_yosys_fit(board) else formula


class ChannelStreamNode(HWNode):
    """A node on numInputVectors[1:] vectors of NumChannels channels (channels last), PE channels a word.

    Its output has the input's shape (override the output methods otherwise), and it reads one
    word per cycle.
    """

    def _vectors(self) -> list[int]:
        return list(self.get_nodeattr("numInputVectors"))[1:]

    def node_problems(self) -> list[str]:
        found = []
        if self.get_nodeattr("NumChannels") < 1:
            found.append(f"NumChannels={self.get_nodeattr('NumChannels')} must be at least 1")
        vecs = self.get_nodeattr("numInputVectors")
        if not vecs or min(vecs) < 1:
            found.append(f"numInputVectors={vecs} must be a non-empty list of positive ints, e.g. [1] or [1, H, W]")
        return found

    def folding_problems(self) -> list[str]:
        p = fold_problem("PE", self.get_nodeattr("PE"), "NumChannels", self.get_nodeattr("NumChannels"))
        return [p] if p else []

    def parallel_knobs(self):
        return {"PE": "NumChannels"}

    def make_shape_compatible_op(self, model):
        return helper.make_node("Relu", [self.onnx_node.input[0]], [self.onnx_node.output[0]])

    def normal_input_shape(self):
        return (1, *self._vectors(), self.get_nodeattr("NumChannels"))

    def normal_output_shape(self):
        return self.normal_input_shape()

    def folded_input_shape(self):
        pe = self.get_nodeattr("PE")
        return (1, *self._vectors(), self.get_nodeattr("NumChannels") // pe, pe)

    def folded_output_shape(self):
        return self.folded_input_shape()

    def cycles(self) -> int:
        """Input-bound: one PE-wide word per cycle, C/PE words per input vector."""
        self.check()
        return self.get_nodeattr("NumChannels") // self.get_nodeattr("PE") * math.prod(self._vectors())


class TwoStreamJoin(ChannelStreamNode):
    """A node reading two channels-last streams (a join: AddStreams, StreamingConcat); ``input1DataType`` is
    the second input's element type, ``inputDataType`` the first's."""

    STREAM_INPUTS = 2

    def infer_node_datatype(self, model) -> None:
        second, declared = self.onnx_node.input[1], self.datatype("input1DataType")
        actual = model.get_tensor_datatype(second)
        if actual is not None and actual != declared:
            raise self.error(f"input '{second}' is annotated {actual.name}, but input1DataType={declared.name}; "
                             f"set input1DataType to {actual.name}")
        super().infer_node_datatype(model)

    def join_inputs(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both inputs as int64, each checked against its own DataType."""
        return (self.int_array(a, self.input_datatype(), f"input '{self.onnx_node.input[0]}'"),
                self.int_array(b, self.datatype("input1DataType"), f"input '{self.onnx_node.input[1]}'"))

    def join_types(self) -> dict[str, str]:
        """The kernel's element types: in0_t, in1_t, out_t."""
        return dict(in0_t=element_type(self.input_datatype().name),
                    in1_t=element_type(self.datatype("input1DataType").name),
                    out_t=element_type(self.output_datatype().name))
