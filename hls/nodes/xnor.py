"""Bit-packed XNOR-popcount matrix product: the arithmetic of a binarised MVAU.

With x and w holding bits (0 encodes -1, 1 encodes +1), the bipolar dot product of
row i and column j is ``2 * matches - K`` where ``matches[i, j]`` counts the positions
k with ``x[i, k] == w[k, j]``.  We compute ``matches = K - popcount(x_i XOR w_j)`` on
64-bit words: zero padding of the last word XORs to zero, so it never counts as a
mismatch and needs no mask.

Two kernels compute it.  The native one (xnor_native: a C++ loop compiled once per
machine, xor and popcount fused, vectorised to AVX-512 VPOPCNTQ where available) is the
default.  The numpy one is the fallback where no compiler is available.  numpy has no
fused xor-popcount, so there each 64-bit word pair costs three vectorised passes (xor, popcount, accumulate).  They are arranged so that every pass runs over
long contiguous rows that stay in L2 cache, and the per-byte popcounts are summed
eight at a time as 64-bit words (SWAR, no dtype casts).  Row blocks are spread over
threads: numpy releases the GIL inside each pass, but the Python between passes
serialises, so a second core gains well under 2x.  See bench/xnor_gemm.py.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from qnnflow.hls.nodes import xnor_native

_U64 = np.dtype("<u8")  # explicit little-endian: byte lanes below map to columns j..j+7
_U16 = np.dtype("<u2")
_EVEN_BYTES = np.uint64(0x00FF00FF00FF00FF)
_EIGHT = np.uint64(8)
_CALL_ELEMS = 1 << 15  # elements per ufunc call: large enough to hide call overhead, small enough for L2
_COL_BLOCK = 512  # columns per call; the broadcast word of x is reused for N / _COL_BLOCK calls
_FLUSH = 3  # per-byte counts reach at most 64 per word: 3 words fit a byte (192 <= 255)


def pack_bits(bits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pack ``axis`` of a 0/1 array (non-zero counts as 1) into little-endian uint64 words, as the last axis.

    Bit k lands in word k // 64; the tail of the last word is zero.  Packing along axis 0 of a
    (K, N) matrix gives its columns as rows of words without transposing the unpacked bits.
    """
    bits = np.asarray(bits) != 0
    if axis % bits.ndim == bits.ndim - 1:
        packed = np.packbits(bits, axis=-1)
    else:  # np.packbits along a strided axis is ~100x slower than this shift-or over whole rows
        packed = np.moveaxis(_packbits_leading(np.moveaxis(bits, axis, 0)), 0, -1)
    pad = (-packed.shape[-1]) % 8
    if pad:
        packed = np.concatenate([packed, np.zeros(packed.shape[:-1] + (pad,), np.uint8)], axis=-1)
    return np.ascontiguousarray(packed).view(_U64)


def _packbits_leading(bits: np.ndarray) -> np.ndarray:
    """``np.packbits(bits, axis=0)`` (first element in the high bit), as eight shift-ors over rows."""
    lanes = bits.view(np.uint8)
    pad = (-lanes.shape[0]) % 8
    if pad:
        lanes = np.concatenate([lanes, np.zeros((pad, *lanes.shape[1:]), np.uint8)])
    groups = lanes.reshape(-1, 8, *lanes.shape[1:])
    packed = groups[:, 0] << 7
    for t in range(1, 8):
        packed |= groups[:, t] << (7 - t)
    return packed


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _match_rows(xp: np.ndarray, wt: np.ndarray, k_bits: int, rows: range, out: np.ndarray) -> None:
    """Match counts for rows ``rows`` of ``xp`` (M, W64) against ``wt`` (W64, Npad), written to ``out`` (M, Npad)."""
    n_words, npad = wt.shape
    bn = min(_COL_BLOCK, npad)
    bm = max(1, min(len(rows), _CALL_ELEMS // bn))
    col_blocks = [(j0, min(j0 + bn, npad)) for j0 in range(0, npad, bn)]
    w_views = [[wt[k, None, a:b] for a, b in col_blocks] for k in range(n_words)]
    xt = np.empty((bm, bn), _U64)  # x's word k broadcast along a column block, reused for every block
    xor = np.empty((bm, bn), _U64)
    cnt = np.empty((bm, npad), np.uint8)  # per-column popcounts of one word
    byte_acc = np.empty((bm, npad), np.uint8)  # per-column counts summed over up to _FLUSH words
    acc_even = np.empty((bm, npad // 8), _U64)  # 16-bit lanes: columns 8g+0, +2, +4, +6
    acc_odd = np.empty((bm, npad // 8), _U64)  # 16-bit lanes: columns 8g+1, +3, +5, +7
    for i0 in range(rows.start, rows.stop, bm):
        m = min(bm, rows.stop - i0)
        if m != bm:  # last, short row block: shrink every buffer once
            xt, xor, cnt, byte_acc, acc_even, acc_odd = (a[:m] for a in (xt, xor, cnt, byte_acc, acc_even, acc_odd))
        parts = [(xt[:, : b - a], xor[:, : b - a], cnt[:, a:b]) for a, b in col_blocks]
        cnt64, bacc64 = cnt.view(_U64), byte_acc.view(_U64)
        acc_even.fill(0)
        acc_odd.fill(0)
        byte_acc.fill(0)
        x_rows = xp[i0 : i0 + m]
        for k in range(n_words):
            np.copyto(xt, x_rows[:, k, None])
            for (xt_v, xor_v, cnt_v), w_v in zip(parts, w_views[k]):
                np.bitwise_xor(xt_v, w_v, out=xor_v)
                np.bitwise_count(xor_v, out=cnt_v)
            np.add(bacc64, cnt64, out=bacc64)  # eight byte lanes per add; lanes stay <= 64 * _FLUSH
            if (k + 1) % _FLUSH == 0 or k + 1 == n_words:
                np.add(acc_even, bacc64 & _EVEN_BYTES, out=acc_even)
                np.add(acc_odd, (bacc64 >> _EIGHT) & _EVEN_BYTES, out=acc_odd)
                byte_acc.fill(0)
        dst = out[i0 : i0 + m]
        np.subtract(k_bits, acc_even.view(_U16), out=dst[:, 0::2], dtype=np.int32)
        np.subtract(k_bits, acc_odd.view(_U16), out=dst[:, 1::2], dtype=np.int32)


def _pack_columns(w_bits: np.ndarray, npad: int) -> np.ndarray:
    """(K, N) bits -> (W64, npad) words: word k of column j holds bits 64k..64k+63 of that column."""
    cols = pack_bits(w_bits, axis=0)
    out = np.zeros((cols.shape[1], npad), _U64)
    out[:, : cols.shape[0]] = cols.T
    return out


BACKENDS = ("auto", "native", "numpy")


def xnor_popcount_matmul(x_bits: np.ndarray, w_bits: np.ndarray, threads: int | None = None,
                         backend: str = "auto") -> np.ndarray:
    """``matches[..., j] = #{k : x[..., k] == w[k, j]}`` for bit arrays x (..., K) and w (K, N), as int32.

    Equivalent to ``(K + (2x-1) @ (2w-1)) / 2`` but computed exactly on packed words.
    Non-zero entries count as 1.  ``backend``: "native" (the compiled kernel, xnor_native),
    "numpy" (K must be below 65536: its per-column counters are 16 bits), or "auto": native
    when it can be built, else numpy.
    """
    if backend not in BACKENDS:
        raise ValueError(f"xnor_popcount_matmul: backend '{backend}' is not one of {', '.join(BACKENDS)}")
    x_bits = np.asarray(x_bits)
    w_bits = np.asarray(w_bits)
    if w_bits.ndim != 2 or x_bits.ndim < 1 or x_bits.shape[-1] != w_bits.shape[0]:
        raise ValueError(f"xnor_popcount_matmul: shapes {x_bits.shape} and {w_bits.shape} do not chain")
    k_bits, n_cols = w_bits.shape
    lead = x_bits.shape[:-1]
    if x_bits.size == 0 or n_cols == 0:
        return np.full(lead + (n_cols,), k_bits, np.int32)  # no rows, no columns, or K = 0 (0 matches)
    native = xnor_native.kernel() if backend != "numpy" else None
    if backend == "native" and native is None:
        raise RuntimeError("xnor_popcount_matmul: the native kernel could not be built (see the warning)")
    if native is None and k_bits >= 1 << 16:
        raise ValueError(f"xnor_popcount_matmul: K={k_bits} exceeds the numpy path's 16-bit counters (K < 65536)")
    xp = pack_bits(x_bits.reshape(-1, k_bits))
    n_rows, words = xp.shape
    if native is not None:
        wp = pack_bits(w_bits, axis=0)  # (N, words): each column packed along K
        out = np.empty((n_rows, n_cols), np.int32)

        def work(rows: range) -> None:
            native(xp[rows.start :].ctypes.data, wp.ctypes.data, len(rows), n_cols, words, k_bits,
                   out[rows.start :].ctypes.data)
    else:
        npad = -(-n_cols // 8) * 8  # whole 64-bit groups of byte lanes
        wt = _pack_columns(w_bits, npad)
        out = np.empty((n_rows, npad), np.int32)

        def work(rows: range) -> None:
            _match_rows(xp, wt, k_bits, rows, out)
    _over_row_blocks(work, n_rows, n_rows * n_cols * words, threads)
    if out.shape[1] != n_cols:
        out = out[:, :n_cols]
    return out.reshape(lead + (n_cols,))


def _over_row_blocks(work, n_rows: int, word_pairs: int, threads: int | None) -> None:
    """Run ``work(range)`` over row blocks, one thread each (both kernels release the GIL)."""
    threads = _default_threads() if threads is None else max(1, threads)
    if word_pairs < 1 << 22:  # too little work to pay for threads
        threads = 1
    threads = max(1, min(threads, n_rows // 32))
    if threads == 1:
        work(range(n_rows))
        return
    bounds = np.linspace(0, n_rows, threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        for job in [pool.submit(work, range(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]:
            job.result()
