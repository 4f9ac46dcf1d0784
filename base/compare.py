"""Comparing produced outputs with golden ones: exactly for integers, to a relative tolerance for floats.

numpy alone: the board driver's example carries a copy of this file and checks the board's
outputs with the rule the flow verified every step with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qnnflow.base.hostops import top_k_indices


@dataclass
class Comparison:
    ok: bool
    max_abs_diff: float
    exact: bool  # compared exactly (integer output) rather than to a relative tolerance


def compare(produced: np.ndarray, golden: np.ndarray, dtype, rtol: float = 1e-5) -> Comparison:
    """Integer tensors must match exactly; float tensors to ``rtol`` relative to the golden tensor's scale.

    ``dtype``: the output's DataType (anything with ``is_integer()``), or None for float.
    """
    golden = np.asarray(golden, dtype=np.float64)
    if np.size(produced) != golden.size:
        return Comparison(False, float("inf"), False)
    produced = np.asarray(produced, dtype=np.float64).reshape(golden.shape)
    diff = float(np.max(np.abs(produced - golden))) if golden.size else 0.0
    if dtype is not None and dtype.is_integer():
        return Comparison(diff == 0.0, diff, True)
    scale = max(float(np.max(np.abs(golden))) if golden.size else 0.0, 1e-12)
    return Comparison(diff <= rtol * scale, diff, False)


def compare_to_golden(produced: np.ndarray, golden: np.ndarray, dtype) -> Comparison:
    """Compare outputs with golden ones; ``dtype`` as in ``compare``.

    Outputs that are class labels (k indices where the golden output has scores) are
    compared with the golden scores' top-k indices.
    """
    produced = np.asarray(produced)
    golden = np.asarray(golden)
    if produced.ndim == golden.ndim and produced.shape[-1] < golden.shape[-1] and produced.shape[:-1] == golden.shape[:-1]:
        return compare(produced, top_k_indices(golden, produced.shape[-1]), _EXACT)
    return compare(produced, golden, dtype)


class _Exact:
    """A dtype for ``compare`` that demands exact equality (class indices)."""

    @staticmethod
    def is_integer() -> bool:
        return True


_EXACT = _Exact()
