"""(architecture, score) training data for the controller."""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset


def minmax_normalize(scores: torch.Tensor) -> torch.Tensor:
    """Scale scores to [0, 1] over the current pool (NAO's target normalisation)."""
    low, high = scores.min(), scores.max()
    if high == low:
        return torch.full_like(scores, 0.5)
    return (scores - low) / (high - low)


def rank_normalize(scores: torch.Tensor) -> torch.Tensor:
    """Each score's quantile in the pool, in [0, 1] (ties share their mean rank)."""
    if len(scores) == 1:
        return torch.full_like(scores, 0.5)
    less = (scores[None, :] < scores[:, None]).sum(1).float()
    equal = (scores[None, :] == scores[:, None]).sum(1).float()
    return (less + (equal - 1) / 2) / (len(scores) - 1)


NORMALIZERS = {"minmax": minmax_normalize, "rank": rank_normalize}


def controller_dataloader(archs: torch.Tensor, targets: torch.Tensor, batch_size: int,
                          generator: torch.Generator | None) -> DataLoader:
    """Shuffled batches of (tokens, targets), sliced whole from memory; targets are already normalised
    (``NORMALIZERS``)."""
    if archs.shape[0] != targets.shape[0] or archs.shape[0] == 0:
        raise ValueError(f"controller data: need as many scores as architectures (> 0), "
                         f"got {archs.shape[0]} architectures and {targets.shape[0]} scores")
    dataset = TensorDataset(archs.long(), targets.float())
    # Index the tensors with a whole batch of indices at once: no per-item collate.
    sampler = BatchSampler(RandomSampler(dataset, generator=generator), batch_size, drop_last=False)
    return DataLoader(dataset, sampler=sampler, batch_size=None)
