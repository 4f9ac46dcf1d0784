"""BNN-PYNQ's packed parameter files: ``L-P-weights.bin`` and ``L-P-thres.bin`` per layer L and PE P.

One layer is a weight matrix (rows = neurons, columns = synapses, both already padded as
the overlay holds them) and, unless it is a classifier without activation, NT thresholds
per row.  Row n lives in PE ``n % PE`` at local index ``nf = n // PE``; its columns are cut
into SF = cols / SIMD words of SIMD lanes.

- weights: per PE, NF * SF little-endian uint64 words, word ``nf * SF + sf``; a binary
  weight is one bit (1 = +1, 0 = -1), a 2-bit weight two bits in two's complement; the bits
  above the last lane are 0;
- thresholds: per PE, NF * NT little-endian int64, ordered [nf][t].

This module only packs and unpacks; what the numbers mean is ``models/bnn_pynq.py``'s business.
The folding (PE, SIMD) of a layer is read from the files: PE is the number of files, SIMD
follows from the words per file and the layer's padded size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qnnflow.base.errors import QnnflowError

WORD_BITS = 64
_FILE_RE = re.compile(r"^(\d+)-(\d+)-(weights|thres)\.bin$")


@dataclass
class PackedLayer:
    """One layer as the overlay holds it: padded weights (rows, cols), thresholds (rows, NT) or None."""

    weights: np.ndarray  # int64: +-1 for 1-bit weights, -2..1 for 2-bit weights
    thresholds: np.ndarray | None  # int64, in the files' order
    pe: int
    simd: int


def is_parameter_file(name: str) -> bool:
    return _FILE_RE.match(name) is not None


def weights_path(directory: Path, layer: int, pe: int) -> Path:
    return Path(directory) / f"{layer}-{pe}-weights.bin"


def thresholds_path(directory: Path, layer: int, pe: int) -> Path:
    return Path(directory) / f"{layer}-{pe}-thres.bin"


def layers_in(directory: Path) -> set[int]:
    """The layer indices that have at least one parameter file in ``directory``."""
    found = set()
    for path in Path(directory).iterdir():
        match = _FILE_RE.match(path.name)
        if match:
            found.add(int(match.group(1)))
    return found


def _pe_count(directory: Path, layer: int) -> int:
    indices = sorted(int(m.group(2)) for p in Path(directory).iterdir()
                     if (m := _FILE_RE.match(p.name)) and int(m.group(1)) == layer and m.group(3) == "weights")
    if not indices:
        raise QnnflowError(f"{weights_path(directory, layer, 0)} not found: layer {layer}'s weights are missing; "
                           f"copy the complete parameter set")
    missing = sorted(set(range(indices[-1] + 1)) - set(indices))
    if missing:
        raise QnnflowError(f"{weights_path(directory, layer, missing[0])} not found (layer {layer} has files for "
                           f"PE 0..{indices[-1]}); copy the complete parameter set")
    return len(indices)


def _read_words(path: Path, dtype: str) -> np.ndarray:
    if not path.is_file():
        raise QnnflowError(f"{path} not found; copy the complete parameter set")
    raw = path.read_bytes()
    if len(raw) % 8:
        raise QnnflowError(f"{path} is {len(raw)} bytes, not a whole number of 64-bit words: the file is truncated; "
                           f"copy it again")
    return np.frombuffer(raw, dtype=dtype)


def read_layer(directory: Path, layer: int, rows: int, cols: int, weight_bits: int, n_thresholds: int) -> PackedLayer:
    """Layer ``layer`` of a parameter directory, for a layer of ``rows`` x ``cols`` (padded) weights.

    ``n_thresholds`` is NT (0: no threshold files, as for CNV's classifier).  Any file that does
    not fit, a truncated one or one from another folding, is named in the error.
    """
    directory = Path(directory)
    pe = _pe_count(directory, layer)
    if rows % pe:
        raise QnnflowError(f"{directory}: layer {layer} has {pe} PE files, which does not divide its {rows} rows: "
                           f"these files are not of this network (check the network name)")
    nf = rows // pe
    words = [_read_words(weights_path(directory, layer, p), "<u8") for p in range(pe)]
    wmem = len(words[0])
    for p, w in enumerate(words):
        if len(w) != wmem:
            raise QnnflowError(f"{weights_path(directory, layer, p)} holds {len(w)} words but "
                               f"{weights_path(directory, layer, 0).name} holds {wmem}: the file is truncated or "
                               f"from another folding; copy the parameter set again")
    sf = wmem // nf if nf else 0
    lanes_per_word = WORD_BITS // weight_bits
    if wmem == 0 or wmem % nf or cols % sf or cols // sf > lanes_per_word:
        raise QnnflowError(f"{weights_path(directory, layer, 0)} holds {wmem} words, which fits no folding of a "
                           f"{rows} x {cols} layer with PE={pe} (words = rows/PE x cols/SIMD, SIMD <= "
                           f"{lanes_per_word}): the file is truncated or the files are not of this network")
    simd = cols // sf
    packed = np.stack(words).reshape(pe, nf, sf)
    values, high = _unpack_lanes(packed, simd, weight_bits)
    if high.any():
        p = int(np.argwhere(high)[0][0])
        raise QnnflowError(f"{weights_path(directory, layer, p)} has bits set above lane {simd - 1} (SIMD={simd} from "
                           f"its size): the folding does not match the files; copy the parameter set again")
    # [pe][nf][sf][simd] -> row nf*PE + pe, column sf*SIMD + lane
    weights = values.transpose(1, 0, 2, 3).reshape(rows, cols)
    thresholds = None
    if n_thresholds:
        parts = []
        for p in range(pe):
            path = thresholds_path(directory, layer, p)
            t = _read_words(path, "<i8")
            if len(t) != nf * n_thresholds:
                raise QnnflowError(f"{path} holds {len(t)} thresholds, expected {nf} neurons x {n_thresholds} "
                                   f"(PE={pe}): the file is truncated or from another network; copy it again")
            parts.append(t.reshape(nf, n_thresholds))
        thresholds = np.stack(parts).transpose(1, 0, 2).reshape(rows, n_thresholds).astype(np.int64)
    elif thresholds_path(directory, layer, 0).exists():
        raise QnnflowError(f"{thresholds_path(directory, layer, 0)} exists, but layer {layer} of this network has no "
                           f"thresholds: the files are of another network (check the network name)")
    return PackedLayer(weights.astype(np.int64), thresholds, pe, simd)


def _unpack_lanes(words: np.ndarray, simd: int, weight_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """uint64 words (...) -> (lane values (..., simd), whether any bit above the lanes is set (...))."""
    bits = np.unpackbits(words.astype("<u8").view(np.uint8).reshape(*words.shape, 8), axis=-1, bitorder="little")
    used = simd * weight_bits
    high = bits[..., used:].any(axis=-1)
    if weight_bits == 1:
        return bits[..., :used].astype(np.int64) * 2 - 1, high
    pairs = bits[..., :used].reshape(*words.shape, simd, 2).astype(np.int64)
    code = pairs[..., 0] + 2 * pairs[..., 1]
    return np.where(code >= 2, code - 4, code), high


def _pack_lanes(values: np.ndarray, weight_bits: int) -> np.ndarray:
    """Lane values (..., simd) -> uint64 words (...), the inverse of _unpack_lanes."""
    *lead, simd = values.shape
    if weight_bits == 1:
        bits = (values > 0).astype(np.uint8)
    else:
        code = np.where(values < 0, values + 4, values).astype(np.uint8)
        bits = np.stack([code & 1, code >> 1], axis=-1).reshape(*lead, simd * 2)
    padded = np.zeros((*lead, WORD_BITS), np.uint8)
    padded[..., : bits.shape[-1]] = bits
    return np.packbits(padded, axis=-1, bitorder="little").view("<u8").reshape(*lead)


def write_layer(directory: Path, layer: int, packed: PackedLayer, weight_bits: int) -> list[Path]:
    """Write layer ``layer``'s files into ``directory``; returns the paths written."""
    directory = Path(directory)
    rows, cols = packed.weights.shape
    pe, simd = packed.pe, packed.simd
    nf, sf = rows // pe, cols // simd
    lanes = packed.weights.reshape(nf, pe, sf, simd).transpose(1, 0, 2, 3)  # [pe][nf][sf][simd]
    words = _pack_lanes(lanes, weight_bits)
    written = []
    for p in range(pe):
        path = weights_path(directory, layer, p)
        path.write_bytes(words[p].reshape(-1).astype("<u8").tobytes())
        written.append(path)
        if packed.thresholds is not None:
            path = thresholds_path(directory, layer, p)
            per_pe = packed.thresholds.reshape(nf, pe, -1)[:, p, :]
            path.write_bytes(per_pe.reshape(-1).astype("<i8").tobytes())
            written.append(path)
    return written


def threshold_files(directory: Path, layer: int) -> list[Path]:
    """The ``layer-P-thres.bin`` files present in ``directory``, for any P."""
    return sorted(Path(directory).glob(f"{layer}-*-thres.bin"))
