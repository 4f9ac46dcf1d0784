"""Integer tensor values: which DataType holds which, checks that a tensor holds integers, and the
float carriers ONNX graphs use for them; the divisors that give legal foldings."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: this module imports numpy alone (the board driver carries a copy)
    from qonnx.core.datatype import BaseDataType

_FLOAT32_EXACT = 2**24  # every integer of magnitude <= 2**24 is a float32


def divisors(n: int) -> list[int]:
    """Positive divisors of n, ascending: the legal SIMD/PE values for a dimension of size n."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0] if n > 0 else []
    return sorted(set(small + [n // d for d in small]))


def datatype_holds(outer: BaseDataType, inner: BaseDataType) -> bool:
    """True when every value of ``inner`` is a value of ``outer``."""
    if not inner.is_integer() or inner.is_fixed_point():
        return False
    if outer.name == "BIPOLAR":
        return inner.name == "BIPOLAR"
    return outer.min() <= inner.min() and inner.max() <= outer.max()


def _num(v) -> int | float:
    """A numpy/Python scalar as a plain int when integral (for messages and comparisons)."""
    v = v.item() if hasattr(v, "item") else v
    return int(v) if float(v).is_integer() else v


def value_problem(arr: np.ndarray, dt: BaseDataType | None = None) -> str | None:
    """Why ``arr`` is not a tensor of integers (that ``dt`` can hold, when given), or None."""
    arr = np.asarray(arr)
    if arr.size == 0:
        return None
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            return "holds NaN or infinity"
        if (arr != np.rint(arr)).any():
            return "holds non-integer values"
    elif arr.dtype.kind not in "iub":
        return f"has numpy dtype {arr.dtype}, not a number type"
    if dt is None:
        return None
    lo, hi = _num(arr.min()), _num(arr.max())
    if lo < dt.min() or hi > dt.max():
        return f"holds values in [{lo}, {hi}], outside {dt.name} [{_num(dt.min())}, {_num(dt.max())}]"
    if dt.name == "BIPOLAR" and (arr == 0).any():
        return "holds 0, which BIPOLAR (-1/+1) cannot represent"
    return None


def to_carrier(values: np.ndarray) -> np.ndarray:
    """Integer results as the float tensors ONNX graphs carry, exactly: float32 if it can, else float64."""
    values = np.asarray(values)
    if values.size and max(-int(values.min()), int(values.max())) > _FLOAT32_EXACT:
        return values.astype(np.float64, copy=False)
    return values.astype(np.float32, copy=False)
