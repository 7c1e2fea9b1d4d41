"""NAO: train the controller on the pool, move the best embeddings up the predictor, decode."""

from __future__ import annotations

import time
from typing import Any

import torch

from naolit.controller import (Generated, NAOController, fit_controller, generate_new, kendall_tau,
                               pairwise_accuracy, recovery)
from naolit.controller.data import rank_normalize
from naolit.controller.fit import check_fit_settings
from naolit.search.pool import ArchPool
from naolit.search.strategies.base import Proposal, Strategy
from naolit.search.strategies.thompson import TokenGaussianProcess
from naolit.spaces import Arch, SearchSpace


class NAOStrategy(Strategy):
    """Each round: fit the controller on the live pool (warm start), generate new architectures from
    the ``top_k`` best by gradient steps in embedding space, and add ``num_random`` random ones
    (exploration; NAO-WS adds 50 per round) and ``num_mutations`` one-token neighbours of the best
    architectures (local exploration: the predictor, fit on a small pool, can misjudge exactly the
    edit that improves the incumbent, and then NAO never proposes it).

    The first fit, on the random start, trains a fresh controller for ``first_steps`` optimizer steps
    (null: ``fit.steps``); each later fit warm-starts it for ``fit.steps``, a short update on the few
    new architectures of the round.

    With ``candidates`` > the number wanted, that many new architectures are decoded and the most
    promising are kept: under small query budgets this spends the queries on the best decodings instead
    of on whichever appeared at the smallest step size. ``choose_by`` says which are most promising:
    ``thompson``, one draw of a Gaussian process on the pool's tokens, or ``predictor``, the controller's
    own scores (``thompson.py``: the candidates were decoded by ascending the predictor, so it overrates
    them).
    """

    CHOOSE_BY = ("predictor", "thompson")

    def __init__(self, space: SearchSpace, controller: NAOController, fit: dict[str, Any], generate: dict[str, Any],
                 initial_size: int = 100, per_round: int = 100, num_random: int = 0, num_mutations: int = 0,
                 candidates: int | None = None, first_steps: int | None = None, choose_by: str = "thompson"):
        super().__init__(space, initial_size, per_round)
        if num_random < 0 or num_mutations < 0 or num_random + num_mutations > per_round:
            raise ValueError(f"nao strategy: num_random and num_mutations must be >= 0 and sum to at most "
                             f"per_round={per_round}, got {num_random} and {num_mutations}")
        if candidates is not None and candidates < per_round - num_random - num_mutations:
            raise ValueError(f"nao strategy: candidates must be null or >= per_round - num_random - num_mutations = "
                             f"{per_round - num_random - num_mutations}, got {candidates}")
        if choose_by not in self.CHOOSE_BY:
            raise ValueError(f"nao strategy: choose_by must be one of {self.CHOOSE_BY}, got {choose_by!r}")
        if choose_by == "thompson" and candidates is not None and initial_size < 2:
            raise ValueError(f"nao strategy: choose_by=thompson fits a Gaussian process to the pool, which needs "
                             f"initial_size >= 2, got {initial_size}")
        check_fit_settings(fit)
        if first_steps is not None and first_steps < 1:
            raise ValueError(f"nao strategy: first_steps must be null or >= 1, got {first_steps}")
        self.first_steps = first_steps
        self.fitted = False  # whether the controller has been fit once (the next fits warm-start it)
        self.candidates, self.choose_by = candidates, choose_by
        self.controller, self.fit, self.generate = controller, dict(fit), dict(generate)
        self.top_k = self.generate.pop("top_k")
        self.num_random, self.num_mutations = num_random, num_mutations
        self.metrics: dict[str, float] = {}  # controller quality on the pool it was last trained on, and fit time

    def propose(self, pool: ArchPool, n: int, generator: torch.Generator) -> list[Proposal]:
        archs, scores = pool.tensors()
        steps = self.fit["steps"] if self.fitted or self.first_steps is None else self.first_steps
        start = time.perf_counter()
        fit_controller(self.controller, archs, scores, generator=generator, **(self.fit | {"steps": steps}))
        seconds = time.perf_counter() - start
        self.fitted = True
        self.metrics = self._quality(archs, scores) | {"time/controller_fit_s": seconds}
        seeds = torch.tensor([r.arch for r in pool.top(self.top_k)], dtype=torch.long)
        num_nao = max(n - self.num_random - self.num_mutations, 0)
        generated = generate_new(self.controller, seeds, max(num_nao, self.candidates or 0), pool.seen, **self.generate)
        if len(generated) > num_nao:
            generated = self._most_promising(generated, num_nao, self._promise(generated, archs, scores, generator))
        proposals = [(g.arch, f"nao eta={g.eta:g}") for g in generated]
        taken = pool.seen | {self.space.canonical(a) for a, _ in proposals}
        mutations = self._mutations(pool, min(self.num_mutations, n - len(proposals)), taken, generator)
        proposals += [(a, "mutation") for a in mutations]
        taken |= {self.space.canonical(a) for a in mutations}
        proposals += [(a, "random") for a in self.space.sample_new(n - len(proposals), taken, generator)]
        return proposals

    def _mutations(self, pool: ArchPool, n: int, taken: set[Arch], generator: torch.Generator) -> list[Arch]:
        """``n`` random unseen one-token neighbours of the best architecture (of the next best once its
        neighbourhood is exhausted), canonically distinct."""
        chosen: dict[Arch, Arch] = {}
        for record in pool.top(len(pool)):
            if len(chosen) == n:
                break
            fresh = {}
            for arch in self.space.neighbours(record.arch):
                key = self.space.canonical(arch)
                if key not in taken and key not in chosen:
                    fresh.setdefault(key, arch)
            order = torch.randperm(len(fresh), generator=generator).tolist()
            keys = list(fresh)
            for i in order[: n - len(chosen)]:
                chosen[keys[i]] = fresh[keys[i]]
        return list(chosen.values())

    def _promise(self, generated: list[Generated], archs: torch.Tensor, scores: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
        """How promising each candidate is, by ``choose_by``: higher is better."""
        candidates = torch.tensor([g.arch for g in generated], dtype=torch.long)
        if self.choose_by == "predictor":
            return self.controller.predict_scores(candidates)
        return TokenGaussianProcess(archs, rank_normalize(scores)).sample(candidates, generator).float()

    @staticmethod
    def _most_promising(generated: list[Generated], n: int, promise: torch.Tensor) -> list[Generated]:
        """The ``n`` most promising candidates, spread over seeds: each seed's best candidate first, then
        each seed's second best, ... (so one basin cannot take every query)."""
        order = promise.argsort(descending=True, stable=True).tolist()
        rank_within_seed: dict[int, int] = {}
        tier = []
        for i in order:
            tier.append(rank_within_seed.get(generated[i].seed, 0))
            rank_within_seed[generated[i].seed] = tier[-1] + 1
        chosen = sorted(range(len(order)), key=lambda j: (tier[j], j))[:n]
        return [generated[order[j]] for j in chosen]

    def _quality(self, archs: torch.Tensor, scores: torch.Tensor) -> dict[str, float]:
        predicted = self.controller.predict_scores(archs)
        exact, hamming = recovery(self.space, self.controller.reconstruct(archs), archs)
        return {"controller/pairwise_accuracy": pairwise_accuracy(predicted, scores),
                "controller/kendall_tau": kendall_tau(predicted, scores),
                "controller/recovery": exact, "controller/hamming": hamming}

    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "fitted": self.fitted}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.fitted = state["fitted"]
