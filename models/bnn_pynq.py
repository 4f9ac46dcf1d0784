"""BNN-PYNQ's trained LFC and CNV overlays as qnnflow dataflow graphs, and back.

``import_bnn_pynq(dir)`` turns a parameter directory (``L-P-weights.bin`` /
``L-P-thres.bin``, see ``models/bnn_pynq_files.py``) into a hardware-stage graph of
``qnnflow.hls.nodes`` (MVAUs with weights and thresholds, sliding windows, max-pools) that
computes what the overlay computes, bit for bit; ``export_bnn_pynq(model, network, dir)``
writes such a graph (or a qnnflow-trained one of the same topology) back as those files.

The overlay's arithmetic, layer by layer (thresholds T as stored in the files):

- a layer with binary inputs and binary weights of a W1A1 network is XNOR-popcount:
  acc = #positions where input bit == weight bit; an input padding bit is 0 and a padded
  weight bit 1, so padded synapses never count;
- every other layer sums signed products; lfcW1A2's first layer reads the input bits as
  -1/+1, so its 48 padding bits add -1 each (the files' thresholds already account for it);
- CNV's first layer reads 8-bit fixed-point pixels (code / 128) and keeps 8 fraction bits:
  its accumulator counts in 1/256, i.e. sum(2 * w * code), so the graph holds its weights
  doubled (INT3) and its thresholds stay exact;
- an output bit is [acc > T]; a 2-bit output is -1 + [acc > T0] + [acc > T1]; the graph's
  MVAU counts acc >= t, so t = T + 1;
- LFC's last layer thresholds one bit per class; CNV's last layer has no thresholds and
  outputs acc (a popcount for W1A1, a signed sum for A2), and so does LFC's in the scores form
  (``Network.scores``) that a trained model ending in an argmax is exported as;
- max-pools run after thresholding (OR on bits, max on 2-bit values).

The graph's input is what ``models.data.preprocess`` gives (float NCHW in [0, 1]); a host
head makes the overlay's input from it: LFC bit i = [pixel_i >= 128], padded to 832 bits;
CNV codes clip(round((x + 1) * 128), 0, 255) - 128 with x = 2p/255 - 1, NHWC.  Its output
is the overlay's: 64 class bits (LFC) or 64 scores (CNV), of which the first 10 are
classes; ``classify`` applies the host's rule.  The rows and columns the overlay pads stay
in the graph, so PE and SIMD are the files' and a round trip gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from qnnflow.base.errors import QnnflowError
from qnnflow.hls.nodes.base import DOMAIN as HW_DOMAIN
from qnnflow.hls.nodes.mvau import accumulator_range
from qnnflow.models import bnn_pynq_files as files

QONNX_DOMAIN = "qonnx.custom_op.general"
METADATA_KEY = "bnn_pynq_network"  # the network a graph was imported as (for classify)
SCORES_KEY = "bnn_pynq_scores"  # "1": the last layer outputs its accumulators (class scores), not class bits
CLASSES = 10
INT16 = (-(2**15), 2**15 - 1)
PADDED_ROW_THRESHOLD = INT16[1]  # a padded neuron never fires
NETWORK_RE = re.compile(r"^(lfc|cnv)W([12])A([12])$")
SHIPPED = ("lfcW1A1", "lfcW1A2", "cnvW1A1", "cnvW1A2", "cnvW2A2")
CLASS_NAMES = {"lfc": [str(i) for i in range(10)],
               "cnv": ["Airplane", "Automobile", "Bird", "Cat", "Deer", "Dog", "Frog", "Horse", "Ship", "Truck"]}
DATASET = {"lfc": "mnist", "cnv": "cifar10"}
INPUT_SHAPE = {"lfc": (1, 1, 28, 28), "cnv": (1, 3, 32, 32)}


@dataclass(frozen=True)
class LayerShape:
    """One layer as the overlay holds it: rows x cols after padding, the real ones, and its kind."""

    rows: int
    cols: int
    used_rows: int
    used_cols: int
    conv: tuple[int, int] | None = None  # (input channels, input size) of a 3x3 unpadded convolution
    pool_after: bool = False


def _fc(cols: int, rows: int, used_cols: int | None = None, used_rows: int | None = None) -> LayerShape:
    return LayerShape(rows, cols, used_rows or rows, used_cols or cols)


def _conv(cin: int, cout: int, size: int, pool_after: bool = False) -> LayerShape:
    return LayerShape(cout, 9 * cin, cout, 9 * cin, (cin, size), pool_after)


TOPOLOGIES = {
    # 784 input bits padded to 832 (a multiple of 64); 10 classes padded to one 64-bit word
    "lfc": (_fc(832, 1024, used_cols=784), _fc(1024, 1024), _fc(1024, 1024), _fc(1024, 64, used_rows=CLASSES)),
    "cnv": (_conv(3, 64, 32), _conv(64, 64, 30, pool_after=True), _conv(64, 128, 14),
            _conv(128, 128, 12, pool_after=True), _conv(128, 256, 5), _conv(256, 256, 3),
            _fc(256, 512), _fc(512, 512), _fc(512, 64, used_rows=CLASSES)),
}
# The foldings (PE, SIMD) per layer of BNN-PYNQ's own overlays: what its bitstreams load.
OVERLAY_FOLDINGS = {
    "lfcW1A1": ((32, 64), (64, 32), (32, 64), (16, 8)),
    "lfcW1A2": ((32, 64), (64, 32), (32, 64), (16, 8)),
    "cnvW1A1": ((16, 3), (32, 32), (16, 32), (16, 32), (4, 32), (1, 32), (1, 4), (1, 8), (4, 1)),
    "cnvW1A2": ((16, 3), (32, 32), (16, 32), (16, 32), (4, 32), (1, 32), (1, 4), (1, 8), (4, 1)),
    "cnvW2A2": ((8, 3), (16, 16), (8, 16), (8, 16), (4, 8), (1, 8), (1, 2), (2, 2), (4, 1)),
}


@dataclass(frozen=True)
class LayerArithmetic:
    """How one layer computes: its input, weights and output as graph DataTypes."""

    mode: str  # "xnor" (popcount), "signed" (sum of products) or "fixed8" (CNV's first layer, 1/256 units)
    input_dtype: str
    weight_dtype: str  # in the graph (xnor: BINARY bits; fixed8: the doubled weights)
    n_thresholds: int  # NT in the files; 0: no thresholds, the output is acc
    output_dtype: str | None  # None: the accumulator's type
    act_val: int


@dataclass(frozen=True)
class Network:
    name: str
    topology: str  # "lfc" or "cnv"
    weight_bits: int
    act_bits: int
    # LFC only: the last layer outputs its 10 accumulators, as CNV's does, instead of one thresholded bit
    # per class; what a trained qnnflow LFC's argmax needs (see ``export_bnn_pynq``)
    scores: bool = False

    @property
    def layers(self) -> tuple[LayerShape, ...]:
        return TOPOLOGIES[self.topology]

    @property
    def dataset(self) -> str:
        return DATASET[self.topology]

    def arithmetic(self, index: int) -> LayerArithmetic:
        last = index == len(self.layers) - 1
        if index == 0 and self.topology == "cnv":
            mode, idt, wdt = "fixed8", "INT8", "INT3"
        else:
            # A2 networks read the input bits as -1/+1 and later layers' 2-bit values as signed integers
            idt = "BINARY" if self.act_bits == 1 else ("BIPOLAR" if index == 0 else "INT2")
            mode = "xnor" if idt == "BINARY" else "signed"
            wdt = "BINARY" if mode == "xnor" else ("BIPOLAR" if self.weight_bits == 1 else "INT2")
        if last and (self.topology == "cnv" or self.scores):
            return LayerArithmetic(mode, idt, wdt, 0, None, 0)
        if last or self.act_bits == 1:
            return LayerArithmetic(mode, idt, wdt, 1, "BINARY", 0)
        return LayerArithmetic(mode, idt, wdt, 2, "INT2", -1)


def network(name: str) -> Network:
    """The network named like BNN-PYNQ's parameter directories: lfcW1A1, lfcW1A2, cnvW1A1, cnvW1A2, cnvW2A2."""
    if name.lower().startswith("tfc"):
        raise QnnflowError(f"BNN-PYNQ has no TFC overlay (its MNIST overlays are LFC, 3 x 1024 neurons), so no "
                           f"bitstream would load '{name}' files: export an LFC model as lfcW1A1 or lfcW1A2")
    match = NETWORK_RE.match(name)
    if not match or (match.group(2), match.group(3)) == ("2", "1"):
        raise QnnflowError(f"unknown BNN-PYNQ network '{name}': use one of {', '.join(SHIPPED)} "
                           f"(lfc or cnv, W1A1, W1A2 or W2A2)")
    return Network(name, match.group(1), int(match.group(2)), int(match.group(3)))


def shipped_dir(name: str) -> Path:
    """Where the shipped parameters of network ``name`` are: <data dir>/bnn-pynq/<mnist|cifar10>/<name>."""
    from qnnflow.models.data import data_dirs

    net = network(name)
    wanted = Path("bnn-pynq") / net.dataset / name
    for base in data_dirs():
        if (base / wanted).is_dir():
            return base / wanted
    looked = ", ".join(str(base / wanted) for base in data_dirs())
    raise QnnflowError(f"BNN-PYNQ parameters of {name} not found (looked in: {looked}); put BNN-PYNQ's "
                       f"bnn/params/{name} directory at one of them, or set QNNFLOW_DATA to a directory holding "
                       f"{wanted}")


# ----- import ---------------------------------------------------------------------------------------


def read_parameters(directory: Path, net: Network) -> list[files.PackedLayer]:
    """Every layer of ``net`` from ``directory``, checked against the topology."""
    directory = Path(directory)
    if not directory.is_dir():
        raise QnnflowError(f"BNN-PYNQ parameter directory {directory} not found; give the directory holding "
                           f"0-0-weights.bin, ... (e.g. BNN-PYNQ's bnn/params/{net.name})")
    present = files.layers_in(directory)
    extra = sorted(present - set(range(len(net.layers))))
    if extra:
        first = files.weights_path(directory, extra[0], 0).name
        count = len(net.layers)
        raise QnnflowError(f"{directory} has files of layer {extra[0]} ({first}, ...), but {net.name} has {count} "
                           f"layers (0..{count - 1}): the files are of another network; name the right one")
    layers = []
    for index, shape in enumerate(net.layers):
        arith = net.arithmetic(index)
        layers.append(files.read_layer(directory, index, shape.rows, shape.cols, net.weight_bits,
                                       arith.n_thresholds))
    return layers


def _int_type(lo: int, hi: int) -> DataType:
    """The narrowest INTn (or UINTn when lo >= 0) holding [lo, hi]."""
    for bits in range(1, 65):
        if lo >= 0 and hi <= 2**bits - 1:
            return DataType[f"UINT{bits}"] if bits > 1 else DataType["BINARY"]
        if lo >= -(2 ** (bits - 1)) and hi <= 2 ** (bits - 1) - 1 and bits > 1:
            return DataType[f"INT{bits}"]
    raise QnnflowError(f"no integer type holds [{lo}, {hi}]")


def _graph_weights(packed: np.ndarray, arith: LayerArithmetic) -> np.ndarray:
    """File weights (rows, cols) -> the MVAU's (MW, MH) in the graph's units."""
    w = packed.T
    if arith.mode == "xnor":
        return (w + 1) // 2  # bit 1 is +1
    if arith.mode == "fixed8":
        return 2 * w  # the accumulator counts in 1/256, the pixel codes in 1/128
    return w


class _GraphBuilder:
    """Nodes, initializers and value infos of one graph, added in order."""

    def __init__(self):
        self.nodes, self.inits, self.infos, self.dtypes = [], [], {}, {}

    def tensor(self, name: str, shape, dtype: str):
        self.infos[name] = list(shape)
        self.dtypes[name] = dtype
        return name

    def const(self, name: str, array: np.ndarray, dtype: str | None = None, onnx_type=TensorProto.FLOAT):
        array = np.asarray(array)
        np_type = np.float32 if onnx_type == TensorProto.FLOAT else np.int64
        self.inits.append(helper.make_tensor(name, onnx_type, array.shape, array.astype(np_type).ravel().tolist()))
        if dtype:
            self.dtypes[name] = dtype
        return name

    def node(self, op: str, inputs, output: str, domain: str = "", name: str | None = None, **attrs):
        self.nodes.append(helper.make_node(op, list(inputs), [output], domain=domain, name=name or output, **attrs))
        return output

    def model(self, inp: str, out: str, name: str) -> ModelWrapper:
        shapes = {n: s for n, s in self.infos.items() if n not in (inp, out)}
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info(inp, TensorProto.FLOAT, self.infos[inp])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, self.infos[out])],
            initializer=self.inits,
            value_info=[helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in shapes.items()],
        )
        proto = helper.make_model(graph, producer_name="qnnflow", opset_imports=[
            helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1), helper.make_opsetid(HW_DOMAIN, 1)])
        model = ModelWrapper(proto)
        for tensor, dtype in self.dtypes.items():
            model.set_tensor_datatype(tensor, DataType[dtype])
        return model


def _input_head(g: _GraphBuilder, net: Network) -> str:
    """Host nodes from preprocessed images (float NCHW in [0, 1]) to the overlay's input stream."""
    x = g.tensor("images", INPUT_SHAPE[net.topology], "FLOAT32")
    if net.topology == "lfc":
        bipolar = net.arithmetic(0).input_dtype == "BIPOLAR"
        # bit = [pixel >= 128]; the threshold sits between 127/255 and 128/255
        thr = g.const("binarize_threshold", [[127.5 / 255]])
        attrs = dict(out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0) if bipolar else dict(out_dtype="BINARY")
        bits = g.node("MultiThreshold", [x, thr], g.tensor("input_bits", (1, 1, 28, 28), attrs["out_dtype"]),
                      domain=QONNX_DOMAIN, name="binarize_input", **attrs)
        flat = g.node("Flatten", [bits], g.tensor("input_flat", (1, 784), attrs["out_dtype"]), axis=1)
        cols = net.layers[0].cols
        pads = g.const("input_pads", [0, 0, 0, cols - 784], onnx_type=TensorProto.INT64)
        # a padding bit is 0, which the bipolar reading takes as -1
        value = g.const("input_pad_value", -1.0 if bipolar else 0.0)
        return g.node("Pad", [flat, pads, value], g.tensor("input_padded", (1, cols), attrs["out_dtype"]),
                      name="pad_input_to_832")
    # code = clip(round(256 x), 0, 255) - 128 for x = p / 255: 255 thresholds halfway between codes
    thr = g.const("quantize_thresholds", ((np.arange(1, 256) - 0.5) / 256)[None, :])
    codes = g.node("MultiThreshold", [x, thr], g.tensor("input_codes", (1, 3, 32, 32), "INT8"), domain=QONNX_DOMAIN,
                   name="quantize_input", out_dtype="INT8", out_bias=-128.0)
    return g.node("Transpose", [codes], g.tensor("input_nhwc", (1, 32, 32, 3), "INT8"), perm=[0, 2, 3, 1])


def build_graph(net: Network, layers: list[files.PackedLayer]) -> ModelWrapper:
    """The dataflow graph of ``net`` with the overlay's parameters and folding."""
    g = _GraphBuilder()
    x = _input_head(g, net)
    for index, (shape, packed) in enumerate(zip(net.layers, layers)):
        arith = net.arithmetic(index)
        vectors = [1]
        if shape.conv:
            cin, size = shape.conv
            simd = packed.simd if cin % packed.simd == 0 else 1
            out = size - 2
            x = g.node("ConvolutionInputGenerator", [x], g.tensor(f"windows_{index}", (1, out, out, shape.cols),
                                                                 arith.input_dtype),
                       domain=HW_DOMAIN, name=f"ConvolutionInputGenerator_{index}", ConvKernelDim=[3, 3],
                       IFMChannels=cin, IFMDim=[size, size], OFMDim=[out, out], Stride=[1, 1], Dilation=[1, 1],
                       SIMD=simd, inputDataType=arith.input_dtype, outputDataType=arith.input_dtype)
            vectors = [1, out, out]
        weights = _graph_weights(packed.weights, arith)
        w_name = g.const(f"MVAU_{index}_weights", weights, arith.weight_dtype)
        acc_lo, acc_hi = (0, shape.cols) if arith.mode == "xnor" else \
            accumulator_range(weights, DataType[arith.input_dtype])
        inputs = [x, w_name]
        attrs = dict(MW=shape.cols, MH=shape.rows, SIMD=packed.simd, PE=packed.pe, inputDataType=arith.input_dtype,
                     weightDataType=arith.weight_dtype, binaryXnorMode=int(arith.mode == "xnor"),
                     numInputVectors=vectors)
        if packed.thresholds is None:
            acc = _int_type(acc_lo, acc_hi).name
            attrs.update(noActivation=1, outputDataType=acc, accDataType=acc)
            out_dtype = acc
        else:
            thresholds = packed.thresholds + 1  # [acc > T] is [acc >= T + 1]
            inputs.append(g.const(f"MVAU_{index}_thresholds", thresholds,
                                  _int_type(int(thresholds.min()), int(thresholds.max())).name))
            acc = _int_type(min(acc_lo, int(thresholds.min())), max(acc_hi, int(thresholds.max()))).name
            attrs.update(noActivation=0, ActVal=arith.act_val, outputDataType=arith.output_dtype, accDataType=acc)
            out_dtype = arith.output_dtype
        out_shape = (1, *vectors[1:], shape.rows)
        x = g.node("MVAU", inputs, g.tensor(f"MVAU_{index}_out", out_shape, out_dtype), domain=HW_DOMAIN,
                   name=f"MVAU_{index}", **attrs)
        if shape.pool_after:  # as in the overlay, one whole pixel (all channels) per cycle
            size = vectors[1]
            x = g.node("StreamingMaxPool", [x], g.tensor(f"pool_{index}_out", (1, size // 2, size // 2, shape.rows),
                                                        out_dtype),
                       domain=HW_DOMAIN, name=f"StreamingMaxPool_{index}", ImgDim=[size, size], PoolDim=[2, 2],
                       Stride=[2, 2], NumChannels=shape.rows, PE=shape.rows, dataType=out_dtype)
    model = g.model("images", x, net.name)
    model.set_metadata_prop(METADATA_KEY, net.name)
    if net.scores:
        model.set_metadata_prop(SCORES_KEY, "1")
    model = model.transform(InferShapes()).transform(InferDataTypes())
    for node in model.graph.node:
        if node.domain == HW_DOMAIN:
            problems = getCustomOp(node).model_problems(model)
            if problems:
                raise QnnflowError(f"imported {net.name}: node '{node.name}': {problems[0]}")
    return model


def import_bnn_pynq(directory: str | Path, name: str | None = None) -> ModelWrapper:
    """The hw-stage graph of BNN-PYNQ parameters in ``directory``; the network is ``name`` or the directory's name.

    An LFC directory without any thresholds file for the last layer is read as the scores form
    (``Network.scores``), which ``export_bnn_pynq`` writes for a model ending in an argmax.
    """
    directory = Path(directory)
    net = files_network(directory, name or directory.name)
    return build_graph(net, read_parameters(directory, net))


def files_network(directory: Path, name: str) -> Network:
    """Network ``name`` as the files in ``directory`` hold it: LFC's scores form when its last layer has
    weights but no thresholds file at all."""
    net = network(name)
    last = len(net.layers) - 1
    if net.topology == "lfc" and Path(directory).is_dir() and not files.threshold_files(directory, last) \
            and files.weights_path(directory, last, 0).is_file():
        net = dataclasses.replace(net, scores=True)
    return net


# ----- the host's side ------------------------------------------------------------------------------


def network_of(model: ModelWrapper) -> Network:
    name = model.get_metadata_prop(METADATA_KEY)
    if not name:
        raise QnnflowError(f"the model has no '{METADATA_KEY}' metadata: it was not imported from BNN-PYNQ parameters")
    return dataclasses.replace(network(name), scores=model.get_metadata_prop(SCORES_KEY) == "1")


def classify(outputs: np.ndarray, net: Network) -> np.ndarray:
    """The class the BNN-PYNQ host reads from the overlay's outputs (N, 64).

    LFC: the highest set bit among the 10 class bits (0 when none is set).  CNV (and LFC's scores
    form): the first of the first 10 scores that beats all before it and 0 (the host starts from
    class 0 with score 0 and keeps a strictly larger one), so class 0 when no score is positive
    (possible with A2's signed scores); for W1A1's popcounts this is the first largest, argmax's rule.
    """
    outputs = np.asarray(outputs).reshape(len(outputs), -1)[:, :CLASSES].astype(np.int64)
    if net.topology == "lfc" and not net.scores:
        return np.argmax(outputs * np.arange(1, CLASSES + 1), axis=1)
    return np.argmax(np.maximum(outputs, 0), axis=1)


# ----- export ---------------------------------------------------------------------------------------


def _mvaus(model: ModelWrapper, net: Network) -> list:
    mvaus = [n for n in model.graph.node if n.op_type == "MVAU" and n.domain == HW_DOMAIN]
    if len(mvaus) != len(net.layers):
        raise QnnflowError(f"{net.name} has {len(net.layers)} layers, but the model has {len(mvaus)} MVAU nodes "
                           f"({', '.join(n.name for n in mvaus) or 'none'}): export a model of the "
                           f"{net.topology.upper()} topology, converted to dataflow nodes (to_hw)")
    return mvaus


def foldings_from(model: ModelWrapper, net: Network, folding: str | dict | None) -> list[tuple[int, int]]:
    """(PE, SIMD) per layer: 'overlay' (BNN-PYNQ's own, the default), 'graph' (the MVAUs' attributes)
    or a FINN folding JSON (path or dict) naming the MVAU nodes."""
    if folding in (None, "overlay"):
        if net.name not in OVERLAY_FOLDINGS:
            raise QnnflowError(f"BNN-PYNQ ships no {net.name} overlay; give a folding ('graph' or a JSON file)")
        return list(OVERLAY_FOLDINGS[net.name])
    mvaus = _mvaus(model, net)
    if folding == "graph":
        return [(getCustomOp(n).get_nodeattr("PE"), getCustomOp(n).get_nodeattr("SIMD")) for n in mvaus]
    if isinstance(folding, (str, Path)):
        path = Path(folding)
        try:
            folding = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise QnnflowError(f"folding {path}: cannot read a JSON file ({' '.join(str(err).split())}); give a FINN "
                               f"folding JSON like {{\"MVAU_0\": {{\"PE\": 32, \"SIMD\": 64}}}}") from None
    result = []
    for n in mvaus:
        entry = folding.get(n.name)
        if not isinstance(entry, dict) or "PE" not in entry or "SIMD" not in entry:
            raise QnnflowError(f"folding: no PE and SIMD for node '{n.name}'; add \"{n.name}\": "
                               f"{{\"PE\": ..., \"SIMD\": ...}}")
        result.append((int(entry["PE"]), int(entry["SIMD"])))
    return result


def _legal(size: int, limit: int | None = None) -> str:
    return ", ".join(str(d) for d in range(1, size + 1) if size % d == 0 and (limit is None or d <= limit))


def _check_folding(net: Network, index: int, name: str, pe: int, simd: int) -> None:
    shape = net.layers[index]
    lanes = files.WORD_BITS // net.weight_bits
    simd_space = shape.conv[0] if shape.conv else shape.cols  # a sliding window emits SIMD channels per cycle
    problem = None
    if pe < 1 or shape.rows % pe:
        problem = f"PE={pe} does not divide its {shape.rows} rows (legal PE: {_legal(shape.rows)})"
    elif simd < 1 or simd_space % simd or simd > lanes:
        what = f"its {simd_space} input channels" if shape.conv else f"its {shape.cols} columns"
        problem = (f"SIMD={simd} does not divide {what} within a 64-bit weight word "
                   f"(legal SIMD: {_legal(simd_space, lanes)})")
    if problem:
        raise QnnflowError(f"{net.name} layer {index} ('{name}'): {problem}; the folding does not match the "
                           f"{net.topology.upper()} layout")


def _class_score_sign(model: ModelWrapper, node, net: Network) -> int:
    """+1 or -1: the sign of the one scale the host tail after the last MVAU ``node`` applies to every class.

    The overlay's last layer outputs one accumulator per class and the host takes the largest, so
    the model's class (argmax of its float outputs) survives only if the host tail is the same
    increasing (or decreasing: the weights are then negated) affine map on every class.  A
    per-class scale or bias changes which class is largest, and no integer form exists for it in
    the overlay's popcount layer: such a model fails, naming the node.
    """
    sign, tensor = 1, node.output[0]
    while True:
        consumers = model.find_consumers(tensor) or []
        if not consumers:
            return sign
        after = consumers[0]
        where = f"{net.name}: the host node '{after.name}' ({after.op_type}) after the last layer '{node.name}'"
        const = None
        if len(consumers) == 1 and after.op_type in ("Mul", "Div", "Add", "Sub") and len(after.input) == 2:
            const = model.get_initializer(after.input[1])
        if const is None:
            raise QnnflowError(f"{where} is not a constant scale or shift: the overlay's host takes the largest "
                               f"class score, so the model must end in its last layer's scores (optionally scaled "
                               f"and shifted alike for every class); remove the node (e.g. the label_select step)")
        values = np.unique(np.asarray(const, dtype=np.float64))
        if len(values) > 1:
            raise QnnflowError(f"{where} treats the classes differently ({values.min():.6g} to {values.max():.6g}); "
                               f"the overlay outputs one popcount per class with no per-class scale or bias, so the "
                               f"class the model picks cannot be reproduced: end the classifier in one scale for "
                               f"all classes (as the zoo's TensorNorm)")
        if after.op_type in ("Mul", "Div"):
            if values[0] == 0:
                raise QnnflowError(f"{where} multiplies by zero: every class scores the same; retrain the model")
            sign *= 1 if values[0] > 0 else -1
        tensor = after.output[0]


def _file_layer(model: ModelWrapper, node, net: Network, index: int) -> tuple[np.ndarray, np.ndarray | None]:
    """An MVAU's weights (rows, cols) and thresholds (rows, NT) in the files' units, padded as the overlay is."""
    inst = getCustomOp(node)
    shape, arith = net.layers[index], net.arithmetic(index)
    g = inst.get_nodeattr
    where = f"{net.name} layer {index} ('{node.name}')"
    mw, mh = g("MW"), g("MH")
    if mw not in (shape.cols, shape.used_cols) or mh not in (shape.rows, shape.used_rows):
        tfc = " (a TFC? BNN-PYNQ has no TFC overlay: train an LFC)" if net.topology == "lfc" and mh == 64 else ""
        raise QnnflowError(f"{where}: MW x MH = {mw} x {mh}, but {net.name} needs {shape.used_cols} x "
                           f"{shape.used_rows} (or padded {shape.cols} x {shape.rows}): not this topology{tfc}")
    idt, wdt = g("inputDataType"), g("weightDataType")
    xnor = g("binaryXnorMode") == 1
    weights = np.asarray(model.get_initializer(node.input[1])).astype(np.int64)
    scale_t = 1
    # a sum of bipolar products is S = 2 * popcount - MW: the same layer, counted the XNOR way
    bipolar = arith.mode == "xnor" and not xnor and idt == wdt == "BIPOLAR"
    if arith.mode == "xnor":
        ok = xnor or bipolar
        w = weights if bipolar else 2 * weights - 1
    elif arith.mode == "fixed8":
        ok = idt == "INT8" and not xnor
        doubled = wdt == "INT3" and not (weights % 2).any()
        w, scale_t = (weights // 2, 1) if doubled else (weights, 2)  # natural units: acc/128 > T/256 <=> 2 acc > T
    else:
        ok, w = not xnor and idt == arith.input_dtype, weights  # the weights' values are checked below
    if not ok:
        fix = ("the overlay reads the image as 784 bits [pixel >= 128]: give the model a binary input quantizer"
               if index == 0 and net.topology == "lfc" else
               "the overlay reads 8-bit pixel codes" if index == 0 else
               f"train the layer with {net.weight_bits}-bit weights and {net.act_bits}-bit activations")
        raise QnnflowError(f"{where}: computes {idt} x {wdt}{' (XNOR)' if xnor else ''}, but the overlay's layer "
                           f"{index} is {arith.mode} with {arith.input_dtype} inputs and {arith.weight_dtype} weights; "
                           f"{fix}")
    low = -(2 ** (net.weight_bits - 1)) if net.weight_bits > 1 else -1
    if ((w < low) | (w > 1) | ((w == 0) & (net.weight_bits == 1))).any():
        raise QnnflowError(f"{where}: weights outside the {net.weight_bits}-bit weights of {net.name}")
    pad_w = 1 if net.weight_bits == 1 else 0
    if index == len(net.layers) - 1 and arith.n_thresholds == 0:
        w = w * _class_score_sign(model, node, net)  # -acc picks the class a negative host scale picks
    full = np.full((shape.rows, shape.cols), pad_w, np.int64)
    full[:mh, :mw] = w.T
    t_node = node.input[2] if len(node.input) > 2 and g("noActivation") == 0 else ""
    if arith.n_thresholds == 0:
        if t_node:
            raise QnnflowError(f"{where}: has thresholds, but the overlay's last layer outputs the accumulator")
        return full, None
    thresholds = None if not t_node else model.get_initializer(t_node)
    if thresholds is None or thresholds.shape[1] != arith.n_thresholds or g("ActVal") != arith.act_val:
        raise QnnflowError(f"{where}: the overlay thresholds this layer with {arith.n_thresholds} threshold(s) "
                           f"from ActVal={arith.act_val}; the node has "
                           f"{'none' if thresholds is None else thresholds.shape[1]} from ActVal={g('ActVal')}")
    t = scale_t * np.asarray(thresholds).astype(np.int64)
    if bipolar:
        t = -(-(t + mw) // 2)  # S >= t <=> popcount >= ceil((t + MW) / 2)
    t = t - 1  # acc >= t is acc > t - 1
    if arith.mode == "signed" and idt == "BIPOLAR" and mw < shape.cols:
        t -= shape.cols - mw  # each padding bit reads as -1 against a +1 weight
    rows_t = np.full((shape.rows, arith.n_thresholds), PADDED_ROW_THRESHOLD, np.int64)
    rows_t[:mh] = np.clip(t, *INT16)
    return full, rows_t


def export_bnn_pynq(model: ModelWrapper, name: str, out_dir: str | Path, folding=None) -> list[Path]:
    """Write ``model`` (a hw-stage graph of network ``name``'s topology) as BNN-PYNQ parameter files.

    ``folding``: 'overlay' (BNN-PYNQ's overlay of that network; default), 'graph', or a FINN
    folding JSON.  Files go to a temporary directory first and replace ``out_dir`` only when
    all are written; an existing ``out_dir`` must hold nothing but parameter files.

    LFC's last layer: a model that thresholds it (an imported overlay) is written as the overlay
    holds it, one bit per class.  A trained qnnflow LFC ends in an argmax over its 10 accumulators
    (the host's float scale and shift are the same for every class), which no per-class threshold
    can reproduce: one bit per class cannot say which class is largest.  It is written in the
    scores form: no thresholds file for the last layer, whose 10 popcounts the host compares as it
    does CNV's; re-importing those files gives a graph that picks the model's class on every input.
    """
    net = network(name)
    out_dir = Path(out_dir)
    mvaus = _mvaus(model, net)
    if net.topology == "lfc" and getCustomOp(mvaus[-1]).get_nodeattr("noActivation") == 1:
        net = dataclasses.replace(net, scores=True)
    folds = foldings_from(model, net, folding)
    layers = []
    for index, (node, (pe, simd)) in enumerate(zip(mvaus, folds)):
        _check_folding(net, index, node.name, pe, simd)
        weights, thresholds = _file_layer(model, node, net, index)
        layers.append(files.PackedLayer(weights, thresholds, pe, simd))
    if out_dir.exists():
        foreign = [p.name for p in out_dir.iterdir()
                   if not (files.is_parameter_file(p.name) or p.name == "classes.txt")]
        if foreign:
            raise QnnflowError(f"{out_dir} exists and holds other files ({foreign[0]}, ...); choose a new directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        for index, packed in enumerate(layers):
            files.write_layer(tmp, index, packed, net.weight_bits)
        (tmp / "classes.txt").write_bytes("\r\n".join(CLASS_NAMES[net.topology]).encode())
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return sorted(out_dir.iterdir())


# ----- evaluation -----------------------------------------------------------------------------------


def test_set(net: Network, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` test images of ``net``'s data set, preprocessed as the graph's input, and their labels."""
    from qnnflow.models import data

    images, labels = data.load_dataset(net.dataset, "test")
    images, labels = images[:limit], labels[:limit]
    return data.preprocess(images, net.dataset), labels


def predict(model: ModelWrapper, inputs: np.ndarray) -> np.ndarray:
    """The classes an imported graph gives for preprocessed ``inputs``, run in Python at the hw stage."""
    from qnnflow.base.execute import execute_batch

    net = network_of(model)
    # the MVAU re-reads its weights per chunk: fully connected LFC runs best in large chunks, CNV's
    # sliding windows in small ones (execute_batch's default)
    chunk = 512 if net.topology == "lfc" else 16
    return classify(execute_batch(model, inputs, chunk=chunk), net)


# ----- as a build's model source (``model: bnn-pynq:<name or dir>``) -------------------------------------


def parameter_dir(spec: str) -> tuple[Path, str]:
    """(directory, network name) for ``spec``: a shipped network's name or a directory named after its network."""
    if "/" not in spec and not Path(spec).is_dir():  # a network's name: its shipped parameters
        return shipped_dir(spec), spec
    path = Path(spec)
    if not path.is_dir():
        raise QnnflowError(f"BNN-PYNQ parameter directory '{spec}' not found; give a directory named after its "
                           f"network (e.g. .../lfcW1A1) or a shipped network: {', '.join(SHIPPED)}")
    network(path.name)
    return path, path.name


def parameter_source_problem(spec: str) -> str | None:
    """Why ``bnn-pynq:<spec>`` names no parameter set, or None (the files themselves are read at export)."""
    try:
        parameter_dir(spec)
    except QnnflowError as err:
        return str(err)
    return None


def imported_source(spec: str, weights: str, count: int, seed: int):
    """The imported graph and golden I/O: ``count`` test images evenly spread over the test set
    (seeded uniform images without data) and the graph's own outputs on them."""
    from qnnflow.base.execute import execute_batch
    from qnnflow.models.export import Golden, dataset_inputs, seeded_inputs

    if weights != "random":
        raise QnnflowError(f"weights: '{weights}' cannot apply to model bnn-pynq:{spec}, which brings its own "
                           f"trained parameters; remove the weights: field")
    directory, name = parameter_dir(spec)
    model = import_bnn_pynq(directory, name)
    net = network(name)
    real = dataset_inputs(net.dataset, count)
    if real is not None:
        inputs, labels = real
        origin = f"{net.dataset} test images"
    else:
        inputs, labels = seeded_inputs(INPUT_SHAPE[net.topology], count, seed), np.zeros(0, dtype=np.int64)
        origin = f"seeded inputs in [0, 1), seed {seed}"
    return model, Golden(inputs, execute_batch(model, inputs), f"the imported {name} graph on {origin}", labels)
