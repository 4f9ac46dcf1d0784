"""Build configuration: the YAML schema, overrides and validation.

A build file is plain data. Every field is declared once in ``SCHEMA``; validation walks
the schema, so an unknown key, a wrong type or a bad value is reported as one line that
names the file and the field (``builds/x.yaml: golden.count: ...``) and says how to fix it.

Relative paths in a build file are relative to the file's folder (those given with ``--set``
to the current directory), and ``package.module:function`` references also find modules in
that folder, so a build folder works from wherever it is run.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.boards import clock_problem, is_board_path, known_boards, load_board
from qnnflow.flow.yaml_io import load_yaml_file, one_line, parse_yaml
from qnnflow.hls.nodes.yosys_fit import board_for_backend
from qnnflow.models.source import GOLDEN_SOURCES
from qnnflow.transforms.fold.budget import DEFAULT_BUDGET


@dataclass(frozen=True)
class Field:
    """One config field: accepted types, default, whether required, and an extra value check.

    ``check(value, cfg) -> str | None`` returns a problem description, or None when fine.
    A field whose ``fields`` is set is a nested section validated the same way.
    ``is_path(value)`` says whether a value names a file, to be resolved against the build
    file's folder before it is checked.
    """

    types: tuple
    default: Any = None
    required: bool = False
    check: Callable[[Any, dict], str | None] | None = None
    fields: dict[str, "Field"] | None = None
    doc: str = ""
    is_path: Callable[[str], bool] | None = None


def _positive(value, cfg):
    return None if value > 0 else "must be > 0"


def _fraction(value, cfg):
    return None if 0 < value <= 1 else "must be a fraction of the board, in (0, 1]"


def _existing_file(value, cfg):
    return None if Path(value).is_file() else f"file '{value}' not found"


def _known_model(value, cfg):
    from qnnflow.models.source import model_source_problem

    return model_source_problem(value)


def _usable_weights(value, cfg):
    from qnnflow.models.zoo import ZOO, weights_problem

    if value not in ("random", "trained") and not Path(value).is_file():
        return f"checkpoint '{value}' not found; use 'random' or a file saved with torch.save(model.state_dict(), path)"
    model = cfg.get("model")
    if isinstance(model, str) and model in ZOO:
        return weights_problem(model, value)  # loads the checkpoint: another topology's is named
    return None


def _known_board(value, cfg):
    if value in known_boards() or is_board_path(value):
        return None
    return _choice_problem("board", value, known_boards())


def _known_steps(value, cfg):
    from qnnflow.flow.registry import step_problem

    for name in value:
        problem = step_problem(name)
        if problem:
            return problem
    if not value or value[0] != "export":
        return "the first step must be 'export' (it makes the model and its golden I/O)"
    if len(set(value)) != len(value):
        dup = next(n for n in value if value.count(n) > 1)
        return f"step '{dup}' is listed twice; each step runs once"
    return None


def _verify_subset(value, cfg):
    if value in ("all", "none"):
        return None
    if isinstance(value, str):
        return "must be 'all', 'none' or a list of step names"
    steps = cfg.get("steps", DEFAULT_STEPS)
    for name in value:
        if name not in steps:
            return f"'{name}' is not in steps ({', '.join(steps)}); verify only steps that run"
    return None


def _outputs_producible(value, cfg):
    from qnnflow.flow.registry import output_producers

    producers = output_producers()
    steps = cfg.get("steps", DEFAULT_STEPS)
    for kind in value:
        if kind not in producers:
            return _choice_problem("output", kind, sorted(producers))
        if not any(s in steps for s in producers[kind]):
            return f"'{kind}' is made by step {' or '.join(producers[kind])}, which is not in steps; add it"
    return None


def _sparsity(value, cfg):
    return None if 0 <= value < 1 else "must be in [0, 1): the fraction of each layer's SIMD blocks to remove"


def _simd_choice(value, cfg):
    if value == "auto":
        return None
    if isinstance(value, str) or not value or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        return "must be 'auto' or a list of positive ints, one SIMD per Conv/MatMul layer in graph order"
    return None


def _norm_order(value, cfg):
    return None if value >= 1 else "must be >= 1 (1: L1 norm, 2: L2 norm)"


def _non_negative(value, cfg):
    return None if value >= 0 else "must be >= 0"


def _step_fraction(value, cfg):
    return None if 0 < value < 1 else "must be in (0, 1)"


def _golden_source(value, cfg):
    return None if value in GOLDEN_SOURCES else _choice_problem("golden source", value, GOLDEN_SOURCES)


def _choice_problem(what: str, value: str, choices) -> str:
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown {what} '{value}'{hint} (choose from {', '.join(choices)})"


DEFAULT_STEPS = ["export", "tidy", "streamline", "prune", "to_hw", "fold", "estimate", "hls_codegen", "cppsim", "vivado",
                 "driver", "deploy"]
# The back-end steps and the outputs they deliver, per ``backend:`` value.
BACKENDS = {
    "hls": (("hls_codegen", "cppsim"), ("hls", "cppsim")),
    "rtl": (("fifo_size", "rtl_codegen", "rtlsim", "synth"), ("fifo_depths", "rtl", "rtlsim", "synth")),
    "both": (("fifo_size", "hls_codegen", "cppsim", "rtl_codegen", "rtlsim", "synth"),
             ("fifo_depths", "hls", "cppsim", "rtl", "rtlsim", "synth")),
}


def _swap_backend(items, backend: str, which: int) -> list:
    """``items`` (steps or outputs) with the back-end entries replaced by ``backend``'s, where the first was."""
    every = {x for steps_outputs in BACKENDS.values() for x in steps_outputs[which]}
    if not isinstance(items, list) or not any(x in every for x in items):
        return items
    at = next(i for i, x in enumerate(items) if x in every)
    kept = [x for x in items if x not in every]
    return kept[:at] + list(BACKENDS[backend][which]) + kept[at:]


def apply_backend(raw: dict) -> None:
    """Put the chosen back end's steps (and outputs) in place of the other's, in place.

    Without ``steps:`` the default list gets the back end's steps; with ``steps:`` and an explicit
    ``backend:`` the listed back-end steps are swapped for the chosen one's; without ``backend:`` a
    listed step list is kept as written.
    """
    backend = raw.get("backend")
    if backend not in BACKENDS:
        return  # absent, or reported by validation
    if raw.get("steps") is None:
        raw["steps"] = _swap_backend(list(DEFAULT_STEPS), backend, 0)
    else:
        raw["steps"] = _swap_backend(raw["steps"], backend, 0)
    if raw.get("outputs") is not None:
        raw["outputs"] = _swap_backend(raw["outputs"], backend, 1)

SCHEMA: dict[str, Field] = {
    "name": Field((str,), doc="build name; defaults to the YAML file's stem"),
    "model": Field(
        (str,),
        required=True,
        check=_known_model,
        doc="zoo name, path to a QONNX .onnx file, or package.module:function",
        is_path=lambda v: v.endswith(".onnx"),
    ),
    "weights": Field(
        (str,), default="random", check=_usable_weights,
        doc="'random' (seeded), 'trained' (models/checkpoints/) or a checkpoint path",
        is_path=lambda v: v not in ("random", "trained"),
    ),
    "board": Field(
        (str,), required=True, check=_known_board, doc="board name or board YAML path", is_path=is_board_path,
    ),
    "clock_ns": Field((int, float), check=_positive, doc="target clock period; default: the board's"),
    "backend": Field((str,), default="hls", check=lambda v, cfg: None if v in BACKENDS else _choice_problem(
        "backend", v, list(BACKENDS)), doc="hls (C++ for Vitis HLS, cppsim), rtl (Verilog, rtlsim, Yosys synth) or both"),
    "steps": Field((list,), default=DEFAULT_STEPS, check=_known_steps, doc="steps to run, in order"),
    "verify": Field((list, str), default="all", check=_verify_subset, doc="steps whose output is checked"),
    "outputs": Field(
        (list,), default=["qonnx", "build_log"], check=_outputs_producible, doc="artifacts the build must deliver"
    ),
    "top_k": Field((int,), default=1, check=_positive, doc="labels the label_select step outputs"),
    "fold": Field(
        (dict,),
        default={},
        fields={
            "lut": Field((int, float), default=DEFAULT_BUDGET["lut"], check=_fraction,
                         doc="share of the board's LUTs to use"),
            "bram": Field((int, float), default=DEFAULT_BUDGET["bram"], check=_fraction,
                          doc="share of the board's BRAM18 to use"),
            "dsp": Field((int, float), default=DEFAULT_BUDGET["dsp"], check=_fraction,
                         doc="share of the board's DSPs to use"),
            "target_fps": Field((int, float), check=_positive, doc="cheapest folding reaching this FPS"),
            "target_cycles": Field((int,), check=_positive, doc="cheapest folding within this many cycles"),
            "file": Field(
                (str,), check=_existing_file, doc="explicit folding (FINN folding JSON)", is_path=lambda v: True,
            ),
            "max_weight_width": Field((int,), check=_positive, doc="max PE*SIMD*weight bits per MVAU; default 4096"),
        },
        doc="automatic folding: budget, target or an explicit folding file",
    ),
    "deploy": Field(
        (dict,),
        default={},
        fields={
            "bitfile": Field((str,), check=_existing_file,
                             doc="bitstream to package (its .hwh beside it); default: the vivado step's, when built"),
        },
        doc="the deployment package",
    ),
    "prune": Field(
        (dict,),
        default={},
        fields={
            "sparsity": Field((int, float), default=0, check=_sparsity,
                              doc="fraction of each layer's SIMD blocks of input channels removed; 0: no pruning"),
            "simd": Field((list, str), default="auto", check=_simd_choice,
                          doc="block width per Conv/MatMul layer, or 'auto' (from the unpruned model's folding)"),
            "norm_order": Field((int, float), default=1, check=_norm_order, doc="p of the Lp norm scoring blocks"),
            "fine_tune_epochs": Field((int,), default=0, check=_non_negative,
                                      doc="epochs of fine-tuning after each sparsity step (0: prune by magnitude only)"),
            "step": Field((int, float), default=0.15, check=_step_fraction,
                          doc="sparsity added per step of the iterative schedule"),
            "max_sparsity": Field((int, float), check=_sparsity,
                                  doc="stop the iterative schedule here; default: sparsity"),
            "max_accuracy_drop": Field((int, float), check=_non_negative,
                                       doc="stop the schedule when test accuracy falls more than this (a fraction)"),
            "train_limit": Field((int,), check=_positive, doc="fine-tune on this many training images; default: all"),
            "test_limit": Field((int,), check=_positive, doc="measure accuracy on this many test images; default: all"),
        },
        doc="SIMD-aligned structured pruning (the prune step)",
    ),
    "golden": Field(
        (dict,),
        default={},
        fields={
            "count": Field((int,), default=8, check=_positive, doc="number of golden inputs"),
            "seed": Field((int,), default=0, doc="seed for generated golden inputs"),
            "source": Field(
                (str,), default="auto", check=_golden_source,
                doc="auto (test images when present, else random), data or random",
            ),
        },
        doc="golden I/O used to verify every step",
    ),
}


@dataclass
class BuildConfig:
    """A validated build: the resolved field values plus where they came from."""

    values: dict
    source: str
    board: dict = field(default_factory=dict)

    def __getitem__(self, key):
        return self.values[key]

    def get(self, key, default=None):
        return self.values.get(key, default)

    def cache_values(self, keys) -> dict:
        """What the fields ``keys`` (dotted paths allowed; ``*`` for all) mean, for cache keys.

        The board is keyed by its content, not its name, and the clock by the period in
        effect, so editing a board YAML reruns exactly the steps that read the board.
        """
        keys = list(self.values) if "*" in keys else keys
        values = {k: _get_path(self.values, k) for k in keys}
        if "board" in values:
            values["board"] = {k: v for k, v in self.board.items() if k != "id"}
        if "clock_ns" in values:
            values["clock_ns"] = self.clock_ns
        return values

    @property
    def clock_ns(self) -> float:
        return float(self.values["clock_ns"] if self.values.get("clock_ns") is not None else self.board["clock_ns"])

    def verifies(self, step: str) -> bool:
        verify = self.values["verify"]
        return verify == "all" or (verify != "none" and step in verify)


def _get_path(values: dict, dotted: str):
    node = values
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def parse_override(text: str) -> tuple[list[str], Any]:
    """``key.sub=value`` -> (['key', 'sub'], value parsed as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise QnnflowError(f"--set {text}: expected key=value, e.g. --set golden.count=4")
    try:
        value = parse_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise QnnflowError(f"--set {text}: value is not valid YAML ({one_line(err)})") from None
    return key.strip().split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> set[str]:
    """Apply ``--set`` overrides in place; returns the dotted paths they touched."""
    touched = set()
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part, {}), dict):
                raise QnnflowError(f"--set {text}: '{part}' is not a section")
            node = node.setdefault(part, {})
        node[path[-1]] = value
        touched.add(".".join(path))
    return touched


def _type_names(types) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping", bool: "true/false"}
    return " or ".join(names[t] for t in types)


def _validate(raw: dict, schema: dict[str, Field], prefix: str, cfg: dict, where, base) -> dict:
    out = {}
    for key in raw:
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known keys: {', '.join(schema)}"
            raise QnnflowError(f"{where(prefix + str(key))}: unknown key; {hint}")
    for key, spec in schema.items():
        path = prefix + key
        if key not in raw or raw[key] is None:
            if spec.required:
                raise QnnflowError(f"{where(path)}: required field is missing ({spec.doc})")
            value = spec.default
            if spec.fields is not None:
                value = _validate({}, spec.fields, path + ".", cfg, where, base)
            out[key] = value
            continue
        value = raw[key]
        is_bool = isinstance(value, bool) and bool not in spec.types
        if is_bool or not isinstance(value, spec.types):
            raise QnnflowError(f"{where(path)}: expected {_type_names(spec.types)}, got {value!r}")
        if spec.is_path is not None and spec.is_path(value):
            value = os.path.normpath(base(path) / value)
        if spec.fields is not None:
            value = _validate(value, spec.fields, path + ".", cfg, where, base)
        elif spec.check is not None:
            problem = spec.check(value, cfg)
            if problem:
                raise QnnflowError(f"{where(path)}: {problem}")
        out[key] = value
    return out


def load_config(path: str | Path, overrides: list[str] = ()) -> BuildConfig:
    """Read, override and validate a build YAML. Raises QnnflowError with a one-line message."""
    path = Path(path)
    label = str(path)
    raw = load_yaml_file(path, "build file not found; see builds/ for examples")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise QnnflowError(f"{label}: expected a mapping of fields (model:, board:, ...), got {type(raw).__name__}")
    touched = apply_overrides(raw, list(overrides))
    apply_backend(raw)

    def where(field_path: str) -> str:
        origin = " (from --set)" if field_path in touched else ""
        return f"{label}: {field_path}{origin}"

    folder = path.parent.absolute()

    def base(field_path: str) -> Path:
        return Path.cwd() if field_path in touched else folder

    _add_module_folder(folder)
    values = _validate(raw, SCHEMA, "", raw, where, base)
    if values["name"] is None:
        values["name"] = path.stem
    # an RTL build folds and estimates on the LUT model fitted to Yosys (hls/nodes/yosys_fit.py)
    cfg = BuildConfig(values=values, source=label, board=board_for_backend(load_board(values["board"]), values["backend"]))
    if values["clock_ns"] is not None:
        problem = clock_problem(values["clock_ns"], cfg.board)
        if problem:
            raise QnnflowError(f"{where('clock_ns')}: {problem}")
    return cfg


def _add_module_folder(folder: Path) -> None:
    """Let ``package.module:function`` find modules beside the build file, after sys.path's own."""
    if str(folder) not in sys.path:
        sys.path.append(str(folder))

