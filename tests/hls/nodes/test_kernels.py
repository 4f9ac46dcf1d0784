"""The shared integer kernels: packed XNOR-popcount product, exact matmul, threshold counting."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qnnflow.hls.nodes.intmath import count_reached, exact_matmul
from qnnflow.hls.nodes.mvau import xnor_popcount_matmul
from qnnflow.hls.nodes import xnor_native
from qnnflow.hls.nodes.xnor import pack_bits


def bipolar_matches(x, w):
    """(K + (2x-1) @ (2w-1)) / 2 in float64: the count of agreeing bit positions."""
    return (x.shape[-1] + (2 * x.astype(np.float64) - 1) @ (2 * w.astype(np.float64) - 1)) / 2


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 70), st.integers(1, 200), st.integers(1, 40), st.integers(0, 2**32 - 1),
       st.sampled_from(["native", "numpy"]))
def test_xnor_popcount_matches_bipolar_formula(m, k, n, seed, backend):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, (m, k))
    w = rng.integers(0, 2, (k, n))
    np.testing.assert_array_equal(xnor_popcount_matmul(x, w, backend=backend), bipolar_matches(x, w))


def test_xnor_popcount_threads_leading_dims_and_blocks():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, (3, 5, 40, 300)).astype(np.float32)  # 600 rows, several row blocks
    w = rng.integers(0, 2, (300, 1100)).astype(np.float32)  # more than one column block, N % 8 != 0
    want = bipolar_matches(x, w)
    for threads, backend in itertools.product((1, 2, 3), ("native", "numpy")):
        got = xnor_popcount_matmul(x, w, threads=threads, backend=backend)
        assert got.shape == (3, 5, 40, 1100)
        np.testing.assert_array_equal(got, want)


def test_native_kernel_beyond_the_numpy_counters():
    x, w = np.ones((2, 70_000), np.uint8), np.ones((70_000, 3), np.uint8)
    w[:5, 0] = 0
    np.testing.assert_array_equal(xnor_popcount_matmul(x, w, backend="native"), [[69_995, 70_000, 70_000]] * 2)
    with pytest.raises(ValueError, match="16-bit counters"):
        xnor_popcount_matmul(x, w, backend="numpy")


def test_without_a_compiler_the_numpy_path_runs_with_a_warning(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setattr(xnor_native, "cache_root", lambda: Path("/nonexistent-qnnflow-cache"))
    xnor_native.kernel.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="native XNOR kernel unavailable .*no-such-compiler"):
            got = xnor_popcount_matmul(np.ones((2, 9)), np.zeros((9, 2)))
        np.testing.assert_array_equal(got, np.zeros((2, 2)))
        with pytest.raises(RuntimeError, match="native kernel could not be built"):
            xnor_popcount_matmul(np.ones((2, 9)), np.zeros((9, 2)), backend="native")
    finally:
        xnor_native.kernel.cache_clear()


def test_xnor_popcount_extremes():
    ones, zeros = np.ones((2, 129)), np.zeros((129, 3))
    np.testing.assert_array_equal(xnor_popcount_matmul(ones, zeros), np.zeros((2, 3)))
    np.testing.assert_array_equal(xnor_popcount_matmul(ones, ones.T), np.full((2, 2), 129))
    with pytest.raises(ValueError, match="do not chain"):
        xnor_popcount_matmul(ones, np.ones((128, 2)))


def test_pack_bits_little_endian_words():
    bits = np.zeros((1, 70), np.uint8)
    bits[0, [0, 7, 8, 69]] = 1
    words = pack_bits(bits)
    assert words.shape == (1, 2)
    # np.packbits is MSB-first within a byte; bytes are little-endian within the word
    assert int(words[0, 0]) == (1 << 7) | 1 | (1 << 15) and int(words[0, 1]) == 1 << 2
    # packing a leading axis equals packing the last axis of the moved array
    rng = np.random.default_rng(3)
    for shape, axis in (((577, 33), 0), ((5, 130, 7), 1)):
        cube = rng.integers(0, 2, shape)
        np.testing.assert_array_equal(pack_bits(cube, axis), pack_bits(np.moveaxis(cube, axis, -1)))


@pytest.mark.parametrize("amax, bmax, k", [(3, 3, 50), (2**12, 2**12, 2000), (2**30, 2**20, 100), (2**31 - 1, 2**31 - 1, 1)])
def test_exact_matmul_every_path(amax, bmax, k):
    rng = np.random.default_rng(k)
    a = rng.integers(-amax, amax + 1, (4, k), dtype=np.int64)
    b = rng.integers(-bmax, bmax + 1, (k, 5), dtype=np.int64)
    want = np.array([[sum(int(a[i, t]) * int(b[t, j]) for t in range(k)) for j in range(5)] for i in range(4)])
    np.testing.assert_array_equal(exact_matmul(a, b), want)


def test_exact_matmul_refuses_overflow():
    a = np.full((1, 4), 2**31, np.int64)
    with pytest.raises(OverflowError):
        exact_matmul(a, a.T.copy())


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 6), st.integers(1, 7), st.integers(0, 40), st.integers(1, 300), st.integers(0, 2**32 - 1))
def test_count_reached_matches_broadcast_comparison(n, c, n_thr, spread, seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(-spread, spread + 1, (n, 3, c))
    thresholds = rng.integers(-spread, spread + 1, (c, n_thr))  # unsorted, with duplicates
    want = (values[..., None] >= thresholds).sum(-1)
    np.testing.assert_array_equal(count_reached(values, thresholds), want)
