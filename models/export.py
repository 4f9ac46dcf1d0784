"""QONNX export and golden I/O.

The golden I/O is the reference every later step is checked against: a fixed batch of
inputs and the outputs the PyTorch (Brevitas) model gives for them. Where the inputs come
from is ``golden_source``: ``data`` (the zoo model's test images, or the golden I/O file
beside a QONNX model), ``random`` (seeded inputs in the valid range), or ``auto`` (data when
present, else random, said in one line through ``note``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.cleanup import cleanup_model

from qnnflow.base.errors import QnnflowError
from qnnflow.models.source import GOLDEN_SOURCES, ModelSource, call_model_factory


@dataclass
class Golden:
    """Golden inputs and outputs, batch first (each sample is one batch-1 model input)."""

    input: np.ndarray
    output: np.ndarray
    source: str
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def save(self, path: Path) -> None:
        np.savez(path, input=self.input, output=self.output, labels=self.labels, source=np.array(self.source))

    @classmethod
    def load(cls, path: Path) -> "Golden":
        with np.load(path) as data:
            labels = data["labels"] if "labels" in data else np.zeros(0, dtype=np.int64)
            source = str(data["source"]) if "source" in data else str(path)
            return cls(data["input"], data["output"], source, labels)


def export_brevitas(module, input_shape: tuple[int, ...]) -> ModelWrapper:
    """Export a Brevitas module to a cleaned-up QONNX ModelWrapper."""
    import torch
    from brevitas.export import export_qonnx

    module.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            export_qonnx(module, torch.zeros(input_shape), str(path), dynamo=False)
        except Exception as err:  # brevitas raises many types; the user needs one line
            raise QnnflowError(f"model: QONNX export failed: {type(err).__name__}: {' '.join(str(err).split())[:300]}") from None
        return cleanup_model(ModelWrapper(str(path)))


def torch_outputs(module, inputs: np.ndarray) -> np.ndarray:
    """Run the PyTorch model on golden inputs (batch first), one batch."""
    import torch

    with torch.no_grad():
        out = module(torch.from_numpy(inputs.reshape(-1, *inputs.shape[1:]).astype(np.float32)))
    return out.detach().numpy().astype(np.float32)


def seeded_inputs(
    shape: tuple[int, ...], count: int, seed: int, value_range=(0.0, 1.0), integer: bool = False
) -> np.ndarray:
    """``count`` inputs of ``shape`` (batch-1 shape), uniform in ``value_range`` (inclusive integers if ``integer``)."""
    rng = np.random.default_rng(seed)
    low, high = value_range
    size = (count, *shape[1:])
    values = rng.integers(int(low), int(high), size=size, endpoint=True) if integer else rng.uniform(low, high, size)
    return values.astype(np.float32)


def dataset_inputs(dataset: str, count: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``count`` test images spread evenly over the test set, preprocessed; None without data."""
    from qnnflow.models import data

    try:
        images, labels = data.load_dataset(dataset, "test")
    except QnnflowError:
        return None
    index = np.linspace(0, len(images) - 1, count).astype(int)
    return data.preprocess(images[index], dataset), labels[index]




def export_source(
    source: ModelSource, weights: str, count: int, seed: int, golden_source: str = "auto",
    note: Callable[[str], None] = lambda line: None,
) -> tuple[ModelWrapper, Golden]:
    """The exported QONNX model and its golden I/O, for any kind of model source.

    ``note`` receives one line when ``auto`` finds no data and falls back to random inputs.
    """
    if golden_source not in GOLDEN_SOURCES:
        raise QnnflowError(f"golden.source: '{golden_source}' is not one of {', '.join(GOLDEN_SOURCES)}")
    if source.kind == "qonnx":
        return _load_user_qonnx(source, count, seed, golden_source, note)
    if source.kind == "bnn-pynq":
        from qnnflow.models.bnn_pynq import imported_source

        return imported_source(source.spec, weights, count, seed)
    if source.kind == "zoo":
        from qnnflow.models.zoo import ZOO, build_model

        entry = ZOO[source.spec]
        module = build_model(source.spec, weights=weights)
        shape, value_range, dataset = entry.input_shape, entry.input_range, entry.dataset
    else:
        module, shape, value_range = call_model_factory(source.spec)
        dataset = None
    if golden_source == "data" and dataset is None:
        raise QnnflowError(f"golden.source: data, but model '{source.spec}' has no data set; use auto or random")
    model = export_brevitas(module, shape)
    real = dataset_inputs(dataset, count) if dataset and golden_source != "random" else None
    if real is not None:
        inputs, labels = real
        origin = f"{dataset} test images"
    else:
        if golden_source == "data":
            raise QnnflowError(f"golden.source: data, but no {dataset} test images were found; "
                               "set QNNFLOW_DATA to the folder holding them, or use golden.source: random")
        inputs, labels = seeded_inputs(shape, count, seed, value_range), np.zeros(0, dtype=np.int64)
        origin = f"seeded inputs in [{value_range[0]}, {value_range[1]}), seed {seed}"
        if golden_source == "auto" and dataset:
            note(f"golden inputs are random ({origin}): no {dataset} test images found; set QNNFLOW_DATA "
                 "to use them, or golden.source: random to choose random inputs")
    return model, Golden(inputs, torch_outputs(module, inputs), f"PyTorch on {origin}", labels)


def _load_user_qonnx(
    source: ModelSource, count: int, seed: int, golden_source: str, note: Callable[[str], None]
) -> tuple[ModelWrapper, Golden]:
    from qnnflow.base.execute import execute_batch

    try:
        model = cleanup_model(ModelWrapper(source.spec))
    except Exception as err:
        raise QnnflowError(f"model: cannot load QONNX file {source.spec}: {' '.join(str(err).split())[:300]}") from None
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise QnnflowError(f"model: {source.spec} must have one input and one output")
    beside = Path(source.spec).with_suffix(".npz")
    if source.golden_path is not None and golden_source != "random":
        golden = Golden.load(source.golden_path)
        golden.source = f"user golden I/O {source.golden_path}"
        return model, golden
    if golden_source == "data":
        raise QnnflowError(f"golden.source: data, but there is no golden I/O file {beside} beside the model; "
                           "add one (arrays input and output) or use golden.source: random")
    if golden_source == "auto":
        note(f"golden inputs are random (seeded, seed {seed}): no golden I/O file {beside}; "
             "add one to use your data, or golden.source: random to choose random inputs")
    name = model.graph.input[0].name
    shape, dtype = tuple(model.get_tensor_shape(name)), model.get_tensor_datatype(name)
    # An integer-annotated input gets integers over its whole range; a float one [0, 1).
    value_range = (dtype.min(), dtype.max()) if dtype.is_integer() else (0.0, 1.0)
    inputs = seeded_inputs(shape, count, seed, value_range, integer=dtype.is_integer())
    outputs = execute_batch(model, inputs)
    return model, Golden(inputs, outputs, f"the QONNX model itself on seeded inputs, seed {seed}")
