"""The stream word format (base/streams.py): bit positions, encodings, round trips, files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qnnflow.base.errors import QnnflowError
from qnnflow.base.streams import StreamFormat, pack_lanes, read_stream_file, unpack_lanes, write_stream_file
from tests.hls.backend.helpers import random_ints

TYPES = ["BINARY", "BIPOLAR", "UINT2", "INT2", "INT3", "UINT7", "INT8", "UINT8", "INT13", "UINT17", "INT32", "INT64"]


def test_lanes_are_lsb_first_and_twos_complement():
    # INT4 lanes -1, 2, 7 -> bits 0-3 = 0xF, 4-7 = 0x2, 8-11 = 0x7, padded to 16 bits
    fmt = StreamFormat((3,), 3, "INT4")
    assert (fmt.packed_bits, fmt.word_bits, fmt.word_bytes, fmt.words) == (12, 16, 2, 1)
    assert fmt.pack(np.array([[-1, 2, 7]])).tobytes() == bytes([0x2F, 0x07])


def test_bipolar_is_one_bit_plus_one_set():
    fmt = StreamFormat((8,), 8, "BIPOLAR")
    assert fmt.pack(np.array([[1, -1, -1, 1, 1, 1, -1, -1]])).tobytes() == bytes([0b00111001])
    assert fmt.unpack(bytes([0b00111001])).tolist() == [[1, -1, -1, 1, 1, 1, -1, -1]]


def test_words_follow_row_major_order_of_the_image():
    fmt = StreamFormat((2, 2, 4), 2, "UINT8")  # NHWC, two channels per word
    x = np.arange(16).reshape(1, 2, 2, 4)
    words = fmt.pack(x)
    assert words.shape == (1, 8, 2)
    assert words[0, :, 0].tolist() == list(range(0, 16, 2)) and words[0, :, 1].tolist() == list(range(1, 16, 2))
    assert fmt.folded_shape == (2, 2, 2, 2)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(TYPES), st.integers(1, 5), st.integers(1, 4), st.integers(1, 3), st.integers(0, 2**16))
def test_round_trip(dt, lanes, folds, images, seed):
    rng = np.random.default_rng(seed)
    fmt = StreamFormat((3, lanes * folds), lanes, dt)
    if dt in ("INT64",):
        x = rng.integers(-(2**63), 2**63 - 1, size=(images, *fmt.shape), dtype=np.int64)
    else:
        x = random_ints(rng, dt, (images, *fmt.shape)).astype(np.int64)
    data = fmt.pack(x)
    assert data.shape == (images, fmt.words, fmt.word_bytes)
    assert np.array_equal(fmt.unpack(data.tobytes()), x)


def test_wide_words_and_padding_bits_are_zero():
    rng = np.random.default_rng(1)
    x = random_ints(rng, "INT5", (2, 77)).astype(np.int64)  # 385-bit words padded to 392
    raw = pack_lanes(x, "INT5", 392)
    assert raw.shape == (2, 49) and (raw[:, -1] >> 1 == 0).all()
    assert np.array_equal(unpack_lanes(raw, 77, "INT5"), x)


def test_values_outside_the_type_and_partial_files_are_errors(tmp_path):
    fmt = StreamFormat((4,), 2, "UINT2")
    with pytest.raises(QnnflowError, match=r"outside UINT2"):
        fmt.pack(np.array([[0, 1, 2, 4]]))
    with pytest.raises(QnnflowError, match="whole number"):
        fmt.unpack(b"\x00")
    path = tmp_path / "s.bin"
    assert write_stream_file(path, fmt, np.array([[0, 1, 2, 3], [3, 2, 1, 0]])) == 2
    assert path.stat().st_size == 2 * fmt.image_bytes
    assert read_stream_file(path, fmt).tolist() == [[0, 1, 2, 3], [3, 2, 1, 0]]


def test_format_dict_round_trip():
    fmt = StreamFormat((5, 5, 64), 32, "BINARY")
    d = fmt.to_dict()
    assert d["word_bits"] == 32 and d["words"] == 50
    assert StreamFormat.from_dict(d) == fmt
