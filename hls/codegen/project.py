"""The HLS project of a dataflow graph: top function, parameter headers, testbench, manifest.

``generate(model)`` takes a graph after ``to_hw`` (a float head on the host, the hardware
region, a float tail) and returns an ``HlsProject``: the files of ``OUT/hls/`` as bytes,
deterministic (the same graph gives byte-identical files), plus the stream formats of the
accelerator's input and output and the list of kernels.

- ``top.cpp``: one top function, ``qnnflow_top(in0, out0)``, AXI-Stream ports, no block
  control (``ap_ctrl_none``), a DATAFLOW region of kernel calls connected by streams.  One
  call processes one image.
- ``top.h``: its declaration and the port formats, for testbenches and drivers.
- ``params/<layer>.h``: a layer's configuration struct and its memories (weights and
  thresholds folded in the kernel's PE/SIMD order).
- ``testbench.cpp``: ``testbench IN.bin OUT.bin`` runs the top function on every image of a
  stream file (base/streams.py) and writes the output words.
- ``include/*.hpp``: a copy of the kernel library, so the directory is self-contained.
- ``manifest.json``: formats, kernels, and the streams' tap names.

The region holds dataflow nodes only (``to_hw`` removes the reshapes between them: a kernel
reads its producer's stream as its own attributes group it).  Where one kernel's output words
are narrower or wider than the next one's input words, the generator inserts a width
converter and says so in ``notes``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from onnx import NodeProto
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from qnnflow.base import __version__
from qnnflow.base.errors import QnnflowError
from qnnflow.hls.codegen.cpp import identifier
from qnnflow.hls.codegen.kernels import EMITTERS, Kernel, dwc_kernel
from qnnflow.base.values import datatype_holds
from qnnflow.hls.nodes.base import DOMAIN
from qnnflow.base.streams import MAX_WORD_BITS, StreamFormat

TOP_NAME = "qnnflow_top"
INCLUDE_DIR = Path(__file__).resolve().parents[1] / "include"


@dataclass
class Region:
    """The hardware region as a chain: its nodes in stream order, the tensor entering and leaving."""

    nodes: list
    input: str
    output: str


@dataclass
class HlsProject:
    files: dict[str, bytes]  # path relative to OUT/hls -> content
    top: str
    input_format: StreamFormat
    output_format: StreamFormat
    kernels: list[Kernel]
    region: Region
    notes: list[str] = field(default_factory=list)

    def write(self, directory: Path) -> None:
        """Write the files under ``directory`` (plain writes; build steps use ctx.write_artifact)."""
        for rel, data in self.files.items():
            path = Path(directory) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)

    @property
    def taps(self) -> list[Kernel]:
        """Kernels implementing a graph node, in order: their output streams are tapped in layer mode."""
        return [k for k in self.kernels if not k.inserted]


def hardware_region(model: ModelWrapper) -> Region:
    """The hardware region of a to_hw graph as a single chain of nodes; QnnflowError naming the node otherwise."""
    from qnnflow.hls.partition import find_partition

    names = set(find_partition(model).hardware)
    nodes = [n for n in model.graph.node if n.name in names]
    produced_inside = {o for n in nodes for o in n.output}
    current = None
    for node in nodes:
        # input 0 is the stream; the others are parameters
        dynamic = [i for i in node.input if i and model.get_initializer(i) is None][:1]
        if current is None:
            if len(dynamic) != 1 or dynamic[0] in produced_inside:
                raise QnnflowError(f"node '{node.name}' ({node.op_type}): the hardware region must start with a "
                                   f"node reading one stream, but it reads {dynamic}")
            region_input = dynamic[0]
        elif dynamic != [current]:
            raise QnnflowError(f"node '{node.name}' ({node.op_type}) reads {dynamic}, not only '{current}' from the "
                               f"node before it; the HLS back end builds a single chain of layers (no branches)")
        if len(node.output) != 1:
            raise QnnflowError(f"node '{node.name}' ({node.op_type}) has {len(node.output)} outputs; hardware "
                               f"nodes stream one output")
        if current is not None:
            outside = [c.name for c in model.find_consumers(current) or [] if c.name not in names]
            if outside or any(o.name == current for o in model.graph.output):
                raise QnnflowError(f"tensor '{current}' inside the hardware region is also read by "
                                   f"{outside or 'the graph output'}; the accelerator has one output stream")
        current = node.output[0]
    return Region(nodes, region_input, current)


def _compatible(node, producer: StreamFormat, consumer: StreamFormat, producer_name: str) -> None:
    p_dt, c_dt = DataType[producer.datatype], DataType[consumer.datatype]
    if p_dt.bitwidth() != c_dt.bitwidth() or not datatype_holds(c_dt, p_dt):
        raise QnnflowError(f"node '{node.name}' ({node.op_type}): expects {c_dt.name} input, but '{producer_name}' "
                           f"streams {p_dt.name}; set its input datatype to {p_dt.name}")
    if producer.elements != consumer.elements:
        raise QnnflowError(f"node '{node.name}' ({node.op_type}): expects {consumer.elements} elements per image, "
                           f"but '{producer_name}' streams {producer.elements}")


def _reading(inst, producer: StreamFormat, producer_name: str):
    """(node, note): the node as its kernel reads the stream.  A declared input type wider than what
    the producer streams (e.g. INT32 for INT7 scores) is narrowed to the streamed type: the values
    are the same, the words are the producer's."""
    declared, streamed = inst.input_datatype(), DataType[producer.datatype]
    if declared.bitwidth() <= streamed.bitwidth() or not datatype_holds(declared, streamed):
        return inst, None
    node = NodeProto()
    node.CopyFrom(inst.onnx_node)
    narrowed = getCustomOp(node)
    narrowed.set_nodeattr(inst._input_dt_attr, streamed.name)
    if narrowed.problems():
        return inst, None  # keep the declared type; the mismatch is reported with its fix
    return narrowed, (f"node '{node.name}' declares {declared.name} input; its kernel reads the {streamed.name} "
                      f"words '{producer_name}' streams")


def build_kernels(model: ModelWrapper, region: Region) -> tuple[list[Kernel], list[str]]:
    """Kernel instances for the region's nodes in order, converters inserted where word widths differ."""
    taken: set[str] = {TOP_NAME, "in0", "out0"}
    kernels: list[Kernel] = []
    notes: list[str] = []
    fmt, source = None, "the accelerator input"
    for node in region.nodes:
        if node.domain != DOMAIN:
            raise QnnflowError(f"node '{node.name}' ({node.op_type}) is in the hardware region but has no HLS "
                               f"kernel; convert it to a dataflow node or move it to the host")
        emitter = EMITTERS.get(node.op_type)
        if emitter is None:
            raise QnnflowError(f"node '{node.name}' ({node.op_type}): no HLS kernel implements {node.op_type} "
                               f"(kernels: {', '.join(EMITTERS)}); replace it or extend hls/codegen/kernels.py")
        inst, ident = getCustomOp(node), identifier(node.name, taken)
        if fmt is not None:
            inst, note = _reading(inst, fmt, source)
            notes += [note] if note else []
        kernel = emitter(inst, model, ident)
        if fmt is not None:
            _compatible(node, fmt, kernel.in_fmt, source)
            if fmt.lanes != kernel.in_fmt.lanes:
                total = fmt.packed_bits + kernel.in_fmt.packed_bits
                if total > MAX_WORD_BITS:
                    raise QnnflowError(f"node '{node.name}' ({node.op_type}): converting '{source}'s {fmt.packed_bits}"
                                       f"-bit words to its {kernel.in_fmt.packed_bits}-bit input words needs a "
                                       f"{total}-bit register (over {MAX_WORD_BITS}); make the foldings closer")
                ident = identifier(f"{node.name}_dwc", taken)
                in_fmt = StreamFormat(kernel.in_fmt.shape, fmt.lanes, kernel.in_fmt.datatype)
                kernels.append(dwc_kernel(node.name, ident, in_fmt, kernel.in_fmt, inserted=True))
                notes.append(f"inserted a width converter before '{node.name}': {fmt.packed_bits}-bit words from "
                             f"'{source}' to {kernel.in_fmt.packed_bits}-bit words")
        kernels.append(kernel)
        fmt, source = kernel.out_fmt, node.name
    if not kernels:
        raise QnnflowError("the hardware region has no dataflow node; run the to_hw step first")
    return kernels, notes


# ----- the generated files ---------------------------------------------------------------------


def _banner(model: ModelWrapper, what: str) -> str:
    graph = model.graph.name or "graph"
    return f"// {what}\n// Generated by qnnflow {__version__} from '{graph}'; do not edit.\n"


def _top_h(model, in_fmt: StreamFormat, out_fmt: StreamFormat) -> str:
    return f"""{_banner(model, "Top function of the accelerator: declaration and port formats (see base/streams.py).")}
#ifndef QNNFLOW_TOP_H
#define QNNFLOW_TOP_H

#include "streams.hpp"

// One call consumes one image from in0 and produces one image on out0.
enum {{
    QNNFLOW_IN_WORD_BITS = {in_fmt.word_bits},   // AXI word: {in_fmt.lanes} x {in_fmt.datatype}, zero padded
    QNNFLOW_IN_WORDS = {in_fmt.words},           // words per image
    QNNFLOW_OUT_WORD_BITS = {out_fmt.word_bits},  // AXI word: {out_fmt.lanes} x {out_fmt.datatype}, zero padded
    QNNFLOW_OUT_WORDS = {out_fmt.words},          // words per image, TLAST on the last
}};

void {TOP_NAME}(hls::stream<qnnflow::axis_word<QNNFLOW_IN_WORD_BITS> >& in0,
                 hls::stream<qnnflow::axis_word<QNNFLOW_OUT_WORD_BITS> >& out0);

#endif  // QNNFLOW_TOP_H
"""


def _top_cpp(model, kernels: list[Kernel], in_fmt: StreamFormat, out_fmt: StreamFormat) -> str:
    lines = [_banner(model, "Top function of the accelerator: a DATAFLOW chain of qnnflow kernels."),
             '#include "top.h"', '#include "qnnflow.hpp"']
    lines += [f'#include "params/{k.ident}.h"' for k in kernels if k.header]
    lines += ["", f"void {TOP_NAME}(hls::stream<qnnflow::axis_word<QNNFLOW_IN_WORD_BITS> >& in0,",
              f"                 hls::stream<qnnflow::axis_word<QNNFLOW_OUT_WORD_BITS> >& out0) {{",
              "#pragma HLS INTERFACE axis port=in0", "#pragma HLS INTERFACE axis port=out0",
              "#pragma HLS INTERFACE ap_ctrl_none port=return", "#pragma HLS DATAFLOW"]
    for k in kernels:
        lines += k.pragmas
    lines.append("")
    lines.append(f'    hls::stream<ap_uint<{in_fmt.packed_bits}> > s_input("input");')
    for k in kernels:
        lines.append(f'    hls::stream<ap_uint<{k.out_fmt.packed_bits}> > {k.ident}_out("{k.ident}_out");')
        lines.append(f"#pragma HLS STREAM variable={k.ident}_out depth={k.out_depth}")
        if k.out_impl is not None:
            lines.append(f"#pragma HLS BIND_STORAGE variable={k.ident}_out type=fifo impl={k.out_impl}")
    lines.append("")
    lines.append(f"    qnnflow::axis_to_stream<QNNFLOW_IN_WORD_BITS, {in_fmt.packed_bits}, QNNFLOW_IN_WORDS>"
                 f"(in0, s_input);")
    prev = "s_input"
    for k in kernels:
        label = f"width converter inserted before '{k.node}'" if k.inserted else f"{k.op_type} '{k.node}'"
        lines.append(f"    // {label}: {k.in_fmt.words} x {k.in_fmt.packed_bits}-bit words in, "
                     f"{k.out_fmt.words} x {k.out_fmt.packed_bits}-bit words out per image")
        lines.append("    " + k.call.format(inp=prev, out=f"{k.ident}_out"))
        if not k.inserted:
            lines.append(f'    QNNFLOW_TAP({k.ident}_out, "{k.ident}");')
        prev = f"{k.ident}_out"
    lines.append(f"    qnnflow::stream_to_axis<{out_fmt.packed_bits}, QNNFLOW_OUT_WORD_BITS, QNNFLOW_OUT_WORDS>"
                 f"({prev}, out0);")
    lines.append("}")
    return "\n".join(lines) + "\n"


TESTBENCH = r"""{banner}
// Usage: testbench IN.bin OUT.bin
// IN.bin holds whole images of QNNFLOW_IN_WORDS words of QNNFLOW_IN_WORD_BITS/8 bytes each
// (little-endian, see base/streams.py); OUT.bin receives QNNFLOW_OUT_WORDS words per image.
// Exit status 0 on success; 2 for bad arguments or files; 3 when the top function does not
// produce (or consume) exactly one image's words per call.
#include <cstdio>
#include <cstdlib>

#include "top.h"

template <int W>
static bool read_word(std::FILE* f, ap_uint<W>& word) {{
    word = 0;
    for (int b = 0; b < W / 8; b++) {{
        int c = std::fgetc(f);
        if (c == EOF) return false;
        word.range(8 * b + 7, 8 * b) = c;
    }}
    return true;
}}

template <int W>
static void write_word(std::FILE* f, const ap_uint<W>& word) {{
    for (int b = 0; b < W / 8; b++) std::fputc(int(word.range(8 * b + 7, 8 * b)), f);
}}

int main(int argc, char** argv) {{
    if (argc != 3) {{
        std::fprintf(stderr, "usage: %s IN.bin OUT.bin\n", argv[0]);
        return 2;
    }}
    std::FILE* in_file = std::fopen(argv[1], "rb");
    if (!in_file) {{
        std::fprintf(stderr, "testbench: cannot open %s\n", argv[1]);
        return 2;
    }}
    std::fseek(in_file, 0, SEEK_END);
    const long size = std::ftell(in_file);
    std::fseek(in_file, 0, SEEK_SET);
    const long image_bytes = long(QNNFLOW_IN_WORDS) * (QNNFLOW_IN_WORD_BITS / 8);
    if (size % image_bytes != 0) {{
        std::fprintf(stderr, "testbench: %s has %ld bytes, not a whole number of %ld-byte images\n", argv[1], size,
                     image_bytes);
        return 2;
    }}
    std::FILE* out_file = std::fopen(argv[2], "wb");
    if (!out_file) {{
        std::fprintf(stderr, "testbench: cannot create %s\n", argv[2]);
        return 2;
    }}
    const long images = size / image_bytes;
    hls::stream<qnnflow::axis_word<QNNFLOW_IN_WORD_BITS> > in0("in0");
    hls::stream<qnnflow::axis_word<QNNFLOW_OUT_WORD_BITS> > out0("out0");
    for (long image = 0; image < images; image++) {{
        for (unsigned i = 0; i < QNNFLOW_IN_WORDS; i++) {{
            qnnflow::axis_word<QNNFLOW_IN_WORD_BITS> word;
            read_word(in_file, word.data);
            word.keep = -1;
            word.strb = -1;
            word.last = (i == QNNFLOW_IN_WORDS - 1);
            in0.write(word);
        }}
        {top}(in0, out0);
        if (!in0.empty() || out0.size() != QNNFLOW_OUT_WORDS) {{
            std::fprintf(stderr, "testbench: image %ld: the top function left %lu input words and produced %lu "
                         "output words (expected 0 and %u)\n", image, (unsigned long)in0.size(),
                         (unsigned long)out0.size(), (unsigned)QNNFLOW_OUT_WORDS);
            return 3;
        }}
        for (unsigned i = 0; i < QNNFLOW_OUT_WORDS; i++) {{
            qnnflow::axis_word<QNNFLOW_OUT_WORD_BITS> word = out0.read();
            if (word.last != (i == QNNFLOW_OUT_WORDS - 1)) {{
                std::fprintf(stderr, "testbench: image %ld: TLAST is %d on output word %u\n", image, int(word.last), i);
                return 3;
            }}
            write_word(out_file, word.data);
        }}
    }}
    std::fclose(in_file);
    std::fclose(out_file);
    std::printf("testbench: %ld images\n", images);
    return 0;
}}
"""


def _manifest(model, kernels, in_fmt, out_fmt, notes) -> str:
    data = {
        "generator": f"qnnflow {__version__}",
        "graph": model.graph.name or "graph",
        "top": TOP_NAME,
        "input": in_fmt.to_dict(),
        "output": out_fmt.to_dict(),
        "kernels": [
            {"ident": k.ident, "node": k.node, "op_type": k.op_type, "in": k.in_fmt.to_dict(),
             "out": k.out_fmt.to_dict(), "header": f"params/{k.ident}.h" if k.header else None,
             "tap": None if k.inserted else f"{k.ident}.bin"}
            for k in kernels
        ],
        "notes": notes,
    }
    return json.dumps(data, indent=2) + "\n"


def generate(model: ModelWrapper) -> HlsProject:
    """The HLS project of ``model``'s hardware region; QnnflowError naming the node for anything unbuildable."""
    region = hardware_region(model)
    kernels, notes = build_kernels(model, region)
    in_fmt, out_fmt = kernels[0].in_fmt, kernels[-1].out_fmt
    for fmt, what in ((in_fmt, "input"), (out_fmt, "output")):
        if fmt.word_bits > MAX_WORD_BITS:
            raise QnnflowError(f"the accelerator's {what} words would be {fmt.word_bits} bits, over "
                               f"{MAX_WORD_BITS}; fold the {what} layer narrower")
    files: dict[str, bytes] = {}
    files["top.h"] = _top_h(model, in_fmt, out_fmt).encode()
    files["top.cpp"] = _top_cpp(model, kernels, in_fmt, out_fmt).encode()
    for k in kernels:
        if k.header:
            files[f"params/{k.ident}.h"] = k.header.encode()
    banner = _banner(model, "C simulation testbench: stream file in, stream file out.")
    files["testbench.cpp"] = TESTBENCH.format(banner=banner, top=TOP_NAME).encode()
    for header in sorted(INCLUDE_DIR.glob("*.hpp")):
        files[f"include/{header.name}"] = header.read_bytes()
    files["manifest.json"] = _manifest(model, kernels, in_fmt, out_fmt, notes).encode()
    files = dict(sorted(files.items()))
    return HlsProject(files, TOP_NAME, in_fmt, out_fmt, kernels, region, notes)
