"""Normalisation layers whose eval arithmetic exports exactly: TensorNorm and affine batch norms.

TensorNorm: the BNN-PYNQ networks end in this instead of a per-class BatchNorm so that
the classifier's output keeps one common scale: the argmax (the class) is then
unchanged by the normalisation whenever the scale is positive.
"""

import torch
from torch import nn


class TensorNorm(nn.Module):
    """Scalar batch norm: running mean/var over all elements, one learned weight and bias.

    Training: normalise by the batch statistics and update the running ones.
    Eval: (x - running_mean) / sqrt(running_var + eps) * weight + bias.
    """

    def __init__(self, eps=1e-4, momentum=0.1):
        super().__init__()
        self.eps = eps
        self.momentum = momentum
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
            mean = x.mean()
            var = x.var(unbiased=False)
            with torch.no_grad():
                n = x.numel()
                unbiased = var * n / max(n - 1, 1)
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased.detach())
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
    exported QONNX graph computes bit for bit what PyTorch computes. Training is the
    ordinary batch norm.
    """

    def forward(self, x):
        if self.training:
            return super().forward(x)
        scale = self.weight / torch.sqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * scale.detach().reshape(shape) + shift.detach().reshape(shape)


class AffineBatchNorm1d(_AffineEvalMixin, nn.BatchNorm1d):
    pass


class AffineBatchNorm2d(_AffineEvalMixin, nn.BatchNorm2d):
    pass
