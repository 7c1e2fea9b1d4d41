"""Decoder: embedding (+ attention over encoder steps) -> token sequence, constrained to valid tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from naolit.controller.dropout import LockedDropout


class Decoder(nn.Module):
    """LSTM decoder with dot-product attention; starts from state (e_x, e_x) and token 0.

    ``allowed`` (seq_len, vocab) masks the logits at every position, in training and in decoding,
    so the model only ever distributes probability over valid tokens and every decoded sequence is
    a valid architecture.
    """

    def __init__(self, allowed: torch.Tensor, embedding_size: int, hidden_size: int, dropout: float = 0.0):
        super().__init__()
        seq_len, vocab_size = allowed.shape
        self.register_buffer("mask", torch.where(allowed, 0.0, float("-inf")), persistent=False)
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.dropout = LockedDropout(dropout)
        self.lstm = nn.LSTM(embedding_size, hidden_size, batch_first=True)
        self.combine = nn.Linear(2 * hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, vocab_size)

    def _logits(self, hidden: torch.Tensor, enc_outputs: torch.Tensor, positions: slice) -> torch.Tensor:
        attention = torch.softmax(hidden @ enc_outputs.transpose(1, 2), dim=-1)  # (n, steps, enc_steps)
        context = attention @ enc_outputs
        combined = torch.tanh(self.combine(torch.cat([hidden, context], dim=-1)))
        return self.out(self.dropout(combined)) + self.mask[positions]

    def forward(self, enc_outputs: torch.Tensor, arch_embedding: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probabilities (n, seq_len, vocab) of ``targets``."""
        inputs = F.pad(targets[:, :-1], (1, 0))  # start token 0, then the previous target
        state = arch_embedding[None].contiguous()
        hidden, _ = self.lstm(self.dropout(self.embedding(inputs)), (state, state))
        return torch.log_softmax(self._logits(hidden, enc_outputs, slice(None)), dim=-1)

    @torch.no_grad()
    def decode(self, enc_outputs: torch.Tensor, arch_embedding: torch.Tensor) -> torch.Tensor:
        """Greedy constrained decoding: (n, seq_len) tokens, every row a valid architecture.

        The LSTM is unrolled by hand: the input projection of every token is one (vocab, 4 * hidden)
        table computed once, so each step costs one hidden-to-hidden matmul.
        """
        n = enc_outputs.shape[0]
        lstm = self.lstm
        token_gates = self.embedding.weight @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + lstm.bias_hh_l0
        hidden, cell = arch_embedding, arch_embedding
        token = torch.zeros(n, dtype=torch.long, device=enc_outputs.device)
        tokens = []
        for position in range(self.mask.shape[0]):
            gates = torch.addmm(token_gates[token], hidden, lstm.weight_hh_l0.T)
            in_gate, forget_gate, candidate, out_gate = gates.chunk(4, dim=1)
            cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(in_gate) * torch.tanh(candidate)
            hidden = torch.sigmoid(out_gate) * torch.tanh(cell)
            logits = self._logits(hidden.unsqueeze(1), enc_outputs, slice(position, position + 1))
            token = logits.squeeze(1).argmax(-1)
            tokens.append(token)
        return torch.stack(tokens, dim=1)
