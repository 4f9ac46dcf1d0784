"""`qnnflow eval`: a build's model on its test set at each stage, and the stages checked against each other.

Stages: ``torch`` (the PyTorch model), ``streamlined`` (the graph after the streamline
step, or after prune when the build has it), ``hw`` (the dataflow-node graph after to_hw, or after fold when the build folds)
and ``cppsim`` (the generated C++ compiled with g++, with the host head and tail in
Python). The graph stages come from running the build into OUT (cached like any build).

Writes OUT/report/accuracy.json (the last stage evaluated; every stage's figures under
``stages``), predictions.npy (that stage's class per test image, in order),
predictions_<stage>.npy and confusion_<stage>.png per stage. The stages after torch must
predict the same class for every image: each stage is compared with the others already
evaluated for the same model and weights (in this run or an earlier one, on the images both
saw: --limit N takes N images spread evenly over the test set); a disagreement names the
first image (its index in the test set) and the first node that differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from qnnflow.base.errors import QnnflowError
from qnnflow.flow.artifacts import sha256_file, write_bytes_atomic, write_json_atomic
from qnnflow.flow.runner import Runner

STAGES = ("torch", "streamlined", "hw", "cppsim")
GRAPH_STAGES = STAGES[1:]
CHUNK = 160  # images per task of the parallel execution (a multiple of execute_batch's 16)
TORCH_BATCH = 500
STATE = "eval_state.json"


class Disagreement(QnnflowError):
    """Two stages after torch predict different classes for an image."""


# ---------------------------------------------------------------- the build's graphs


def stage_step(cfg, stage: str) -> str:
    """The build step whose output graph a stage executes."""
    steps = cfg["steps"]
    if stage == "streamlined":  # a pruning build's streamlined graph is the pruned one
        wanted = [s for s in ("prune", "streamline") if s in steps][:1] or ["streamline"]
    else:
        wanted = [s for s in ("fold", "to_hw") if s in steps][:1] or ["to_hw"]
    if wanted[0] not in steps:
        raise QnnflowError(f"{cfg.source}: steps: stage '{stage}' needs step '{wanted[0]}'; add it to steps")
    return wanted[0]


def stage_graph(cfg, out_dir: Path, stage: str, progress) -> ModelWrapper:
    """Run the build up to the stage's step (cached steps are reused) and load its graph."""
    log = Runner(cfg, out_dir, progress).run(to_step=stage_step(cfg, stage))
    return ModelWrapper(str(out_dir / log["outputs"]["qonnx"]))


# ---------------------------------------------------------------- executing many images

_WORKER_MODEL = _WORKER_INPUTS = None  # what the forked workers execute (inherited, not pickled)


def _execute_range(bounds):
    from qnnflow.base.execute import execute_batch

    start, stop = bounds
    return start, execute_batch(_WORKER_MODEL, _WORKER_INPUTS[start:stop])


def execute_parallel(model: ModelWrapper, x: np.ndarray, bar) -> np.ndarray:
    """execute_batch over chunks of ``x`` in one forked process per core; outputs in input order."""
    global _WORKER_MODEL, _WORKER_INPUTS
    _WORKER_MODEL, _WORKER_INPUTS = model, x
    ranges = [(i, min(i + CHUNK, len(x))) for i in range(0, len(x), CHUNK)]
    results = {}
    workers = max(1, min(os.cpu_count() or 1, len(ranges)))
    try:
        if workers == 1:
            for r in ranges:
                start, out = _execute_range(r)
                results[start] = out
                bar.update(len(out))
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
                for start, out in pool.map(_execute_range, ranges):
                    results[start] = out
                    bar.update(len(out))
    finally:
        _WORKER_MODEL = _WORKER_INPUTS = None
    return np.concatenate([results[start] for start, _ in ranges])



def _tail_model(model: ModelWrapper, region) -> ModelWrapper | None:
    """The host tail after the hardware region as a graph of its own (None when there is none)."""
    from qnnflow.hls.partition import find_partition, host_graph

    tail_names = find_partition(model).tail
    return host_graph(model, tail_names, input_name=region.output) if tail_names else None


def cppsim_outputs(model: ModelWrapper, x: np.ndarray, board: dict, cache_dir: Path, bar) -> np.ndarray:
    """The model's outputs with the hardware region computed by the generated C++ (g++, cached binary)."""
    from qnnflow.base.execute import execute_batch
    from qnnflow.hls.codegen.project import generate
    from qnnflow.hls.cppsim import compile_project, region_input, run_testbench

    project = generate(model, board)
    region = project.region
    binary = compile_project(project, cache_dir / "bin")
    ranges = [(i, min(i + 4 * CHUNK, len(x))) for i in range(0, len(x), 4 * CHUNK)]
    work = Path(tempfile.mkdtemp(prefix="qnnflow-eval-"))

    def run(bounds):
        start, stop = bounds
        head = region_input(model, region, x[start:stop])
        out, _ = run_testbench(binary.path, project, head, work / str(start))
        return start, out

    results = {}
    try:
        with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
            for start, out in pool.map(run, ranges):
                results[start] = out
                bar.update(len(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    region_out = np.concatenate([results[s] for s, _ in ranges]).astype(np.float32)
    shape = model.get_tensor_shape(region.output)
    region_out = region_out.reshape(len(x), *shape[1:])
    tail = _tail_model(model, region)
    return region_out if tail is None else execute_batch(tail, region_out)


def torch_outputs(name: str, weights: str, x: np.ndarray, bar) -> np.ndarray:
    import torch

    from qnnflow.models.zoo import build_model

    model = build_model(name, weights=weights)
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), TORCH_BATCH):
            outs.append(model(torch.from_numpy(x[start:start + TORCH_BATCH])).numpy())
            bar.update(len(outs[-1]))
    return np.concatenate(outs)


# ---------------------------------------------------------------- agreement


def _locate(stage_a, stage_b, image, x, graphs, cfg, out_dir, progress) -> str:
    """Where stages a and b first differ on ``image``: the C++ layer, else the graph node."""
    from qnnflow.flow.verify import first_differing_node
    from qnnflow.hls.cppsim import cppsim

    sample = x[image:image + 1]
    if "cppsim" in (stage_a, stage_b):
        hw = graphs.get("hw") or stage_graph(cfg, out_dir, "hw", progress)
        result = cppsim(hw, sample, cfg.board, out_dir / "cppsim" / "bin", layers=True)
        if result.mismatch and result.mismatch.get("node"):
            return f"first differing node: '{result.mismatch['node']}' ({result.mismatch['op_type']}) in the C++"
        if {stage_a, stage_b} == {"cppsim", "hw"}:
            return "the C++ matches the Python graph on this image: the host tail differs"
    streamlined = graphs.get("streamlined") or stage_graph(cfg, out_dir, "streamlined", progress)
    hw = graphs.get("hw") or stage_graph(cfg, out_dir, "hw", progress)
    node = first_differing_node(hw, streamlined, sample[0])
    return f"first differing node: '{node.name}' ({node.op_type})" if node is not None else \
        "no node's output differs on this image alone"


def check_agreement(stage, predictions, stored, x, graphs, cfg, out_dir, progress, total=None):
    """Raise a Disagreement naming the first image and node where ``stage`` and an earlier stage differ."""
    from qnnflow.models.data import spread_indices

    total = len(x) if total is None else total
    mine = spread_indices(total, len(predictions))
    for other, theirs in stored.items():
        if other == stage or other == "torch":
            continue
        # Compare on the test images both evaluated (each --limit spreads its images over the set).
        common, at_mine, at_theirs = np.intersect1d(mine, spread_indices(total, len(theirs)), return_indices=True)
        differ = np.flatnonzero(theirs[at_theirs] != predictions[at_mine])
        if differ.size:
            position = int(at_mine[differ[0]])
            image = int(common[differ[0]])
            first, second = sorted((other, stage), key=STAGES.index)
            where = _locate(first, second, position, x, graphs, cfg, out_dir, progress)
            ours, others = int(predictions[position]), int(theirs[at_theirs[differ[0]]])
            classes = (others, ours) if other == first else (ours, others)
            raise Disagreement(
                f"stages '{first}' and '{second}' disagree on {differ.size} of {len(common)} test images; "
                f"first: image {image} (class {classes[0]} vs {classes[1]}); {where}")


# ---------------------------------------------------------------- the command


def _run_key(cfg) -> str:
    """Identifies comparable predictions: same model, weights (file contents) and steps."""
    weights = cfg["weights"]
    material = {"model": cfg["model"], "weights": weights, "steps": cfg["steps"],
                "weights_sha": sha256_file(Path(weights)) if Path(weights).is_file() else None}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _stored_predictions(report_dir: Path, key: str) -> dict:
    """Predictions of earlier evaluations of the same run key; stale ones are deleted."""
    try:
        state = json.loads((report_dir / STATE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        state = {}
    found = {}
    for stage in STAGES:
        path = report_dir / f"predictions_{stage}.npy"
        if state.get("key") == key and stage in state.get("stages", {}) and path.is_file():
            found[stage] = np.load(path)
        else:
            for stale in (path, report_dir / f"confusion_{stage}.png"):
                stale.unlink(missing_ok=True)
    if state.get("key") != key:
        (report_dir / "accuracy.json").unlink(missing_ok=True)
        (report_dir / "predictions.npy").unlink(missing_ok=True)
    return found if state.get("key") == key else {}


def evaluate(cfg, out_dir, stages=STAGES, limit=None, progress=print) -> dict:
    """Evaluate ``stages`` (in pipeline order); returns the accuracy.json content."""
    from qnnflow.models.accuracy import CLASS_NAMES, accuracy_report, confusion_png, predicted_classes
    from qnnflow.models.data import load_dataset, preprocess, spread_indices
    from qnnflow.models.progress import Progress
    from qnnflow.models.source import parse_model_source
    from qnnflow.models.zoo import ZOO

    if parse_model_source(cfg["model"]).kind != "zoo":
        raise QnnflowError(f"{cfg.source}: model: eval needs a zoo model (it knows the zoo's test sets), "
                           f"got '{cfg['model']}'")
    entry = ZOO[cfg["model"]]
    out_dir = Path(out_dir)
    images, labels = load_dataset(entry.dataset, "test")
    total = len(images)
    if limit is not None and limit <= 0:
        raise QnnflowError(f"--limit {limit}: must be a positive number of test images")
    chosen = spread_indices(total, limit)
    images, labels = images[chosen], labels[chosen]
    x = preprocess(images, entry.dataset)
    report_dir = out_dir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    key = _run_key(cfg)
    stored = _stored_predictions(report_dir, key)
    try:
        state = json.loads((report_dir / STATE).read_text()) if stored else {}
    except (FileNotFoundError, json.JSONDecodeError):
        state = {}
    reports = dict(state.get("stages", {})) if state.get("key") == key else {}
    graphs = {}
    last = None
    for stage in sorted(set(stages), key=STAGES.index):
        if stage in GRAPH_STAGES:
            graphs.setdefault("hw" if stage == "cppsim" else stage,
                              stage_graph(cfg, out_dir, "hw" if stage == "cppsim" else stage, progress))
        bar = Progress(len(x), f"{stage:<11}")
        t0 = time.perf_counter()
        if stage == "torch":
            outputs = torch_outputs(cfg["model"], cfg["weights"], x, bar)
        elif stage == "cppsim":
            outputs = cppsim_outputs(graphs["hw"], x, cfg.board, out_dir / "cppsim", bar)
        else:
            outputs = execute_parallel(graphs[stage], x, bar)
        bar.close()
        seconds = time.perf_counter() - t0
        predictions = predicted_classes(outputs, len(CLASS_NAMES[entry.dataset]))
        for path in (report_dir / f"predictions_{stage}.npy", report_dir / f"confusion_{stage}.png"):
            path.unlink(missing_ok=True)
        check_agreement(stage, predictions, stored, x, graphs, cfg, out_dir, progress, total)
        report = accuracy_report(labels, predictions, stage, entry.dataset)
        report.update(seconds=round(seconds, 3), images_per_s=round(len(x) / max(seconds, 1e-9), 1))
        stored[stage], reports[stage], last = predictions, report, stage
        write_bytes_atomic(report_dir / f"predictions_{stage}.npy", _npy_bytes(predictions))
        write_bytes_atomic(report_dir / f"confusion_{stage}.png", confusion_png(report, f"{cfg['name']} ({stage})"))
        write_json_atomic(report_dir / STATE, {"key": key, "stages": reports})
        progress(f"{stage}: {100 * report['accuracy']:.2f}% of {report['images']} images "
                 f"({report['images_per_s']:,.0f} img/s, {seconds:.1f} s)")
    result = {**reports[last], "model": cfg["model"], "weights": cfg["weights"],
              "stages": {s: {k: reports[s][k] for k in ("accuracy", "images", "seconds", "images_per_s")}
                         for s in sorted(reports, key=STAGES.index)}}
    write_bytes_atomic(report_dir / "predictions.npy", _npy_bytes(stored[last]))
    write_json_atomic(report_dir / "accuracy.json", result)
    return result


def _npy_bytes(array) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    return buf.getvalue()
