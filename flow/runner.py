"""The build runner: runs the configured steps in order, caches, verifies and logs them.

For each step it saves the model as ``OUT/NN_<step>.onnx``, executes it on the golden
inputs when the step is in ``verify:`` and changed the graph, and records in
``OUT/.qnnflow/state.json`` the cache key (step code, qnnflow version, input model hash, what
the config fields the step reads mean, hashes of files and user code those fields name). A
rerun skips a step whose key and outputs are unchanged. All writes are atomic; a failed step
leaves no output under its final name.

A step counts as verified only when something was checked: its graph against the golden I/O,
or the step's own check (``StepContext.checked``, e.g. cppsim's bit-exact comparison);
otherwise the log says ``checked: none``.

Ctrl-C stops the build: the interrupted step's outputs and those of every later step are
removed, and build_log.json says ``interrupted``, so nothing stale looks current.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.base import __version__
from qnnflow.flow.artifacts import (
    remove_stale_temporaries,
    save_model_atomic,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
)
from qnnflow.base.errors import QnnflowError
from qnnflow.base.userspec import import_callable, is_user_spec
from qnnflow.flow.config import BuildConfig
from qnnflow.flow.registry import Step, module_source_hash, resolve_step
from qnnflow.flow.verify import verify_step
from qnnflow.hls.rtl_tools import tool

STATE_FILE = Path(".qnnflow") / "state.json"
GOLDEN_FILE = "golden.npz"
GOLDEN_CHECK = "golden I/O"


@dataclass
class StepContext:
    """What a step sees besides its input model: the config, the board, the output dir."""

    cfg: BuildConfig
    out_dir: Path
    step: str
    log: Callable[[str], None]
    artifacts: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    deliveries: dict[str, str] = field(default_factory=dict)  # output kind -> relative path
    notes: list[str] = field(default_factory=list)
    # What the step checked itself, if anything (e.g. "C++ simulation bit-exact on 8 images");
    # set it only after the check passed. The log then records the step as verified.
    checked: str | None = None
    skipped: str | None = None  # why the step could not run here (e.g. a missing tool); set by skip()
    golden_file: str = GOLDEN_FILE  # the golden I/O in force: export's, or a later step's (prune's)

    def skip(self, reason: str) -> None:
        """Mark the step skipped: it wrote what it could, the build goes on and exits 0; it reruns once its tools are found."""
        self.skipped = reason

    @property
    def board(self) -> dict:
        return self.cfg.board

    def write_artifact(self, relpath: str, data: bytes, delivers: str | None = None) -> Path:
        """Write a file the step produces (atomically); it becomes part of the step's cache record."""
        path = self.out_dir / relpath
        write_bytes_atomic(path, data)
        self.artifacts[relpath] = hashlib.sha256(data).hexdigest()
        if delivers:
            self.deliveries[delivers] = relpath
        return path

    def golden(self):
        from qnnflow.models.export import Golden

        path = self.out_dir / self.golden_file
        if not path.exists():
            raise QnnflowError(f"{path} is missing; run the 'export' step first")
        return Golden.load(path)


def step_filename(index: int, name: str) -> str:
    slug = name.split(":")[-1] if ":" in name else name
    return f"{index:02d}_{slug}.onnx"


# Fields that may name user code (``package.module:function``): a model factory, user steps.
_CODE_FIELDS = ("model", "steps")


def _named_inputs(values: dict) -> dict:
    """Hashes of what config values name: files (a checkpoint, a QONNX file; resolved to
    absolute paths by the config) and user code, so editing them invalidates the step."""
    found = {}
    stack = [values]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and os.path.isabs(item) and Path(item).is_file():
            found[item] = sha256_file(Path(item))
    for name in _CODE_FIELDS:
        specs = values.get(name) or []
        for spec in [specs] if isinstance(specs, str) else specs:
            if is_user_spec(spec):
                found[spec] = module_source_hash(import_callable(spec))
    return found


def cache_key(step: Step, cfg: BuildConfig, input_hash: str | None) -> str:
    config = cfg.cache_values(step.reads(cfg))
    material = {
        "step": step.name,
        "code": step.code_hash(),
        "qnnflow": __version__,
        "input": input_hash,
        "config": config,
        "files": _named_inputs(config),
        # a step that was skipped for want of a tool reruns once the tool is installed
        "tools": {tool: shutil.which(tool) for tool in step.tools},
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


class Runner:
    def __init__(self, cfg: BuildConfig, out_dir: Path, progress: Callable[[str], None] = print):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.steps = [resolve_step(name) for name in cfg["steps"]]
        self.state_path = self.out_dir / STATE_FILE
        self.log: dict = {}  # the build log of the current or last run
        self._current: int | None = None  # index of the step running, for an interrupt
        self._ctx: StepContext | None = None  # its context, while it runs
        self._t_build = 0.0

    # -- state -----------------------------------------------------------------
    def _load_state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _record_valid(self, rec: dict | None, key: str, model_file: str) -> bool:
        if not rec or rec.get("key") != key:
            return False
        if sha256_file(self.out_dir / model_file) != rec.get("model_sha"):
            return False
        return all(sha256_file(self.out_dir / p) == h for p, h in rec.get("artifacts", {}).items())

    def _index(self, name: str | None, flag: str, default: int) -> int:
        if name is None:
            return default
        names = [s.name for s in self.steps]
        if name not in names:
            raise QnnflowError(f"{flag} {name}: not a step of this build (steps: {', '.join(names)})")
        return names.index(name)

    def step_range(self, from_step: str | None = None, to_step: str | None = None) -> tuple[int, int]:
        """Indices of the first and last step to run; QnnflowError for unknown or reversed names,
        or a ``--from`` without the saved output of the step before it."""
        start = self._index(from_step, "--from", 0)
        stop = self._index(to_step, "--to", len(self.steps) - 1)
        if stop < start:
            raise QnnflowError(f"--to {to_step} comes before --from {from_step}")
        for step in self.steps[start : stop + 1]:
            for program in step.needs:
                tool(program, f"step '{step.name}'")
        if start > 0:
            prev = self.steps[start - 1]
            rec = self._load_state().get(prev.name)
            model_file = step_filename(start - 1, prev.name)
            if not rec or not rec.get("model_sha") or sha256_file(self.out_dir / model_file) != rec["model_sha"]:
                raise QnnflowError(
                    f"--from {self.steps[start].name}: no valid output of step '{prev.name}' in {self.out_dir}; "
                    "run the build without --from first"
                )
        return start, stop

    # -- run -------------------------------------------------------------------
    def run(self, from_step: str | None = None, to_step: str | None = None) -> dict:
        start, stop = self.step_range(from_step, to_step)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.out_dir)
        state = self._load_state()
        log = {
            "build": self.cfg["name"],
            "model": self.cfg["model"],
            "board": self.cfg.board["id"],
            "clock_ns": self.cfg.clock_ns,
            "qnnflow_version": __version__,
            "status": "running",
            "steps": [],
        }
        self.log = log
        self._t_build = time.perf_counter()
        # Written now and after every step, so a killed build never leaves the last run's "ok".
        self._write_log(log)
        self._current, self._ctx = None, None
        try:
            model, input_hash = self._resume_input(start, state)
            for i in range(start, stop + 1):
                self._current = i
                model, input_hash = self._run_one(i, model, input_hash, state, log, force=(i == start and from_step))
            log["outputs"] = self._deliveries(state, stop)
        except QnnflowError as err:
            log["status"] = "failed"
            log["error"] = str(err)
            self._write_log(log)
            raise
        except KeyboardInterrupt:
            with _sigint_ignored():
                self._record_interrupt(state, log)
            raise
        log["status"] = "ok"
        self._write_log(log)
        return log

    def _record_interrupt(self, state: dict, log: dict) -> None:
        """Remove what the interrupted step and every later step produced; log ``interrupted``."""
        log["status"] = "interrupted"
        if self._current is not None:
            name = self.steps[self._current].name
            if self._ctx is not None:  # files the interrupted step wrote before Ctrl-C
                for rel in self._ctx.artifacts:
                    (self.out_dir / rel).unlink(missing_ok=True)
            self._invalidate_from(self._current, state)
            write_json_atomic(self.state_path, state)
            log["interrupted_step"] = name
            log["error"] = (f"interrupted during step '{name}'; its outputs and those of later steps were removed; "
                            "rerun to continue (finished steps are cached)")
        else:
            log["error"] = "interrupted before any step ran"
        self._write_log(log)
        remove_stale_temporaries(self.out_dir)

    def _resume_input(self, start: int, state: dict):
        if start == 0:
            return None, None
        prev = self.steps[start - 1]
        rec = state[prev.name]  # step_range checked it
        return ModelWrapper(str(self.out_dir / step_filename(start - 1, prev.name))), rec["model_sha"]

    def _run_one(self, i, model, input_hash, state, log, force):
        step = self.steps[i]
        model_file = step_filename(i, step.name)
        key = cache_key(step, self.cfg, input_hash)
        rec = state.get(step.name)
        t0 = time.perf_counter()
        cached = not force and self._record_valid(rec, key, model_file)
        if cached:
            model = ModelWrapper(str(self.out_dir / model_file))
            rec.setdefault("checks", [])
        else:
            self._invalidate_from(i, state)
            self._ctx = ctx = StepContext(self.cfg, self.out_dir, step.name, self.progress,
                                          golden_file=self._golden_file(i, state))
            model = self._call(step, model, ctx)
            rec = {"key": key, "artifacts": ctx.artifacts, "deliveries": ctx.deliveries, "notes": ctx.notes,
                   "checks": [ctx.checked] if ctx.checked else [], "max_abs_diff": None, "skipped": ctx.skipped}
            rec["model_sha"] = save_model_atomic(model, self.out_dir / model_file)
            rec["model_file"] = model_file
        if self._needs_golden_check(i, rec, state):
            rec["max_abs_diff"] = self._verify(step, model, i, {**state, step.name: rec})
            rec["checks"] = [GOLDEN_CHECK, *rec["checks"]]
        state[step.name] = rec
        write_json_atomic(self.state_path, state)
        self._ctx = None
        seconds = time.perf_counter() - t0
        entry = {
            "name": step.name,
            "seconds": round(seconds, 4),
            "verified": True if rec["checks"] else None,
            "checked": "; ".join(rec["checks"]) or "none",
            "max_abs_diff": rec["max_abs_diff"],
            "cached": cached,
            "status": "skipped" if rec.get("skipped") else "done",
            "skipped": rec.get("skipped"),
            "model": model_file,
            "notes": rec.get("notes", []),
        }
        log["steps"].append(entry)
        self._write_log(log)
        self._progress_line(i, entry, rec["checks"])
        return model, rec["model_sha"]

    def _call(self, step: Step, model, ctx: StepContext) -> ModelWrapper:
        try:
            result = step.fn(model, ctx)
        except QnnflowError as err:
            raise type(err)(f"step '{step.name}': {err}") from None
        if not isinstance(result, ModelWrapper):
            raise QnnflowError(f"step '{step.name}' returned {type(result).__name__}, expected a qonnx ModelWrapper")
        return result

    def _needs_golden_check(self, i: int, rec: dict, state: dict) -> bool:
        """In ``verify:``, not yet checked, and a graph no earlier step checked (a step that
        leaves the graph as it was, such as a report or code generation, has nothing new to check)."""
        if not self.cfg.verifies(self.steps[i].name) or GOLDEN_CHECK in rec["checks"]:
            return False
        return self._golden_checked_model(i, state, sha=rec["model_sha"]) is None

    def _verify(self, step: Step, model: ModelWrapper, i: int, state: dict) -> float:
        """Check the model against the golden I/O; its max |diff|, or QnnflowError naming the culprit."""
        reference = self._golden_checked_model(i, state)
        try:
            result = verify_step(step.name, model, self._golden(i + 1, state), reference)
        except QnnflowError:
            failed = self.out_dir / step_filename(i, step.name).replace(".onnx", ".failed.onnx")
            save_model_atomic(model, failed)
            (self.out_dir / step_filename(i, step.name)).unlink(missing_ok=True)
            raise
        return result.max_abs_diff

    def _golden_checked_model(self, i: int, state: dict, sha: str | None = None) -> ModelWrapper | None:
        """The latest model before step ``i`` checked against the golden I/O (with hash ``sha`` if given)."""
        for j in range(i - 1, -1, -1):
            rec = state.get(self.steps[j].name)
            if rec and GOLDEN_CHECK in rec.get("checks", []) and sha in (None, rec["model_sha"]):
                return ModelWrapper(str(self.out_dir / rec["model_file"]))
        return None

    def _golden_file(self, i: int, state: dict) -> str:
        """The golden I/O in force for step ``i``: the last one delivered by a step before it (a step that
        changes the model's function, as prune does, delivers its own)."""
        for j in range(i - 1, -1, -1):
            delivered = state.get(self.steps[j].name, {}).get("deliveries", {}).get("golden")
            if delivered:
                return delivered
        return GOLDEN_FILE

    def _golden(self, i: int, state: dict):
        from qnnflow.models.export import Golden

        return Golden.load(self.out_dir / self._golden_file(i, state))

    def _invalidate_from(self, i: int, state: dict) -> None:
        """Outputs of this and later steps are stale once this step reruns: remove them."""
        for j in range(i, len(self.steps)):
            name = self.steps[j].name
            for rel in state.pop(name, {}).get("artifacts", {}):
                (self.out_dir / rel).unlink(missing_ok=True)
            (self.out_dir / step_filename(j, name)).unlink(missing_ok=True)
            (self.out_dir / step_filename(j, name).replace(".onnx", ".failed.onnx")).unlink(missing_ok=True)

    def _deliveries(self, state: dict, stop: int) -> dict:
        out = {"build_log": "build_log.json"}
        for j in range(stop + 1):
            out.update(state.get(self.steps[j].name, {}).get("deliveries", {}))
        last = state.get(self.steps[stop].name)
        if last:
            out["qonnx"] = last["model_file"]
        # What a skipped step would have made (e.g. a bitstream without Vivado) is not owed.
        excused = {kind for j in range(stop + 1) if state.get(self.steps[j].name, {}).get("skipped")
                   for kind in self.steps[j].produces}
        missing = [k for k in self.cfg["outputs"] if k not in out and k not in excused and stop == len(self.steps) - 1]
        if missing:
            raise QnnflowError(f"outputs: the build finished without producing {', '.join(missing)}")
        return {k: v for k, v in out.items() if k in self.cfg["outputs"] or k in ("qonnx", "build_log")}

    def _write_log(self, log: dict) -> None:
        log["seconds"] = round(time.perf_counter() - self._t_build, 4)
        write_json_atomic(self.out_dir / "build_log.json", log)

    def _progress_line(self, i: int, entry: dict, checks: list[str]) -> None:
        total = len(self.steps)
        shown = [f"{c}, max |diff| {entry['max_abs_diff']:.3g}" if c == GOLDEN_CHECK else c for c in checks]
        check = "verified: " + "; ".join(shown) if shown else "checked: none"
        how = "cached" if entry["cached"] else f"{entry['seconds']:.2f} s"
        if entry["skipped"]:
            check = f"skipped: {entry['skipped']}"
        self.progress(f"[{i + 1}/{total}] {entry['name']:<14} {how:>9}  {check}")


@contextlib.contextmanager
def _sigint_ignored():
    """A second Ctrl-C must not cut short the clean-up after the first."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_build(cfg: BuildConfig, out_dir: Path, from_step=None, to_step=None, progress=print) -> dict:
    return Runner(cfg, out_dir, progress).run(from_step, to_step)

