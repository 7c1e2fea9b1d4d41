"""Regularised (aging) evolution, Real et al. 2019.

The population is the ``population_size`` most recently evaluated architectures (the oldest age
out). Each child: sample ``sample_size`` members, mutate the best one at one random position.
"""

from __future__ import annotations

import torch

from naolit.search.pool import ArchPool
from naolit.search.strategies.base import Proposal, Strategy
from naolit.spaces import Arch, SearchSpace


class RegularizedEvolution(Strategy):
    def __init__(self, space: SearchSpace, population_size: int = 30, sample_size: int = 10, per_round: int = 1,
                 max_mutation_tries: int = 100):
        if not 1 <= sample_size <= population_size:
            raise ValueError(f"evolution: need 1 <= sample_size <= population_size, got {sample_size} and {population_size}")
        super().__init__(space, initial_size=population_size, per_round=per_round)
        self.population_size, self.sample_size, self.max_mutation_tries = population_size, sample_size, max_mutation_tries

    def mutate(self, arch: Arch, generator: torch.Generator) -> Arch:
        """Change the token at one uniformly chosen position to another allowed token."""
        position = int(torch.randint(self.space.seq_len, (1,), generator=generator))
        choices = [t for t in self.space.allowed[position].nonzero().flatten().tolist() if t != arch[position]]
        if not choices:  # a position with a single allowed token cannot change
            return arch
        child = list(arch)
        child[position] = choices[int(torch.randint(len(choices), (1,), generator=generator))]
        return tuple(child)

    def propose(self, pool: ArchPool, n: int, generator: torch.Generator) -> list[Proposal]:
        population = pool.history[-self.population_size :]
        proposals: dict[Arch, Proposal] = {}
        for _ in range(n * self.max_mutation_tries):
            if len(proposals) == n:
                break
            picks = torch.randperm(len(population), generator=generator)[: self.sample_size].tolist()
            parent = max((population[i] for i in picks), key=lambda r: r.score)
            child = self.mutate(parent.arch, generator)
            key = self.space.canonical(child)
            if key not in pool.seen and key not in proposals:
                proposals[key] = (child, "mutation")
        return list(proposals.values())
