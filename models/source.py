"""What a build's ``model:`` field names: a zoo model, a user's QONNX file, or a Python factory.

- a zoo name such as ``cnv_w1a1``;
- a path to a QONNX ``.onnx`` file, optionally with golden I/O in ``<same stem>.npz``
  (arrays ``input`` and ``output``, batch first);
- ``package.module:function`` returning ``(brevitas_module, input_shape)`` or
  ``(brevitas_module, input_shape, (low, high))`` where (low, high) is the input value range;
- ``bnn-pynq:<name or dir>``: BNN-PYNQ's trained parameters imported as a hw-stage graph
  (``models/bnn_pynq.py``), a shipped set by name (``bnn-pynq:lfcW1A1``) or a directory.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from qnnflow.base.errors import QnnflowError
from qnnflow.base.userspec import import_callable, is_user_spec


# Where golden inputs come from: the model's data (auto: when present), or seeded random values.
GOLDEN_SOURCES = ("auto", "data", "random")


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "zoo", "qonnx", "python" or "bnn-pynq"
    spec: str

    @property
    def golden_path(self) -> Path | None:
        """The user's golden I/O beside a QONNX file, when present."""
        if self.kind != "qonnx":
            return None
        path = Path(self.spec).with_suffix(".npz")
        return path if path.exists() else None


BNN_PYNQ_PREFIX = "bnn-pynq:"


def _zoo_names() -> list[str]:
    from qnnflow.models.zoo import ZOO

    return list(ZOO)


def model_source_problem(spec: str) -> str | None:
    """Why ``spec`` names no usable model, or None."""
    if spec.startswith(BNN_PYNQ_PREFIX):
        from qnnflow.models.bnn_pynq import parameter_source_problem

        return parameter_source_problem(spec[len(BNN_PYNQ_PREFIX):])
    if spec.endswith(".onnx"):
        return None if Path(spec).is_file() else f"QONNX file '{spec}' not found"
    if is_user_spec(spec):
        try:
            import_callable(spec)
        except QnnflowError as err:
            return str(err)
        return None
    names = _zoo_names()
    if spec in names:
        return None
    close = difflib.get_close_matches(spec, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return (
        f"unknown model '{spec}'; {hint}(zoo: {', '.join(names)}; "
        "or a path to a .onnx QONNX file, or package.module:function)"
    )


def parse_model_source(spec: str) -> ModelSource:
    problem = model_source_problem(spec)
    if problem:
        raise QnnflowError(f"model: {problem}")
    if spec.endswith(".onnx"):
        return ModelSource("qonnx", spec)
    if spec.startswith(BNN_PYNQ_PREFIX):
        return ModelSource("bnn-pynq", spec[len(BNN_PYNQ_PREFIX):])
    if is_user_spec(spec):
        return ModelSource("python", spec)
    return ModelSource("zoo", spec)


def call_model_factory(spec: str):
    """Call a ``package.module:function`` factory; returns (module, input_shape, value_range)."""
    result = import_callable(spec)()
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise QnnflowError(
            f"model: {spec} must return (module, input_shape) or (module, input_shape, (low, high)), "
            f"got {type(result).__name__}"
        )
    module, shape = result[0], tuple(int(d) for d in result[1])
    value_range = tuple(result[2]) if len(result) == 3 else (0.0, 1.0)
    return module, shape, value_range
