"""The build runner: runs the configured steps in order, caches, verifies and logs them.

For each step it saves the model as ``OUT/NN_<step>.onnx``, executes it on the golden
inputs when the step is in ``verify:``, and records in ``OUT/.qnnflow/state.json`` the
cache key (step code, qnnflow version, input model hash, the config fields the step reads,
hashes of files those fields name). A rerun skips a step whose key and outputs are
unchanged. All writes are atomic; a failed step leaves no output under its final name.
"""

from __future__ import annotations

import hashlib
import json
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
from qnnflow.flow.config import BuildConfig
from qnnflow.base.errors import QnnflowError
from qnnflow.flow.registry import Step, resolve_step
from qnnflow.flow.verify import verify_step

STATE_FILE = Path(".qnnflow") / "state.json"
GOLDEN_FILE = "golden.npz"


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
    skipped: str | None = None  # why the step could not run here (e.g. a missing tool); set by skip()

    def skip(self, reason: str) -> None:
        """Mark the step skipped: it wrote what it could, the build goes on and exits 0, a rerun retries it."""
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

        path = self.out_dir / GOLDEN_FILE
        if not path.exists():
            raise QnnflowError(f"{path} is missing; run the 'export' step first")
        return Golden.load(path)


def step_filename(index: int, name: str) -> str:
    slug = name.split(":")[-1] if ":" in name else name
    return f"{index:02d}_{slug}.onnx"


def _file_hashes(values) -> dict:
    """Hashes of files that config values name (a checkpoint, a QONNX file), so edits invalidate."""
    found = {}
    stack = [values]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and Path(item).is_file():
            found[item] = sha256_file(Path(item))
    return found


def cache_key(step: Step, cfg: BuildConfig, input_hash: str | None) -> str:
    config = dict(cfg.values) if "*" in step.config_keys else cfg.subset(step.config_keys)
    material = {
        "step": step.name,
        "code": step.code_hash(),
        "qnnflow": __version__,
        "input": input_hash,
        "config": config,
        "files": _file_hashes(config),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


class Runner:
    def __init__(self, cfg: BuildConfig, out_dir: Path, progress: Callable[[str], None] = print):
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.steps = [resolve_step(name) for name in cfg["steps"]]
        self.state_path = self.out_dir / STATE_FILE

    # -- state -----------------------------------------------------------------
    def _load_state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _record_valid(self, rec: dict | None, key: str, model_file: str) -> bool:
        if not rec or rec.get("key") != key or rec.get("skipped"):
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
        """Indices of the first and last step to run; QnnflowError for unknown or reversed names."""
        start = self._index(from_step, "--from", 0)
        stop = self._index(to_step, "--to", len(self.steps) - 1)
        if stop < start:
            raise QnnflowError(f"--to {to_step} comes before --from {from_step}")
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
        model, input_hash = self._resume_input(start, state)
        t_build = time.perf_counter()
        try:
            for i in range(start, stop + 1):
                model, input_hash = self._run_one(i, model, input_hash, state, log, force=(i == start and from_step))
        except QnnflowError as err:
            log["status"] = "failed"
            log["error"] = str(err)
            self._write_log(log, t_build)
            raise
        log["status"] = "ok"
        log["outputs"] = self._deliveries(state, stop)
        self._write_log(log, t_build)
        return log

    def _resume_input(self, start: int, state: dict):
        if start == 0:
            return None, None
        prev = self.steps[start - 1]
        rec = state.get(prev.name)
        model_file = step_filename(start - 1, prev.name)
        if not rec or sha256_file(self.out_dir / model_file) != rec.get("model_sha"):
            raise QnnflowError(
                f"--from {self.steps[start].name}: no valid output of step '{prev.name}' in {self.out_dir}; "
                "run the build without --from first"
            )
        return ModelWrapper(str(self.out_dir / model_file)), rec["model_sha"]

    def _run_one(self, i, model, input_hash, state, log, force):
        step = self.steps[i]
        model_file = step_filename(i, step.name)
        key = cache_key(step, self.cfg, input_hash)
        rec = state.get(step.name)
        verify = self.cfg.verifies(step.name)
        t0 = time.perf_counter()
        cached = not force and self._record_valid(rec, key, model_file)
        if cached:
            model = ModelWrapper(str(self.out_dir / model_file))
            if verify and rec.get("verified") is not True:
                rec.update(self._verify(step, model, i))
        else:
            state.pop(step.name, None)
            self._invalidate_from(i, state)
            ctx = StepContext(self.cfg, self.out_dir, step.name, self.progress)
            model = self._call(step, model, ctx)
            rec = {"key": key, "artifacts": ctx.artifacts, "deliveries": ctx.deliveries, "notes": ctx.notes,
                   "skipped": ctx.skipped}
            rec["model_sha"] = save_model_atomic(model, self.out_dir / model_file)
            rec["model_file"] = model_file
            previous = state.get(self.steps[i - 1].name) if i > 0 else None
            if verify and previous and previous.get("verified") and rec["model_sha"] == input_hash:
                # The step left the graph as it was (a report, code generation): already verified.
                rec.update(verified=True, max_abs_diff=previous["max_abs_diff"])
            else:
                rec.update(self._verify(step, model, i) if verify else {"verified": None, "max_abs_diff": None})
        state[step.name] = rec
        write_json_atomic(self.state_path, state)
        seconds = time.perf_counter() - t0
        entry = {
            "name": step.name,
            "seconds": round(seconds, 4),
            "verified": rec["verified"],
            "max_abs_diff": rec["max_abs_diff"],
            "cached": cached,
            "status": "skipped" if rec.get("skipped") else "done",
            "skipped": rec.get("skipped"),
            "model": model_file,
            "notes": rec.get("notes", []),
        }
        log["steps"].append(entry)
        self._progress_line(i, entry)
        return model, rec["model_sha"]

    def _call(self, step: Step, model, ctx: StepContext) -> ModelWrapper:
        try:
            result = step.fn(model, ctx)
        except QnnflowError as err:
            raise QnnflowError(f"step '{step.name}': {err}") from None
        if not isinstance(result, ModelWrapper):
            raise QnnflowError(f"step '{step.name}' returned {type(result).__name__}, expected a qonnx ModelWrapper")
        return result

    def _verify(self, step: Step, model: ModelWrapper, i: int) -> dict:
        reference = self._previous_verified_model(i)
        try:
            result = verify_step(step.name, model, self._golden(), reference)
        except QnnflowError:
            failed = self.out_dir / step_filename(i, step.name).replace(".onnx", ".failed.onnx")
            save_model_atomic(model, failed)
            (self.out_dir / step_filename(i, step.name)).unlink(missing_ok=True)
            raise
        return {"verified": result.verified, "max_abs_diff": result.max_abs_diff}

    def _previous_verified_model(self, i: int) -> ModelWrapper | None:
        state = self._load_state()
        for j in range(i - 1, -1, -1):
            rec = state.get(self.steps[j].name)
            if rec and rec.get("verified"):
                return ModelWrapper(str(self.out_dir / rec["model_file"]))
        return None

    def _golden(self):
        from qnnflow.models.export import Golden

        return Golden.load(self.out_dir / GOLDEN_FILE)

    def _invalidate_from(self, i: int, state: dict) -> None:
        """Outputs of this and later steps are stale once this step reruns: remove them."""
        for j in range(i, len(self.steps)):
            name = self.steps[j].name
            state.pop(name, None)
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

    def _write_log(self, log: dict, t_build: float) -> None:
        log["seconds"] = round(time.perf_counter() - t_build, 4)
        write_json_atomic(self.out_dir / "build_log.json", log)

    def _progress_line(self, i: int, entry: dict) -> None:
        total = len(self.steps)
        if entry["verified"] is None:
            check = "not verified"
        else:
            check = f"verified, max |diff| {entry['max_abs_diff']:.3g}"
        how = "cached" if entry["cached"] else f"{entry['seconds']:.2f} s"
        if entry["skipped"]:
            check = f"skipped: {entry['skipped']}"
        self.progress(f"[{i + 1}/{total}] {entry['name']:<14} {how:>9}  {check}")


def run_build(cfg: BuildConfig, out_dir: Path, from_step=None, to_step=None, progress=print) -> dict:
    return Runner(cfg, out_dir, progress).run(from_step, to_step)

