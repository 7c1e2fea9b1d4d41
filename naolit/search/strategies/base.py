"""The interface of a search strategy: propose new architectures from the pool."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from naolit.search.pool import ArchPool
from naolit.spaces import Arch, SearchSpace

Proposal = tuple[Arch, str]  # (architecture, how it was made)
ENUMERABLE = 1_000_000  # spaces up to this many token sequences may be enumerated


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

    def sample_new(self, n: int, exclude: set[Arch], generator: torch.Generator, max_tries: int = 100) -> list[Arch]:
        """``n`` uniformly random architectures, canonically distinct and not in ``exclude``.

        Rejection sampling; when that keeps failing (a nearly exhausted space), a small space is
        enumerated so that its last unseen architectures are still found.
        """
        found: dict[Arch, Arch] = {}

        def take(batch: torch.Tensor) -> None:
            for arch, key in zip(batch.tolist(), self.space.canonicalize(batch).tolist()):
                key = tuple(key)
                if key not in exclude and key not in found and len(found) < n:
                    found[key] = tuple(arch)

        for _ in range(max_tries):
            if len(found) >= n:
                return list(found.values())
            take(self.space.sample(2 * (n - len(found)) + 8, generator))
        if len(found) < n and self.space.num_sequences <= ENUMERABLE:
            everything = self.space.enumerate()
            take(everything[torch.randperm(len(everything), generator=generator)])
        return list(found.values())

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
