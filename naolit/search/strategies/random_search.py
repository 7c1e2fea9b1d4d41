"""Random search: uniform samples of the space, never repeating an architecture."""

from __future__ import annotations

import torch

from naolit.search.pool import ArchPool
from naolit.search.strategies.base import Proposal, Strategy


class RandomSearch(Strategy):
    def propose(self, pool: ArchPool, n: int, generator: torch.Generator) -> list[Proposal]:
        return [(arch, "random") for arch in self.space.sample_new(n, pool.seen, generator)]
