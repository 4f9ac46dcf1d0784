"""Dropout whose masks do not depend on how the batch is split across processes.

Each process draws the mask of the whole global batch from a generator seeded the same
way on every rank and keeps its own rows, so N processes with batches of B/N drop exactly
the units one process with B drops. In eval mode (export, inference) it is the identity
and leaves no node in the graph. No parameters or buffers: state_dicts are unchanged.
"""

import torch
from torch import nn


class BatchDropout(nn.Module):
    def __init__(self, p):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability {p} must be in [0, 1)")
        self.p = p
        self.generator = None  # None: torch's global RNG
        self.rank, self.world = 0, 1

    def shard(self, generator, rank=0, world=1):
        """Draw masks from ``generator`` and keep rows ``rank`` of ``world`` equal slices."""
        self.generator, self.rank, self.world = generator, rank, world

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        rows = x.shape[0]
        keep = torch.rand((rows * self.world, *x.shape[1:]), generator=self.generator) >= self.p
        keep = keep[self.rank * rows: (self.rank + 1) * rows].to(x.device)
        return x * keep / (1 - self.p)

    def extra_repr(self):
        return f"p={self.p}"
