"""C++ text helpers for the generated HLS sources: identifiers, types, array initialisers.

Parameter memories are emitted as plain unsigned integer arrays ("limbs", see
``join_limbs`` in hls/include/streams.hpp): g++ needs about a second for half a million
such values, but many minutes and gigabytes for the same array of ``ap_uint`` objects.
"""

from __future__ import annotations

import re

import numpy as np
from qonnx.core.datatype import DataType

from qnnflow.base.streams import pack_lanes

VALUES_PER_LINE = 32

_POD_UNSIGNED = ((8, "uint8_t"), (16, "uint16_t"), (32, "uint32_t"), (64, "uint64_t"))
_POD_SIGNED = ((8, "int8_t"), (16, "int16_t"), (32, "int32_t"), (64, "int64_t"))


def identifier(name: str, taken: set[str]) -> str:
    """A C++ identifier for an ONNX name (non-word characters become '_'), unique among ``taken``."""
    base = re.sub(r"\W", "_", name, flags=re.ASCII) or "layer"
    if base[0].isdigit():
        base = "L" + base
    ident, k = base, 1
    while ident in taken:
        ident, k = f"{base}_{k}", k + 1
    taken.add(ident)
    return ident


def element_type(datatype: str) -> str:
    """The kernel library's element type for a qonnx DataType name (streams.hpp)."""
    dt = DataType[datatype]
    if dt.name == "BIPOLAR":
        return "qnnflow::Bipolar"
    return f"qnnflow::Int<{dt.bitwidth()}, {'true' if dt.signed() else 'false'}>"


def ap_type(datatype: str) -> str:
    """ap_int<B> / ap_uint<B> for an integer DataType (BIPOLAR: ap_int<2>)."""
    dt = DataType[datatype]
    if dt.name == "BIPOLAR":
        return "ap_int<2>"
    return f"ap_int<{dt.bitwidth()}>" if dt.signed() else f"ap_uint<{dt.bitwidth()}>"


def signed_bits(lo: int, hi: int) -> int:
    """Bits of the narrowest two's complement type holding [lo, hi] (at least 2)."""
    bits = 2
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def pod_signed(lo: int, hi: int) -> str | None:
    """The narrowest of int8_t..int64_t holding [lo, hi], or None."""
    for bits, name in _POD_SIGNED:
        if -(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1:
            return name
    return None


def _limb(word_bits: int) -> tuple[int, str]:
    return next((b, t) for b, t in _POD_UNSIGNED if word_bits <= b or b == 64)


def limb_bits(word_bits: int) -> int:
    """Bits a ``word_bits`` memory word occupies as ``memory_limbs`` stores it (whole limbs)."""
    bits = _limb(word_bits)[0]
    return -(-word_bits // bits) * bits


def memory_limbs(values: np.ndarray, datatype: str) -> tuple[str, np.ndarray]:
    """Memory words (..., lanes) of ``datatype`` elements as (limb C type, (..., limbs) unsigned array).

    A word of lanes * bits bits is one uint8/16/32_t when it fits, else 64-bit limbs,
    least significant first, element i at bits [i*bits, (i+1)*bits).
    """
    values = np.asarray(values)
    word = values.shape[-1] * DataType[datatype].bitwidth()
    bits, ctype = _limb(word)
    raw = pack_lanes(values, datatype, limb_bits(word))  # (..., bytes)
    return ctype, raw.view(np.dtype(f"<u{bits // 8}"))


def _literals(flat: np.ndarray, ctype: str) -> list[str]:
    values = flat.tolist()
    if ctype == "uint64_t":
        return [f"0x{v:x}ULL" if v > 9 else str(v) for v in values]
    if ctype == "int64_t":
        return [f"({v + 1}LL - 1)" if v == -(1 << 63) else f"{v}LL" for v in values]
    return [str(v) for v in values]


def array_definition(ctype: str, name: str, array: np.ndarray) -> str:
    """``static const ctype name[d0][d1]... = {...};`` with the values in row-major order (brace elision)."""
    dims = "".join(f"[{d}]" for d in array.shape)
    literals = _literals(np.asarray(array).reshape(-1), ctype)
    lines = [",".join(literals[i : i + VALUES_PER_LINE]) for i in range(0, len(literals), VALUES_PER_LINE)]
    body = ",\n".join(lines)
    return f"static const {ctype} {name}{dims} = {{\n{body}\n}};\n"


def config_struct(name: str, constants: dict[str, int], types: dict[str, str]) -> str:
    """A kernel configuration struct: integer constants as an enum, element/accumulator types as typedefs."""
    lines = [f"struct {name} {{"]
    lines.append("    enum {")
    lines += [f"        {key} = {int(value)}," for key, value in constants.items()]
    lines.append("    };")
    lines += [f"    typedef {ctype} {alias};" for alias, ctype in types.items()]
    lines.append("};")
    return "\n".join(lines) + "\n"
