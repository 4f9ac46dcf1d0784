"""Exact integer kernels shared by the nodes: matrix products and threshold counting."""

from __future__ import annotations

import numpy as np

_LOOP_MAX_THRESHOLDS = 16  # up to this many thresholds one comparison pass each beats a binary search


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for int64 arrays a (..., K), b (K, N), exactly, as int64.

    BLAS is exact on integers while every partial sum stays representable: below 2**24
    in float32, below 2**53 in float64 (products and sums of such integers never round,
    whatever the summation order).  Beyond that numpy's int64 product is used.
    """
    k = b.shape[0]
    amax = int(np.abs(a).max()) if a.size else 0
    bmax = int(np.abs(b).max()) if b.size else 0
    bound = k * amax * bmax  # Python int: no overflow
    if bound < 2**24:
        return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(np.int64)
    if bound < 2**53:
        return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)
    if bound < 2**63:
        return np.matmul(a, b)
    raise OverflowError(f"integer product may reach {bound}, beyond int64")


def count_reached(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``out[..., c] = #{t : values[..., c] >= thresholds[c, t]}`` for int64 values (..., C), thresholds (C, T).

    The count does not depend on threshold order, so rows are sorted first.  Few
    thresholds: one vectorised comparison per threshold.  Many: one binary search for
    all channels at once, by shifting channel c's keys into the disjoint range
    [c*span, (c+1)*span) of a single sorted array (N x C x T is never materialised).
    """
    n_ch, n_thr = thresholds.shape
    out = np.zeros(values.shape, np.int64)
    if n_thr == 0:
        return out
    thr = np.sort(thresholds, axis=1)
    lo = min(int(thr[:, 0].min()), int(values.min()) if values.size else 0)
    hi = max(int(thr[:, -1].max()), int(values.max()) if values.size else 0)
    span = hi - lo + 1
    if n_thr <= _LOOP_MAX_THRESHOLDS or n_ch * span >= 2**62:
        for t in range(n_thr):
            out += values >= thr[:, t]
        return out
    offsets = np.arange(n_ch, dtype=np.int64) * span
    keys = (thr - lo + offsets[:, None]).ravel()  # ascending: rows sorted, row ranges disjoint
    # side='right' counts keys <= value: all of the lower channels' keys plus this channel's reached ones
    found = np.searchsorted(keys, values - lo + offsets, side="right")
    return found - np.arange(n_ch, dtype=np.int64) * n_thr
