"""Encoder: architecture tokens -> per-step outputs and one continuous embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from naolit.controller.dropout import LockedDropout


class Encoder(nn.Module):
    """Token embedding, ``tokens_per_step`` tokens concatenated per LSTM step, L2-normalised outputs.

    The architecture embedding is the normalised mean of the step outputs (NAO).
    """

    def __init__(self, vocab_size: int, tokens_per_step: int, embedding_size: int, hidden_size: int,
                 num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.tokens_per_step = tokens_per_step
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.dropout = LockedDropout(dropout)
        self.lstm = nn.LSTM(tokens_per_step * embedding_size, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(n, seq_len) tokens -> (n, seq_len / tokens_per_step, hidden) normalised step outputs."""
        x = self.dropout(self.embedding(tokens))
        x = x.reshape(tokens.shape[0], tokens.shape[1] // self.tokens_per_step, -1)
        outputs, _ = self.lstm(x)
        return F.normalize(outputs, dim=-1)


def embed(step_outputs: torch.Tensor) -> torch.Tensor:
    """The architecture embedding: normalised mean of the encoder's step outputs."""
    return F.normalize(step_outputs.mean(dim=1), dim=-1)
