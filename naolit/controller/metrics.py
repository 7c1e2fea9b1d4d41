"""Controller quality: predictor ranking and decoder recovery."""

from __future__ import annotations

import torch
from torchmetrics.functional import kendall_rank_corrcoef

from naolit.spaces import SearchSpace


def pairwise_accuracy(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Share of pairs with distinct targets that the prediction orders correctly (NAO's metric)."""
    target_order = torch.sign(target[:, None] - target[None, :])
    predicted_order = torch.sign(predicted[:, None] - predicted[None, :])
    pairs = target_order != 0
    return (predicted_order[pairs] == target_order[pairs]).float().mean().item()


def kendall_tau(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Kendall rank correlation (tau-b, ties handled)."""
    return kendall_rank_corrcoef(predicted.double(), target.double(), variant="b").item()


def recovery(space: SearchSpace, decoded: torch.Tensor, tokens: torch.Tensor) -> tuple[float, float]:
    """(exact-recovery rate, mean Hamming distance) of decoded vs. original architectures.

    Both compare canonical forms: decoding a symmetric twin recovers the same architecture.
    """
    mismatches = (space.canonicalize(decoded) != space.canonicalize(tokens)).sum(dim=1)
    return (mismatches == 0).float().mean().item(), mismatches.float().mean().item()
