"""Predictor: architecture embedding -> predicted (normalised) performance in [0, 1]."""

from __future__ import annotations

import torch
from torch import nn


class Predictor(nn.Module):
    """MLP of ``num_layers`` x ``hidden_size`` ReLU layers, then a linear unit and a sigmoid."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        size = input_size
        for _ in range(num_layers):
            layers += [nn.Linear(size, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            size = hidden_size
        layers.append(nn.Linear(size, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(embedding)).squeeze(-1)
