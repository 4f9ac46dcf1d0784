"""Normalisation layers whose eval arithmetic exports exactly: TensorNorm and affine batch norms.

TensorNorm: the BNN-PYNQ networks end in this instead of a per-class BatchNorm so that
the classifier's output keeps one common scale: the argmax (the class) is then
unchanged by the normalisation whenever the scale is positive.

Training uses the batch statistics of `batch_moments`; a layer whose ``sync_group`` is set
(distributed training) normalises by the statistics of the global batch.
"""

import torch
from torch import nn


def batch_moments(x, dims, group=None):
    """Mean and biased variance of ``x`` over ``dims`` (kept as size 1), and the element count.

    With a process group the sums run over every rank's batch, so N processes with batches
    of B/N normalise exactly as one process with B. The sums go through the autograd-aware
    all-reduce: a rank's gradient then includes what its samples contribute to the other
    ranks' statistics. Two passes (mean, then squared deviations) for accuracy.
    """
    count = 1
    for d in dims:
        count *= x.shape[d]
    total = x.sum(dim=dims, keepdim=True)
    if group is not None:
        import warnings

        from torch.distributed import get_world_size
        from torch.distributed.nn.functional import all_reduce

        # Deprecated in favour of a functional collective without this autograd rule; still correct.
        warnings.filterwarnings("ignore", message=".*distributed.nn.functional.all_reduce is deprecated")
        total = all_reduce(total, group=group)
        count *= get_world_size(group)
    mean = total / count
    squares = ((x - mean) ** 2).sum(dim=dims, keepdim=True)
    if group is not None:
        squares = all_reduce(squares, group=group)
    return mean, squares / count, count


def _update_running(norm, mean, var, count):
    """Exponential running statistics, with the unbiased variance (as torch's BatchNorm)."""
    with torch.no_grad():
        unbiased = var.detach().reshape(-1) * count / max(count - 1, 1)
        norm.running_mean.mul_(1 - norm.momentum).add_(norm.momentum * mean.detach().reshape(-1))
        norm.running_var.mul_(1 - norm.momentum).add_(norm.momentum * unbiased)


class TensorNorm(nn.Module):
    """Scalar batch norm: running mean/var over all elements, one learned weight and bias.

    Training: normalise by the batch statistics and update the running ones.
    Eval: (x - running_mean) / sqrt(running_var + eps) * weight + bias.
    """

    def __init__(self, eps=1e-4, momentum=0.1):
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.sync_group = None
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))
        self.register_buffer("running_mean", torch.zeros(1))
        self.register_buffer("running_var", torch.ones(1))

    def reset_parameters(self):
        with torch.no_grad():
            self.weight.fill_(1.0)
            self.bias.zero_()
            self.running_mean.zero_()
            self.running_var.fill_(1.0)

    def forward(self, x):
        if self.training:
            mean, var, count = batch_moments(x, tuple(range(x.dim())), self.sync_group)
            _update_running(self, mean, var, count)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias

    def extra_repr(self):
        return f"eps={self.eps}, momentum={self.momentum}"


class _AffineEvalMixin:
    """Eval-mode batch norm computed as ``x * A + B`` with A, B precomputed in float32.

    PyTorch's fused batch-norm kernel and onnxruntime's BatchNormalization round
    differently; at 8-bit activations that flips the odd activation at a near-tie. An
    explicit Mul and Add export as Mul and Add nodes with the same constants, so the
    exported QONNX graph computes bit for bit what PyTorch computes. Training normalises
    per channel by `batch_moments` (the global batch's when ``sync_group`` is set).
    """

    sync_group = None

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            dims = (0,) + tuple(range(2, x.dim()))
            mean, var, count = batch_moments(x, dims, self.sync_group)
            _update_running(self, mean, var, count)
            return (x - mean) / torch.sqrt(var + self.eps) * self.weight.reshape(shape) + self.bias.reshape(shape)
        scale = self.weight / torch.sqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale.detach().reshape(shape) + shift.detach().reshape(shape)


class AffineBatchNorm1d(_AffineEvalMixin, nn.BatchNorm1d):
    pass


class AffineBatchNorm2d(_AffineEvalMixin, nn.BatchNorm2d):
    pass
