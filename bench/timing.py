"""Timing helper shared by the benchmark scripts."""

import time


def best_of(fn, repeats=3) -> float:
    """The fastest of ``repeats`` runs of ``fn``, in seconds (the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
