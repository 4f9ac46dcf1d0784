"""What a node kind's ``emit_rtl`` returns (an ``RtlUnit``: one instance of a Verilog module of
hls/rtl/ with its parameters and memory files) and the helpers the RTL emitters share.

The unit's streams carry the same words as its HLS kernel's (``formats``: element i of a word
at bits [i*bits, (i+1)*bits), base/streams.py); its memories are ``$readmemh`` files, one word
a line, whose layout each module's header comment states.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qnnflow.base.streams import StreamFormat, pack_lanes

MEM_DIR = "mem"  # memory files, relative to the RTL project (simulators and Yosys run there)


@dataclass
class RtlUnit:
    """A module instance in the generated top."""

    node: str  # the ONNX node it implements
    op_type: str
    ident: str  # Verilog name prefix: wrapper module qf_<ident>, memory files mem/<ident>_*.mem
    module: str  # the hls/rtl/ module instantiated
    params: dict  # Verilog parameter -> int or str
    in_fmt: StreamFormat
    out_fmt: StreamFormat
    memories: dict[str, bytes] = field(default_factory=dict)  # path relative to the project -> $readmemh text
    buffers_output: bool = False  # the unit is itself its output stream's FIFO (no depth-2 FIFO after it)
    more_inputs: tuple[StreamFormat, ...] = ()  # input streams 1, ... (a join's), ports in1_*, ...
    more_outputs: tuple[StreamFormat, ...] = ()  # output streams 1, ... (a fork's), ports out1_*, ...
    out_depths: tuple[int, ...] = ()  # the FIFO depth of each output stream; empty: STREAM_DEPTH each

    @property
    def in_fmts(self) -> list[StreamFormat]:
        return [self.in_fmt, *self.more_inputs]

    @property
    def out_fmts(self) -> list[StreamFormat]:
        return [self.out_fmt, *self.more_outputs]


def memory_path(ident: str, what: str) -> str:
    return f"{MEM_DIR}/{ident}_{what}.mem"


def rom_text(lanes: np.ndarray, datatype: str) -> bytes:
    """``$readmemh`` text of a ROM: row r of ``lanes`` (rows, lanes) integers of ``datatype`` is word r,
    lane i at bits [i*bits, (i+1)*bits), in hex digits for the word's width, most significant first."""
    lanes = np.asarray(lanes)
    rows, count = lanes.shape
    bits = count * StreamFormat((count,), count, datatype).elem_bits
    padded = -(-bits // 8) * 8
    data = pack_lanes(lanes, datatype, padded)  # (rows, bytes) little-endian
    digits = -(-bits // 4)
    text = [data[r, ::-1].tobytes().hex()[-digits:] for r in range(rows)]
    return ("\n".join(text) + "\n").encode()


def signed_type(bits: int) -> str:
    """The DataType name of ``bits``-bit two's complement values (threshold slots)."""
    return f"INT{bits}"


def element_params(prefix: str, dt) -> dict:
    """<prefix>_BITS, <prefix>_SIGNED, <prefix>_BIPOLAR of a qonnx DataType, as the modules decode lanes."""
    return {f"{prefix}_BITS": dt.bitwidth(), f"{prefix}_SIGNED": int(dt.signed() and dt.name != "BIPOLAR"),
            f"{prefix}_BIPOLAR": int(dt.name == "BIPOLAR")}


def rom_style(memory) -> str:
    """The ROM module's STYLE for a node's ``memory`` (base.Memory): the style its estimate binds it as
    (``Memory.bound``), except that UltraRAM is not inferred from ROMs: block."""
    bound = memory.bound()
    return {"ultra": "block"}.get(bound, bound)
