"""Networks written as users write them, each a pattern that once failed to build (issue 13):
every one goes export -> tidy -> streamline -> to_hw bit-exact against PyTorch, with every layer
in hardware, and folds on the Pynq-Z1; the slow test also simulates each in C++, bit-exact."""

from __future__ import annotations

import pytest
from brevitas.nn import QuantConv2d, QuantLinear
from torch import nn

from qnnflow.flow.boards import load_board
from qnnflow.hls.cppsim import cppsim
from qnnflow.models.export import seeded_inputs
from qnnflow.transforms.fold import fold

from .nets import weight_kwargs
from .test_generality import _input_quant, _randomized, assert_exact_through_hw

BOARD = load_board("pynq-z1")


def pool_after_linear():
    """Bug 1: the pool copied the MatMul's stale INT32 type before the MVAU's own output type was
    known, and fold refused the mismatch (and the scale kept 4 axes past the flatten)."""
    return nn.Sequential(
        _input_quant(), QuantConv2d(2, 3, 3, bias=False, **weight_kwargs(4)), nn.MaxPool2d(2),
        nn.Flatten(), QuantLinear(12, 4, bias=False, **weight_kwargs(4)),
    ), (1, 2, 6, 6)


PATTERNS = {f.__name__: f for f in (pool_after_linear,)}


def to_hw_and_fold(pattern: str, seed: int = 0):
    """The pattern's network through to_hw (bit-exact, every layer in hardware) and folded on the
    Pynq-Z1: (folded graph, input shape)."""
    net, input_shape = PATTERNS[pattern]()
    hw = assert_exact_through_hw(_randomized(net, seed), input_shape, seed)
    folded, report = fold(hw, BOARD)
    assert report.within_budget()
    return folded, input_shape


def ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def test_max_pool_right_after_a_linear_layer():
    folded, _ = to_hw_and_fold("pool_after_linear")
    assert ops(folded).count("StreamingMaxPool") == 1


@pytest.mark.slow
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_pattern_simulates_bit_exact_in_cpp(pattern, tmp_path_factory):
    folded, input_shape = to_hw_and_fold(pattern)
    cache = tmp_path_factory.getbasetemp() / "cppsim-patterns"
    result = cppsim(folded, seeded_inputs(input_shape, 3, 0, (-1.0, 1.0)), BOARD, cache, precompiled_header=True)
    assert result.bit_exact, result.mismatch
