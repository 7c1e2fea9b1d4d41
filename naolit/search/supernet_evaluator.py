"""A supernet as the search's evaluator: each architecture scored once, split over the ranks."""

from __future__ import annotations

from typing import Sequence

import torch.distributed as dist

from naolit.spaces import Arch
from naolit.supernets import Supernet


class SupernetEvaluator:
    """Scores architectures with ``supernet.score``, turned higher-is-better (a loss or perplexity is
    negated). Under data parallelism rank r scores architectures r, r + world, ... and the scores are
    gathered, so every rank returns the same list and each architecture is scored once.
    ``scored_here`` counts the architectures this rank scored (for tests and logs)."""

    def __init__(self, supernet: Supernet, world_size: int = 1, rank: int = 0):
        self.supernet, self.world_size, self.rank = supernet, world_size, rank
        self.metric_name = supernet.metric_name
        self.scored_here = 0

    def to_metric(self, score: float) -> float:
        """The supernet's own metric (e.g. perplexity) of a search score."""
        return score if self.supernet.higher_is_better else -score

    def score(self, archs: Sequence[Arch]) -> list[float]:
        mine = list(archs[self.rank :: self.world_size])
        metrics = self.supernet.score(mine) if mine else []
        self.scored_here += len(mine)
        if self.world_size > 1:
            gathered: list[list[float] | None] = [None] * self.world_size
            dist.all_gather_object(gathered, metrics)
        else:
            gathered = [metrics]
        ordered = [gathered[i % self.world_size][i // self.world_size] for i in range(len(archs))]
        return [self.to_metric(m) for m in ordered]
