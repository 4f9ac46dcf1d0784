"""``package.module:function`` references to user code (user steps, model factories)."""

from __future__ import annotations

import importlib
from typing import Callable

from qnnflow.base.errors import QnnflowError


def is_user_spec(name: str) -> bool:
    return ":" in name and not name.endswith((".onnx", ".yaml", ".yml"))


def import_callable(spec: str) -> Callable:
    """The function named by ``package.module:function``; QnnflowError saying why not."""
    module_name, _, func_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise QnnflowError(f"cannot import module '{module_name}' ({err}); is it on PYTHONPATH?") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise QnnflowError(f"module '{module_name}' has no function '{func_name}'")
    return fn
