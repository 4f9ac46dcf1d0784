"""The iterative pruning schedule: raise sparsity by ``step``, fine-tune through the trainer, repeat.

Each step removes, in every prunable layer, the weakest of the still-kept blocks (scored on the
fine-tuned model's integer weights, as transforms/prune.py scores them) up to the new sparsity,
then fine-tunes the masked model for ``fine_tune_epochs`` at a tenth of the family's learning
rate (models/train_configs/). The schedule stops at the target sparsity, or before the first
step whose test accuracy falls more than ``max_accuracy_drop`` below the unpruned model's:
that step is not kept. Blocks once pruned stay pruned.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from qnnflow.models.prune_masks import accuracy, add_input_masks, integer_weights, linear_modules
from qnnflow.models.train import dataset_tensors, train
from qnnflow.models.train_config import train_config
from qnnflow.models.zoo import build_model, get_entry
from qnnflow.transforms.prune import LayerPrune, block_keep, block_scores, hardware_matrix

FINE_TUNE_LR_FACTOR = 0.1  # of the family's training learning rate


@dataclass
class Schedule:
    state_dict: dict  # the fine-tuned weights of the last kept step
    keeps: dict[int, np.ndarray]  # per prunable layer index: its kept blocks
    sparsity: float  # of the last kept step
    points: list[dict] = field(default_factory=list)  # per step: sparsity, accuracy, kept, keeps
    stopped: str = ""


def _kept_channels(keeps: dict[int, np.ndarray], layers: list[LayerPrune]) -> dict[int, np.ndarray]:
    simd = {layer.index: layer.simd for layer in layers}
    return {i: np.flatnonzero(np.repeat(keep, simd[i])) for i, keep in keeps.items()}


def run_schedule(name: str, weights: str, layers: list[LayerPrune], target: float, step: float, epochs: int,
                 norm_order: float, max_drop: float | None, train_limit: int | None, test_limit: int | None,
                 log: Callable[[str], None] = print) -> Schedule:
    """Prune zoo model ``name`` (``weights``) step by step to ``target``, fine-tuning after each step."""
    entry = get_entry(name)
    model = build_model(name, weights)
    x_test, y_test = dataset_tensors(entry.dataset, "test", test_limit)
    base = accuracy(model, x_test, y_test)
    prunable = [layer for layer in layers if layer.how]
    keeps = {layer.index: np.ones(len(layer.keep), dtype=bool) for layer in prunable}
    schedule = Schedule({k: v.clone() for k, v in model.state_dict().items()}, keeps, 0.0,
                        [{"sparsity": 0.0, "accuracy": base, "kept": True}])
    log(f"prune: unpruned test accuracy {base:.4f} on {len(x_test)} images")
    family = train_config(name, entry.family)
    cfg = train_config(name, entry.family, overrides={"epochs": epochs, "lr": family.lr * FINE_TUNE_LR_FACTOR})
    sparsity = 0.0
    while sparsity < target - 1e-9:
        sparsity = min(round(sparsity + step, 9), target)
        modules = linear_modules(model)
        proposed = {}
        for layer in prunable:
            matrix, channels = hardware_matrix(integer_weights(modules[layer.index]), layer.op_type)
            scores = block_scores(matrix, channels, layer.simd, norm_order)
            proposed[layer.index] = block_keep(np.where(schedule.keeps[layer.index], scores, -np.inf), sparsity)
        state = schedule.state_dict

        def start(fresh, state=state, kept=_kept_channels(proposed, layers)):
            fresh.load_state_dict(state)
            add_input_masks(fresh, kept)

        with tempfile.TemporaryDirectory() as run_dir:
            result = train(name, cfg, Path(run_dir), train_limit=train_limit, test_limit=test_limit, log=log,
                           progress=False, start=start)
            tuned = torch.load(Path(run_dir) / "last.pt", weights_only=False)["state_dict"]
        acc = result.history[-1]["test_acc"]
        kept = max_drop is None or base - acc <= max_drop
        schedule.points.append({"sparsity": sparsity, "accuracy": acc, "kept": kept,
                                "keeps": {i: k.copy() for i, k in proposed.items()}})
        log(f"prune: sparsity {sparsity:g}, fine-tuned {epochs} epoch(s): test accuracy {acc:.4f}")
        if not kept:
            schedule.stopped = (f"stopped before sparsity {sparsity:g}: accuracy {acc:.4f} fell more than "
                                f"max_accuracy_drop={max_drop:g} below {base:.4f}")
            break
        model.load_state_dict(tuned)
        schedule.state_dict, schedule.keeps, schedule.sparsity = tuned, proposed, sparsity
    schedule.points[0]["keeps"] = {i: np.ones_like(k) for i, k in schedule.keeps.items()}
    return schedule
