"""The interface of a search strategy: propose new architectures from the pool."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from naolit.search.pool import ArchPool
from naolit.spaces import Arch, SearchSpace

Proposal = tuple[Arch, str]  # (architecture, how it was made)


class Strategy(ABC):
    """Proposes architectures not yet evaluated. ``initial_size`` random ones start the search,
    then ``per_round`` each round."""

    def __init__(self, space: SearchSpace, initial_size: int, per_round: int):
        if initial_size < 1 or per_round < 1:
            raise ValueError(f"strategy: initial_size and per_round must be >= 1, got {initial_size} and {per_round}")
        self.space, self.initial_size, self.per_round = space, initial_size, per_round

    @abstractmethod
    def propose(self, pool: ArchPool, n: int, generator: torch.Generator) -> list[Proposal]:
        """Up to ``n`` architectures whose canonical forms are not in ``pool.seen``, and distinct."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
