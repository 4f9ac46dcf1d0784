"""The stream word format, defined once: how tensors become words on an AXI-Stream and back.

A dataflow stream carries one image as a sequence of *words*.  A tensor of one image
(its normal shape without the batch axis, e.g. NHWC ``(H, W, C)``) is read in row-major
order and cut into words of ``lanes`` elements: the folded shape is
``(*shape[:-1], shape[-1] // lanes, lanes)``.

Inside a word, element i sits at bits ``[i*bits, (i+1)*bits)``, least significant first.
Signed types are two's complement in ``bits`` bits; BINARY is 0/1; BIPOLAR is one bit,
1 for +1 and 0 for -1.  Between kernels a word is exactly ``lanes * bits`` wide; on the
accelerator's AXI-Stream ports (and in files) it is zero-padded to a whole number of
bytes, ``word_bits``, and stored little-endian (byte 0 holds bits 0..7).  The output
port raises TLAST on the last word of every image.

On the accelerator's AXI-Stream ports (``PortFormat``) an image is its elements' bits back
to back (element i at bits ``[i*bits, (i+1)*bits)`` of the image), cut into words of the
board's AXI width (64 or 128 bits) with the last word of an image zero padded: a DMA moves
the buffer as it is, and no element width or folding shows on the bus.  The output port
raises TLAST on the last word of every image.

Stream files are words back to back, images one after another, no header: the C++
testbench's input and output and the board driver's buffers hold port words
(``PortFormat``), the taps of cppsim's layer mode hold a kernel's own words
(``StreamFormat``, each padded to whole bytes).

The C++ side of the same format is ``hls/include/streams.hpp``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qnnflow.base.errors import QnnflowError
from qnnflow.base.values import value_problem

BYTE_BITS = 8
MAX_WORD_BITS = 4096  # ap_uint's widest type with AP_INT_MAX_W=4096 (streams.hpp)

__all__ = [
    "IntType",
    "StreamFormat",
    "PortFormat",
    "encode_elements",
    "decode_elements",
    "pack_lanes",
    "unpack_lanes",
    "read_stream_file",
    "write_stream_file",
]


@dataclass(frozen=True)
class IntType:
    """An integer element type by its qonnx DataType name (INT4, UINT8, BINARY, BIPOLAR, TERNARY).

    Parsed here rather than through qonnx, so that this module needs numpy alone: the board
    driver packs its buffers with a copy of it, where qonnx is not installed.
    """

    name: str
    bits: int
    is_signed: bool

    def bitwidth(self) -> int:
        return self.bits

    def signed(self) -> bool:
        return self.is_signed

    def is_integer(self) -> bool:
        return True

    def min(self) -> int:
        if self.name in ("BIPOLAR", "TERNARY"):
            return -1
        return -(1 << (self.bits - 1)) if self.is_signed else 0

    def max(self) -> int:
        if self.name in ("BIPOLAR", "TERNARY"):
            return 1
        return (1 << (self.bits - 1)) - 1 if self.is_signed else (1 << self.bits) - 1


_SPECIAL_TYPES = {"BINARY": (1, False), "BIPOLAR": (1, True), "TERNARY": (2, True)}
_NON_INTEGER = re.compile(r"(FLOAT|FIXED|SCALEDINT|ARBPREC).*")


def _datatype(name: str) -> IntType:
    match = re.fullmatch(r"(U?)INT(\d+)", str(name))
    if match:
        bits, signed = int(match.group(2)), not match.group(1)
    elif name in _SPECIAL_TYPES:
        bits, signed = _SPECIAL_TYPES[name]
    elif _NON_INTEGER.fullmatch(str(name)):
        raise QnnflowError(f"stream datatype {name} is not an integer type; streams carry integers only")
    else:
        raise QnnflowError(f"stream datatype '{name}' is not a qonnx DataType; use e.g. INT4, UINT8, BINARY")
    if bits < 1 or bits > 64:
        raise QnnflowError(f"stream datatype {name} is wider than 64 bits, which streams do not support")
    return IntType(str(name), bits, signed)


def encode_elements(values: np.ndarray, datatype: str) -> np.ndarray:
    """Integer values as their raw ``bits``-bit codes (uint64): two's complement, BIPOLAR +1 -> 1, -1 -> 0."""
    dt = _datatype(datatype)
    values = np.asarray(values)
    if dt.name == "BIPOLAR":
        return (values > 0).astype(np.uint64)
    bits = dt.bitwidth()
    codes = np.asarray(values, dtype=np.int64).astype(np.uint64)  # two's complement in 64 bits
    return codes if bits == 64 else codes & np.uint64((1 << bits) - 1)


def decode_elements(codes: np.ndarray, datatype: str) -> np.ndarray:
    """Raw ``bits``-bit codes (unsigned integers) back to their int64 values."""
    dt = _datatype(datatype)
    codes = np.asarray(codes, dtype=np.uint64)
    if dt.name == "BIPOLAR":
        return codes.astype(np.int64) * 2 - 1
    bits = dt.bitwidth()
    values = codes.astype(np.int64)
    if dt.signed() and bits < 64:
        values = np.where(values >= (1 << (bits - 1)), values - (1 << bits), values)
    return values


def pack_lanes(values: np.ndarray, datatype: str, word_bits: int) -> np.ndarray:
    """(..., lanes) integers -> (..., word_bits // 8) uint8: element i at bits [i*b, (i+1)*b), little-endian bytes.

    ``word_bits`` (a multiple of 8, at least lanes * b) is the padded word width.
    """
    values = np.asarray(values)
    bits = _datatype(datatype).bitwidth()
    lanes = values.shape[-1]
    if word_bits % BYTE_BITS or word_bits < lanes * bits:
        raise ValueError(f"word_bits={word_bits} must be a multiple of 8 holding {lanes} x {bits} bits")
    codes = encode_elements(values, datatype)
    shifts = np.arange(bits, dtype=np.uint64)
    bit_array = ((codes[..., None] >> shifts) & np.uint64(1)).astype(np.uint8)  # (..., lanes, bits)
    bit_array = bit_array.reshape(*values.shape[:-1], lanes * bits)
    pad = word_bits - lanes * bits
    if pad:
        bit_array = np.concatenate([bit_array, np.zeros((*values.shape[:-1], pad), np.uint8)], axis=-1)
    return np.packbits(bit_array, axis=-1, bitorder="little")


def unpack_lanes(data: np.ndarray, lanes: int, datatype: str) -> np.ndarray:
    """(..., word_bytes) uint8 words -> (..., lanes) int64 values; the inverse of ``pack_lanes``."""
    data = np.asarray(data, dtype=np.uint8)
    bits = _datatype(datatype).bitwidth()
    bit_array = np.unpackbits(data, axis=-1, bitorder="little")[..., : lanes * bits]
    bit_array = bit_array.reshape(*data.shape[:-1], lanes, bits).astype(np.uint64)
    codes = np.zeros(bit_array.shape[:-1], np.uint64)
    for b in range(bits):  # bits <= 64: a short loop of whole-array operations
        codes |= bit_array[..., b] << np.uint64(b)
    return decode_elements(codes, datatype)


class _ImageFormat:
    """What both formats share: one image's ``shape`` of ``datatype`` elements, checked and counted."""

    shape: tuple[int, ...]
    datatype: str

    def _check_image(self, what: str) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        _datatype(self.datatype)
        if not self.shape or min(self.shape) < 1:
            raise ValueError(f"{what} shape {self.shape} must be non-empty positive dimensions")

    @property
    def elem_bits(self) -> int:
        return _datatype(self.datatype).bitwidth()

    @property
    def elements(self) -> int:
        """Elements per image."""
        return math.prod(self.shape)

    def _images(self, tensor, what: str) -> np.ndarray:
        """``tensor`` as (N, elements) after checking it holds whole images of ``datatype`` integers."""
        tensor = np.asarray(tensor)
        if tensor.size % self.elements:
            raise QnnflowError(f"a tensor of shape {tensor.shape} is not a whole number of {self.shape} images")
        problem = value_problem(tensor, _datatype(self.datatype))
        if problem:
            raise QnnflowError(f"cannot pack a tensor that {problem} into a {self.datatype} {what}")
        return tensor.reshape(-1, self.elements)

    def _raw_images(self, data, image_bytes: int, unit: str) -> np.ndarray:
        """Bytes or a uint8 array of whole images as (N, image_bytes) uint8."""
        raw = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else np.asarray(data)
        raw = raw.reshape(-1)
        if raw.size % image_bytes:
            raise QnnflowError(f"{raw.size} bytes are not a whole number of {image_bytes}-byte images ({unit})")
        return raw.reshape(-1, image_bytes)


@dataclass(frozen=True)
class StreamFormat(_ImageFormat):
    """The words of one image's tensor on a stream.

    ``shape``: the tensor of one image without the batch axis (elements stream in its
    row-major order); ``lanes``: elements per word, dividing ``shape[-1]``; ``datatype``:
    the qonnx DataType name of the elements.
    """

    shape: tuple[int, ...]
    lanes: int
    datatype: str

    def __post_init__(self):
        self._check_image("stream")
        if self.lanes < 1 or self.shape[-1] % self.lanes:
            raise ValueError(f"lanes={self.lanes} must divide the last dimension of {self.shape}")

    @property
    def packed_bits(self) -> int:
        """Bits of a word between kernels: lanes * element bits."""
        return self.lanes * self.elem_bits

    @property
    def word_bits(self) -> int:
        """Bits of a word on an AXI-Stream port and in files: packed_bits rounded up to whole bytes."""
        return -(-self.packed_bits // BYTE_BITS) * BYTE_BITS

    @property
    def word_bytes(self) -> int:
        return self.word_bits // BYTE_BITS

    @property
    def words(self) -> int:
        """Words per image."""
        return self.elements // self.lanes

    @property
    def image_bytes(self) -> int:
        return self.words * self.word_bytes

    @property
    def folded_shape(self) -> tuple[int, ...]:
        return (*self.shape[:-1], self.shape[-1] // self.lanes, self.lanes)

    def pack(self, tensor: np.ndarray) -> np.ndarray:
        """(N, *shape) (or anything with N * elements values) integers -> (N, words, word_bytes) uint8."""
        lanes = self._images(tensor, "stream").reshape(-1, self.words, self.lanes)
        return pack_lanes(lanes, self.datatype, self.word_bits)

    def unpack(self, data) -> np.ndarray:
        """Words (bytes or a uint8 array of whole images) -> (N, *shape) int64."""
        raw = self._raw_images(data, self.image_bytes, f"{self.words} words of {self.word_bytes} bytes")
        values = unpack_lanes(raw.reshape(-1, self.words, self.word_bytes), self.lanes, self.datatype)
        return values.reshape(-1, *self.shape)

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "lanes": self.lanes, "datatype": self.datatype,
                "elem_bits": self.elem_bits, "word_bits": self.word_bits, "words": self.words}

    @classmethod
    def from_dict(cls, d: dict) -> "StreamFormat":
        return cls(tuple(d["shape"]), int(d["lanes"]), str(d["datatype"]))


@dataclass(frozen=True)
class PortFormat(_ImageFormat):
    """One image's tensor on an AXI-Stream port: the elements' bits back to back, in ``axi_bits`` words.

    ``shape`` and ``datatype`` as in StreamFormat; ``axi_bits`` (a multiple of 8) is the bus
    width.  The last word of an image is zero padded past the image's ``image_bits``.
    """

    shape: tuple[int, ...]
    datatype: str
    axi_bits: int

    def __post_init__(self):
        self._check_image("port")
        if self.axi_bits < BYTE_BITS or self.axi_bits % BYTE_BITS:
            raise ValueError(f"axi_bits={self.axi_bits} must be a positive multiple of 8")

    @property
    def image_bits(self) -> int:
        return self.elements * self.elem_bits

    @property
    def words(self) -> int:
        """AXI words per image."""
        return -(-self.image_bits // self.axi_bits)

    @property
    def word_bytes(self) -> int:
        return self.axi_bits // BYTE_BITS

    @property
    def image_bytes(self) -> int:
        return self.words * self.word_bytes

    def pack(self, tensor: np.ndarray) -> np.ndarray:
        """(N, *shape) (or anything with N * elements values) integers -> (N, words, word_bytes) uint8."""
        images = pack_lanes(self._images(tensor, "port"), self.datatype, self.words * self.axi_bits)
        return images.reshape(-1, self.words, self.word_bytes)

    def unpack(self, data) -> np.ndarray:
        """Port words (bytes or a uint8 array of whole images) -> (N, *shape) int64."""
        raw = self._raw_images(data, self.image_bytes, f"{self.words} words of {self.axi_bits} bits")
        return unpack_lanes(raw, self.elements, self.datatype).reshape(-1, *self.shape)

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "datatype": self.datatype, "elem_bits": self.elem_bits,
                "axi_bits": self.axi_bits, "words": self.words, "image_bits": self.image_bits}


def write_stream_file(path: Path, fmt: StreamFormat | PortFormat, tensor: np.ndarray) -> int:
    """Write a batch of images as a stream file; returns the number of images."""
    words = fmt.pack(tensor)
    Path(path).write_bytes(words.tobytes())
    return words.shape[0]


def read_stream_file(path: Path, fmt: StreamFormat | PortFormat) -> np.ndarray:
    """Read a stream file written by ``write_stream_file`` or the C++ testbench: (N, *shape) int64."""
    return fmt.unpack(Path(path).read_bytes())
