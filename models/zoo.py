"""The model zoo: named BNN-PYNQ-style networks and the one call that builds them.

`build_model(name, weights="random" | "trained" | <checkpoint path>, seed=0)` returns an
eval-mode torch module. "trained" is the checkpoint shipped in models/checkpoints/. Random weights are meant for testing the flow, so they
are drawn to make every layer interesting: weights use all quantization levels,
and batch-norm statistics put activation thresholds inside the accumulator
range, with some negative BN scales (flipped channels) in every layer.
"""

import difflib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from qnnflow.base.errors import QnnflowError

from .cnv import CNV
from .fc import FC
from .mobilenet import MobileNet
from .norms import TensorNorm
from .vgg10_1d import VGG10_1D
from .resnet import ResNet

CIFAR10_SHAPE = (1, 3, 32, 32)
MNIST_SHAPE = (1, 1, 28, 28)
RADIOML_SHAPE = (1, 2, 1024)  # a frame of 1024 I/Q samples

FLIPPED_FRACTION = 0.15  # share of BN channels given a negative scale
SHIPPED_CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    family: str  # "cnv", "lfc", "tfc", "vgg10_1d", "mobilenet" or "resnet8"
    weight_bits: int
    act_bits: int
    dataset: str  # "cifar10", "mnist" or "radioml2018"
    input_shape: tuple
    in_bits: int = 8  # the input quantizer; 1: the sign (pixel >= 128), as BNN-PYNQ's LFC overlays read images
    input_range: tuple = (0.0, 1.0)  # of the float input the model takes (images: [0, 1])


def _entry(family, w, a, in_bits=8):
    dataset, shape = ("cifar10", CIFAR10_SHAPE) if family in ("cnv", "mobilenet", "resnet8") else ("mnist", MNIST_SHAPE)
    suffix = "" if in_bits == 8 else f"_in{in_bits}"
    return ZooEntry(f"{family}_w{w}a{a}{suffix}", family, w, a, dataset, shape, in_bits)


ZOO = {
    e.name: e
    for e in (
        _entry("cnv", 1, 1), _entry("cnv", 1, 2), _entry("cnv", 2, 2), _entry("cnv", 4, 4),
        _entry("cnv", 8, 8),
        _entry("lfc", 1, 1), _entry("lfc", 1, 2), _entry("lfc", 2, 2), _entry("lfc", 1, 1, in_bits=1),
        _entry("tfc", 1, 1), _entry("tfc", 1, 2), _entry("tfc", 2, 2),
        ZooEntry("vgg10_1d_w4a4", "vgg10_1d", 4, 4, "radioml2018", RADIOML_SHAPE, input_range=(-1.0, 1.0)),
        _entry("mobilenet", 4, 4),
        _entry("resnet8", 4, 4),
    )
}

FC_HIDDEN = {"lfc": (1024, 1024, 1024), "tfc": (64, 64, 64)}


def get_entry(name):
    """The ZooEntry for `name`, or a QnnflowError listing the known names."""
    try:
        return ZOO[name]
    except (KeyError, TypeError):
        pass
    close = difflib.get_close_matches(str(name), list(ZOO), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise QnnflowError(f"unknown model '{name}': {hint}known models are {', '.join(ZOO)}")


def _construct(entry):
    if entry.family == "cnv":
        return CNV(entry.weight_bits, entry.act_bits)
    if entry.family == "vgg10_1d":
        return VGG10_1D(entry.weight_bits, entry.act_bits)
    if entry.family == "mobilenet":
        return MobileNet(entry.weight_bits, entry.act_bits)
    if entry.family == "resnet8":
        return ResNet(entry.weight_bits, entry.act_bits)
    return FC(FC_HIDDEN[entry.family], entry.weight_bits, entry.act_bits, in_bits=entry.in_bits)


def untrained_model(name, seed=0):
    """Zoo model `name` as training starts it (Brevitas bnn_pynq): weights ~ U(-1, 1), default
    batch-norm statistics, in training mode. Seeded; the global torch RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        model = _construct(get_entry(name))
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 2 - 1)
    return model.train()


def build_model(name, weights="random", seed=0):
    """Build zoo model `name` in eval mode.

    weights: "random" (seeded, see `randomize`), "trained" (the shipped checkpoint, see
    `shipped_checkpoint`) or the path of a torch checkpoint holding a state_dict (or a dict
    with key "state_dict", and optionally "model", the zoo name it was trained as).
    The global torch RNG is left as it was.
    """
    entry = get_entry(name)
    with torch.random.fork_rng(devices=[]):  # module construction draws from the global RNG
        model = _construct(entry)
    if isinstance(weights, str) and weights == "random":
        randomize(model, seed, entry.input_shape, entry.input_range)
    elif isinstance(weights, str) and weights == "trained":
        load_checkpoint(model, shipped_checkpoint(name), name)
    elif isinstance(weights, (str, Path)):
        load_checkpoint(model, weights, name)
    else:
        raise QnnflowError(
            f"weights={weights!r} for model '{name}' is not understood: use 'random', 'trained' or a checkpoint path")
    return model.eval()


def shipped_checkpoint(name):
    """The trained checkpoint of zoo model `name` shipped in models/checkpoints/, or a QnnflowError."""
    path = SHIPPED_CHECKPOINTS / f"{name}.pt"
    if not path.is_file():
        shipped = sorted(p.stem for p in SHIPPED_CHECKPOINTS.glob("*.pt"))
        raise QnnflowError(
            f"weights: trained: no trained checkpoint of '{name}' is shipped (models/checkpoints/ has "
            f"{', '.join(shipped) or 'none'}): train one with `qnnflow train {name}` and set weights to its best.pt")
    return path


def _randomize_norm(norm, x, gen):
    """BN statistics drawn around those of the norm's actual input ``x``.

    Thresholds then land among the sums the layer really produces, whatever the bit
    widths, so every layer keeps responding to its input.
    """
    n = norm.weight.numel()
    dims = [d for d in range(x.dim()) if d != 1] if n > 1 else list(range(x.dim()))
    mu, sd = x.mean(dim=dims).reshape(-1), x.std(dim=dims).reshape(-1).clamp_min(1e-3)
    mean = mu + torch.randn(n, generator=gen) * 0.3 * sd
    var = sd**2 * (0.5 + torch.rand(n, generator=gen))
    gamma = 0.5 + torch.rand(n, generator=gen)
    if n == 1:  # TensorNorm: flip with probability FLIPPED_FRACTION
        flip = torch.rand(1, generator=gen) < FLIPPED_FRACTION
    else:  # at least one flipped channel per layer, so the flow must handle them
        k = max(1, round(FLIPPED_FRACTION * n))
        flip = torch.zeros(n, dtype=torch.bool)
        flip[torch.randperm(n, generator=gen)[:k]] = True
    gamma[flip] = -gamma[flip]
    beta = torch.randn(n, generator=gen) * 0.2
    with torch.no_grad():
        norm.running_mean.copy_(mean)
        norm.running_var.copy_(var)
        norm.weight.copy_(gamma)
        norm.bias.copy_(beta)


CALIBRATION_BATCH = 32


def randomize(model, seed=0, input_shape=None, input_range=(0.0, 1.0)):
    """Seeded random parameters for a zoo model, in place; no global RNG use.

    Weights ~ U(-1, 1), so every quantization level is used. Each norm's running
    statistics are drawn around the per-channel mean and spread of its input on a
    seeded random batch uniform in ``input_range`` (mean + N(0, 0.3 sd), var = sd^2 * U(0.5, 1.5)), with
    gamma ~ U(0.5, 1.5), ~15% negated, and beta ~ N(0, 0.2^2).
    """
    gen = torch.Generator().manual_seed(int(seed))
    low, high = input_range
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            with torch.no_grad():
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 2 - 1)
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, TensorNorm))]
    hooks = [norm.register_forward_pre_hook(lambda mod, args: _randomize_norm(mod, args[0], gen)) for norm in norms]
    try:
        with torch.no_grad():
            model.eval()(torch.rand((CALIBRATION_BATCH, *input_shape[1:]), generator=gen) * (high - low) + low)
    finally:
        for hook in hooks:
            hook.remove()
    return model


def weights_problem(name, weights):
    """Why `weights` cannot give zoo model `name` its parameters, or None (loads the checkpoint to check)."""
    if weights == "random":
        return None
    try:
        load_checkpoint(_construct(get_entry(name)), shipped_checkpoint(name) if weights == "trained" else weights, name)
    except QnnflowError as err:
        return str(err)
    return None


def _load_state_dict(path, name=None):
    """The state_dict in checkpoint `path`; a checkpoint recording another zoo model than `name` fails."""
    path = Path(path)
    if not path.is_file():
        raise QnnflowError(f"checkpoint {path} not found: pass an existing file saved with torch.save(model.state_dict(), path)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for unreadable files
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise QnnflowError(f"checkpoint {path} cannot be read ({reason}): save it with torch.save(model.state_dict(), path)") from None
    trained_as = ckpt.get("model") if isinstance(ckpt, dict) else None
    if name is not None and isinstance(trained_as, str) and trained_as != name:
        raise QnnflowError(
            f"checkpoint {path} holds weights of model '{trained_as}', not of '{name}': use a checkpoint "
            f"trained for '{name}' (qnnflow train {name}) or set model: {trained_as}")
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        ckpt = ckpt["state_dict"]
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise QnnflowError(f"checkpoint {path} holds no state_dict: save a dict of tensors, or a dict with key 'state_dict'")
    return ckpt


def load_checkpoint(model, path, name=None):
    """Load a state_dict checkpoint into zoo model `name`; another model's or any key or shape mismatch is a QnnflowError.

    Tensors of another dtype are converted (compact checkpoints store binary weights as int8).
    """
    state = _load_state_dict(path, name)
    expected = model.state_dict()
    target = f"model '{name}'" if name else "the model"
    for key, tensor in expected.items():
        if key not in state:
            raise QnnflowError(f"checkpoint {path} lacks key '{key}' of {target}: it was saved from a different model; rebuild it for this one")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise QnnflowError(
                f"checkpoint {path} key '{key}' has shape {tuple(state[key].shape)}, {target} expects "
                f"{tuple(tensor.shape)}: it was saved from a different model or bit width")
    for key in state:
        if key not in expected:
            raise QnnflowError(f"checkpoint {path} has unexpected key '{key}' ({target} has none): it was saved from a different model; rebuild it for this one")
    model.load_state_dict(state, strict=True)
    return model


def count_params(model):
    """The number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@lru_cache(maxsize=None)
def _param_count(name):
    with torch.random.fork_rng(devices=[]):
        return count_params(_construct(ZOO[name]))


def zoo_table():
    """One dict per zoo model, for `qnnflow models` to print."""
    rows = []
    for entry in ZOO.values():
        rows.append({
            "name": entry.name, "family": entry.family, "dataset": entry.dataset,
            "weight_bits": entry.weight_bits, "act_bits": entry.act_bits, "in_bits": entry.in_bits,
            "params": _param_count(entry.name), "input_shape": entry.input_shape,
        })
    return rows
