"""Pruning on the PyTorch side, for fine-tuning: a layer's pruned input channels masked to zero.

Multiplying a layer's input channels by 0 is the same as zeroing its weights there, also for
binary weights, which cannot hold 0; the masked channels get no gradient. The layers are the
model's QuantConv2d/QuantLinear in module order, which is the order of the exported graph's
Conv/MatMul nodes (transforms/prune.py numbers them the same way).
"""

from __future__ import annotations

import numpy as np
import torch
from brevitas.nn import QuantConv2d, QuantLinear


def linear_modules(model) -> list:
    return [m for m in model.modules() if isinstance(m, (QuantConv2d, QuantLinear))]


def integer_weights(module) -> np.ndarray:
    """The layer's quantized integer weights as the exported graph holds them: Conv (OC, C, KH, KW), a
    linear layer as a MatMul (C, OC)."""
    w = module.quant_weight().int().detach().numpy().astype(np.int64)
    return w if isinstance(module, QuantConv2d) else w.T


def add_input_masks(model, kept: dict[int, np.ndarray]) -> list:
    """Zero the input channels of linear layer i not in ``kept[i]`` (indices); returns the hook handles."""
    handles = []
    layers = linear_modules(model)
    for i, channels in kept.items():
        module = layers[i]
        size = module.in_channels if isinstance(module, QuantConv2d) else module.in_features
        mask = torch.zeros(size)
        mask[torch.as_tensor(np.asarray(channels), dtype=torch.long)] = 1.0
        shape = (1, size, 1, 1) if isinstance(module, QuantConv2d) else (1, size)

        def hook(mod, args, mask=mask.view(shape)):
            return (args[0] * mask, *args[1:])

        handles.append(module.register_forward_pre_hook(hook))
    return handles


def accuracy(model, images: torch.Tensor, labels: torch.Tensor, batch: int = 500) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on the given test tensors."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), batch):
            correct += int((model(images[start:start + batch]).argmax(1) == labels[start:start + batch]).sum())
    return correct / len(images)
