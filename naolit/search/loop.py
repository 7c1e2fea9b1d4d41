"""The search loop shared by every evaluator: evaluate -> (strategy: train, generate) -> update pool."""

from __future__ import annotations

import random
import time
from typing import Any, Callable

import numpy as np
import torch

from naolit.search.evaluator import Evaluator
from naolit.search.pool import ArchPool, Record
from naolit.search.strategies import Strategy


class SearchLoop:
    """Rounds of search over one pool.

    - ``budget``: stop once this many distinct architectures were evaluated (None: no limit).
    - ``pool_size``: after each round keep only the best ``pool_size`` (None: keep all).
    - ``rescore``: re-evaluate the whole pool at the start of each round (a weight-sharing supernet
      changes between rounds; a table does not).

    Its state (round, pool, history, strategy, RNGs) round-trips through ``state_dict``, so a search
    restored from a checkpoint continues exactly as the uninterrupted one would.
    """

    def __init__(self, strategy: Strategy, evaluator: Evaluator, seed: int = 0, budget: int | None = None,
                 pool_size: int | None = None, rescore: bool = False):
        if budget is not None and budget < 1:
            raise ValueError(f"search: budget must be >= 1 or null, got {budget}")
        if pool_size is not None and pool_size < 1:
            raise ValueError(f"search: pool_size must be >= 1 or null, got {pool_size}")
        self.strategy, self.evaluator = strategy, evaluator
        self.pool = ArchPool(strategy.space)
        self.budget, self.pool_size, self.rescore = budget, pool_size, rescore
        self.generator = torch.Generator().manual_seed(seed)
        self.round = 0
        self.timings: dict[str, float] = {}

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - len(self.pool.seen)

    @property
    def done(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def _timed(self, phase: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = fn()
        self.timings[phase] = time.perf_counter() - start
        return result

    def _evaluate(self, proposals: list[tuple[tuple[int, ...], str]]) -> list[Record]:
        if self.remaining is not None:
            proposals = proposals[: self.remaining]
        archs = [arch for arch, _ in proposals]
        scores = self._timed("evaluate", lambda: self.evaluator.score(archs)) if archs else []
        return [self.pool.add(arch, score, self.round, origin) for (arch, origin), score in zip(proposals, scores)]

    def step(self) -> list[Record]:
        """One round; round 0 evaluates ``strategy.initial_size`` random architectures."""
        if self.round == 0:
            proposals = [(a, "random") for a in self.strategy.sample_new(self.strategy.initial_size, self.pool.seen, self.generator)]
        else:
            if self.rescore:
                records = self.pool.records()
                scores = self._timed("rescore", lambda: self.evaluator.score([r.arch for r in records]))
                for record, score in zip(records, scores):
                    self.pool.add(record.arch, score, self.round, record.origin)
            n = self.strategy.per_round if self.remaining is None else min(self.strategy.per_round, self.remaining)
            proposals = self._timed("propose", lambda: self.strategy.propose(self.pool, n, self.generator))
        new = self._evaluate(proposals)
        if self.pool_size is not None:
            self.pool.keep_best(self.pool_size)
        self.round += 1
        return new

    def run(self, max_rounds: int | None = None, on_round: Callable[["SearchLoop", list[Record]], None] | None = None) -> ArchPool:
        """Rounds until the budget is spent (or ``max_rounds``, or no new architecture can be found)."""
        while not self.done and (max_rounds is None or self.round < max_rounds):
            new = self.step()
            if on_round is not None:
                on_round(self, new)
            if not new:
                break
        return self.pool

    def state_dict(self) -> dict[str, Any]:
        state = {
            "round": self.round,
            "pool": self.pool.state_dict(),
            "strategy": self.strategy.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
        }
        if hasattr(self.evaluator, "state_dict"):
            state["evaluator"] = self.evaluator.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.round = state["round"]
        self.pool.load_state_dict(state["pool"])
        self.strategy.load_state_dict(state["strategy"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        if "evaluator" in state:
            self.evaluator.load_state_dict(state["evaluator"])
