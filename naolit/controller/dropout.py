"""Variational ("locked") dropout: one mask per sequence, shared across its time steps.

Gal & Ghahramani (2016). Besides being the usual regulariser for LSTMs, it draws seq_len times
fewer random numbers than element-wise dropout, which dominates a CPU training step otherwise.
"""

from __future__ import annotations

import torch
from torch import nn


class LockedDropout(nn.Module):
    """Dropout on (n, steps, features) with the mask drawn per (n, features)."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], 1, x.shape[2], device=x.device) >= self.p
        return x * keep / (1.0 - self.p)
