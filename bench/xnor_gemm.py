"""Packed XNOR-popcount GEMM (the binary MVAU kernel) against float32 numpy.matmul on +-1 matrices.

All run in the same process on the same random N x N operands: float32 BLAS, our native
kernel (hls/nodes/xnor_native.cpp) and our numpy kernel (the fallback without a compiler).
The XNOR times include packing the 0/1 inputs into 64-bit words; the float32 operands are
prepared beforehand.  Results are checked equal: float32 is exact here (every partial sum
is an integer below 2**24).

Usage: python bench/xnor_gemm.py [N ...]      (default 1024 2048 4096 8192)
"""

import os
import sys

import numpy as np

from timing import best_of

from qnnflow.hls.nodes.xnor import xnor_popcount_matmul

FLOAT_LIMIT_S = 60.0  # skip a size whose float32 baseline would take longer than this


def main(sizes):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"numpy {np.__version__}, {cores} cores; XNOR times include bit packing; speedup = float32 time / XNOR time")
    print(f"{'N':>6} {'float32 s':>10} {'native s':>9} {'speedup':>8} {'numpy s':>8} {'speedup':>8} "
          f"{'float32 GMAC/s':>15} {'native GMAC/s':>14}")
    rng = np.random.default_rng(0)
    last_float = None
    for n in sizes:
        if last_float is not None and last_float[1] * (n / last_float[0]) ** 3 > FLOAT_LIMIT_S:
            print(f"{n:>6}  skipped: float32 would take over {FLOAT_LIMIT_S:.0f} s")
            continue
        x = rng.integers(0, 2, (n, n), dtype=np.uint8)
        w = rng.integers(0, 2, (n, n), dtype=np.uint8)
        a = 2 * x.astype(np.float32) - 1
        b = 2 * w.astype(np.float32) - 1
        repeats = 3 if n <= 4096 else 1
        np.matmul(a[:64], b)  # warm up BLAS threads
        prod = (a @ b).astype(np.int64)
        for backend in ("native", "numpy"):
            matches = xnor_popcount_matmul(x, w, backend=backend)
            if not np.array_equal(2 * matches.astype(np.int64) - n, prod):
                raise SystemExit(f"N={n}: the {backend} XNOR-popcount result differs from float32 matmul")
        t_float = best_of(lambda: a @ b, repeats)
        t_native = best_of(lambda: xnor_popcount_matmul(x, w, backend="native"), repeats)
        t_numpy = best_of(lambda: xnor_popcount_matmul(x, w, backend="numpy"), repeats)
        macs = float(n) ** 3 / 1e9
        print(f"{n:>6} {t_float:>10.3f} {t_native:>9.3f} {t_float / t_native:>7.2f}x {t_numpy:>8.3f} "
              f"{t_float / t_numpy:>7.2f}x {macs / t_float:>15.1f} {macs / t_native:>14.1f}")
        last_float = (n, t_float)
        del a, b, prod, matches


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [1024, 2048, 4096, 8192])
