"""The step registry: named build steps, and user steps given as ``package.module:function``.

A step is ``fn(model, ctx) -> model``: it takes the previous step's ModelWrapper (None for
the first step) and a StepContext, and returns the new model. It declares the config
fields it reads, so the runner's cache reruns it only when those (or its input) change,
and the output kinds (``outputs:`` in the build YAML) it delivers.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from qnnflow.base.errors import QnnflowError
from qnnflow.base.userspec import import_callable, is_user_spec


@dataclass(frozen=True)
class Step:
    name: str
    fn: Callable
    config_keys: tuple[str, ...] | Callable  # the fields it reads, or cfg -> them when the config decides
    produces: tuple[str, ...]
    doc: str
    tools: tuple[str, ...] = ()  # programs the step runs when found on PATH: which are found keys its cache
    needs: tuple[str, ...] = ()  # programs the step cannot run without: checked before the build starts

    def reads(self, cfg) -> tuple[str, ...]:
        """The config fields this step reads in build ``cfg`` (its cache key)."""
        return tuple(self.config_keys(cfg)) if callable(self.config_keys) else self.config_keys

    def code_hash(self) -> str:
        """Hash of the code behind the step: editing it invalidates the step's cache.

        A built-in step reaches into any of qnnflow's transforms, node models and C++ kernels,
        so its hash covers all of qnnflow's sources; a user step's covers its own module file.
        """
        if self.fn.__module__.startswith("qnnflow."):
            return _qnnflow_source_hash()
        return module_source_hash(self.fn)


def module_source_hash(fn: Callable) -> str:
    """Hash of the source of the module defining ``fn`` (user code: a step or a model factory)."""
    try:
        source = inspect.getsource(inspect.getmodule(fn))
    except (OSError, TypeError):
        source = fn.__qualname__
    return hashlib.sha256(source.encode()).hexdigest()[:16]


# qnnflow's code. Build and board YAMLs (builds/) are not code but configuration: their
# values key exactly the steps that read them (see BuildConfig.cache_values).
_SOURCE_PACKAGES = ("qnnflow.base", "qnnflow.flow", "qnnflow.transforms", "qnnflow.models", "qnnflow.hls")
_SOURCE_SUFFIXES = (".py", ".hpp", ".cpp", ".v", ".tcl", ".sh", ".json")  # code, templates and shipped data


def qnnflow_source_files() -> list[tuple[str, Path]]:
    """(package, file) for every source file whose content keys the built-in steps' caches."""
    files = []
    for package in _SOURCE_PACKAGES:
        root = Path(importlib.import_module(package).__file__).parent
        files.extend((package, p) for p in sorted(root.rglob("*")) if p.suffix in _SOURCE_SUFFIXES and p.is_file())
    return files


@functools.lru_cache(maxsize=1)
def _qnnflow_source_hash() -> str:
    digest = hashlib.sha256()
    for package, path in qnnflow_source_files():
        root = Path(importlib.import_module(package).__file__).parent
        digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


_STEPS: dict[str, Step] = {}
# Output kinds that are not tied to one step.
_ALWAYS_PRODUCED = {"build_log": ("export",)}


def register_step(name: str, config: tuple[str, ...] | Callable = (), produces: tuple[str, ...] = (),
                  tools: tuple[str, ...] = (), needs: tuple[str, ...] = ()):
    """Decorator: register ``fn`` as the build step ``name``; ``config``: the fields it reads, or a function of
    the build config giving them."""

    def wrap(fn):
        doc = (inspect.getdoc(fn) or "").split("\n")[0]
        _STEPS[name] = Step(name, fn, config if callable(config) else tuple(config), tuple(produces), doc, tuple(tools),
                            tuple(needs))
        return fn

    return wrap


# Importing these modules registers the built-in steps.
STEP_MODULES = ("qnnflow.flow.steps", "qnnflow.flow.prune_step", "qnnflow.flow.fold_step", "qnnflow.flow.hls_steps",
                "qnnflow.flow.board_steps", "qnnflow.flow.rtl_steps")


def _load_builtin_steps():
    # Kept lazy so that importing the registry has no side effects and no heavy imports.
    for module in STEP_MODULES:
        importlib.import_module(module)


def registered_steps() -> dict[str, Step]:
    _load_builtin_steps()
    return dict(_STEPS)


def output_producers() -> dict[str, tuple[str, ...]]:
    """Output kind -> the steps that produce it."""
    producers: dict[str, list[str]] = {}
    for step in registered_steps().values():
        for kind in step.produces:
            producers.setdefault(kind, []).append(step.name)
    for kind, steps in _ALWAYS_PRODUCED.items():
        producers.setdefault(kind, []).extend(steps)
    return {k: tuple(v) for k, v in producers.items()}


def step_problem(name: str) -> str | None:
    """Why ``name`` is not a usable step, or None."""
    if not isinstance(name, str):
        return f"step names are strings, got {name!r}"
    if is_user_spec(name):
        try:
            import_callable(name)
        except QnnflowError as err:
            return f"user step '{name}': {err}"
        return None
    steps = registered_steps()
    if name in steps:
        return None
    close = difflib.get_close_matches(name, list(steps), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown step '{name}'; {hint}(known: {', '.join(steps)}; or package.module:function)"


def resolve_step(name: str) -> Step:
    problem = step_problem(name)
    if problem:
        raise QnnflowError(problem)
    if is_user_spec(name):
        fn = import_callable(name)
        # A user step may read any field, so the whole config keys its cache.
        return Step(name, fn, ("*",), (), (inspect.getdoc(fn) or "user step").split("\n")[0])
    return registered_steps()[name]
