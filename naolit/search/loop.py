"""The search loop shared by every evaluator: evaluate -> (strategy: train, generate) -> update pool."""

from __future__ import annotations

import logging
import math
import random
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch

from naolit.faults import NonFiniteError
from naolit.search.evaluator import Evaluator
from naolit.search.pool import ArchPool, Record
from naolit.search.strategies import Proposal, Strategy
from naolit.spaces import Arch
from naolit.threads import controller_threads

log = logging.getLogger(__name__)
ON_NONFINITE = ("stop", "skip")


class SearchLoop:
    """Rounds of search over one pool.

    - ``budget``: stop once this many distinct architectures were evaluated (None: no limit).
    - ``pool_size``: after each round keep only the best ``pool_size`` (None: keep all).
    - ``rescore``: re-evaluate the whole pool at the start of each round (a weight-sharing supernet
      changes between rounds; a table does not).
    - ``defer``: evaluate a round's proposals at the start of the next round instead of at once
      (weight sharing: the supernet first trains on them; ``pending`` holds them meanwhile). The
      pool is then cut to ``pool_size - per_round`` so that pool + pending is ``pool_size``:
      NAO-WS's "drop the worst, add the new".
    - ``broadcast``: applied to every proposal list, so that under data parallelism all ranks take
      rank 0's (their controllers may differ in the last bits on a GPU). Default: identity.
    - ``on_nonfinite``: what a non-finite score does (``naolit.faults``). ``stop``: raise
      ``NonFiniteError`` naming the architecture and the round, before the round's state is saved.
      ``skip``: record the architecture as failed (``ArchPool.add_failure``: in the history with the
      reason, out of the live pool, counted by the budget) and go on. Either way the round is filled in
      on a ``NonFiniteError`` raised inside it (by the controller, or a supernet's training).
    - ``propose_threads``: torch's CPU threads while the strategy proposes (NAO's controller trains and
      generates; ``controller.threads``), the job's restored after (None: the job's; ``auto``: the idle
      cores at the start of each round, see ``naolit.threads``). On a busy machine more threads than
      idle cores spin waiting for each other.

    Its state (round, pool, history, strategy, RNGs) round-trips through ``state_dict``, so a search
    restored from a checkpoint continues exactly as the uninterrupted one would.
    """

    def __init__(self, strategy: Strategy, evaluator: Evaluator, seed: int = 0, budget: int | None = None,
                 pool_size: int | None = None, rescore: bool = False, defer: bool = False,
                 broadcast: Callable[[list[Proposal]], list[Proposal]] | None = None, on_nonfinite: str = "stop",
                 propose_threads: int | str | None = None):
        check_search_settings(strategy, budget, pool_size, defer, on_nonfinite, propose_threads)
        self.strategy, self.evaluator = strategy, evaluator
        self.pool = ArchPool(strategy.space)
        self.budget, self.pool_size, self.rescore, self.defer = budget, pool_size, rescore, defer
        self.on_nonfinite, self.propose_threads = on_nonfinite, propose_threads
        self.broadcast = broadcast or (lambda proposals: proposals)
        self.pending: list[Proposal] = []
        self.generator = torch.Generator().manual_seed(seed)
        self.round = 0
        self.timings: dict[str, float] = {}  # seconds per phase of the last round

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

    def _evaluate(self, proposals: list[Proposal]) -> list[Record]:
        if self.remaining is not None:
            proposals = proposals[: self.remaining]
        archs = [arch for arch, _ in proposals]
        scores = self._timed("evaluate", lambda: self.evaluator.score(archs)) if archs else []
        return [self._record(arch, score, origin) for (arch, origin), score in zip(proposals, scores)]

    def _rescore(self) -> None:
        records = self.pool.records()
        scores = self._timed("rescore", lambda: self.evaluator.score([r.arch for r in records]))
        for record, score in zip(records, scores):
            self._record(record.arch, score, record.origin)

    def _record(self, arch: Arch, score: float, origin: str) -> Record:
        """Add one evaluation to the pool; a non-finite score stops the search or, with
        ``on_nonfinite="skip"``, is recorded as a failure."""
        if math.isfinite(score):
            return self.pool.add(arch, score, self.round, origin)
        failure = f"{self.evaluator.metric_name}={self.evaluator.to_metric(score)}"
        reason = getattr(self.evaluator, "failures", {}).get(self.strategy.space.canonical(arch))
        if reason:  # an evaluator that knows why (a candidate's training diverged, or crashed)
            failure += f": {reason}"
        genotype = self.strategy.space.to_genotype(arch)
        if self.on_nonfinite == "stop":
            raise NonFiniteError(f"architecture {genotype} scored {failure} (search.on_nonfinite=skip records such "
                                 f"architectures as failed and goes on)", self.round)
        log.warning("search round %d: architecture %s scored %s: recorded as failed", self.round, genotype, failure)
        return self.pool.add_failure(arch, self.round, origin, failure)

    def _propose(self) -> list[Proposal]:
        n = self.strategy.per_round if self.remaining is None else min(self.strategy.per_round, self.remaining)
        with _torch_threads(self.propose_threads):
            proposals = self._timed("propose", lambda: self.strategy.propose(self.pool, n, self.generator))
        return self.broadcast(proposals)

    def start(self) -> list[Proposal]:
        """Draw the ``strategy.initial_size`` random architectures that begin the search (pending)."""
        archs = self.strategy.space.sample_new(self.strategy.initial_size, self.pool.seen, self.generator)
        self.pending = self.broadcast([(a, "random") for a in archs])
        return self.pending

    def step(self) -> list[Record]:
        """One round: evaluate what is pending (round 0: the random start; otherwise, unless deferred,
        the strategy's proposals of this round), after rescoring the pool if asked; returns the new records
        (failed ones included)."""
        self.timings = {}
        try:
            if self.round == 0 and not self.pending:
                self.start()
            if self.round > 0 and self.rescore:
                self._rescore()
            if self.round > 0 and not self.defer:
                self.pending = self._propose()
            new = self._evaluate(self.pending)
            if not self.pool.live:
                raise NonFiniteError(f"every architecture evaluated so far failed ({len(self.pool.failures)} "
                                     f"non-finite scores): there is no pool to search from")
            self.pending = []
            if self.pool_size is not None:
                self.pool.keep_best(self.pool_size - (self.strategy.per_round if self.defer else 0))
            if self.defer and not self.done:
                self.pending = self._propose()
        except NonFiniteError as err:
            err.round = self.round if err.round is None else err.round
            raise
        self.round += 1
        return new

    def train_archs(self) -> list[Arch]:
        """What a supernet should train on now: the pool and the pending proposals."""
        return [r.arch for r in self.pool.records()] + [arch for arch, _ in self.pending]

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
            "budget": self.budget,
            "pool": self.pool.state_dict(),
            "pending": list(self.pending),
            "strategy": self.strategy.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": _plain_numpy_state(np.random.get_state()),
            "python_rng": random.getstate(),
        }
        if hasattr(self.evaluator, "state_dict"):
            state["evaluator"] = self.evaluator.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the search, its budget included."""
        self.round, self.budget = state["round"], state["budget"]
        self.pool.load_state_dict(state["pool"])
        self.pending = [(tuple(arch), origin) for arch, origin in state.get("pending", [])]
        self.strategy.load_state_dict(state["strategy"])
        self.generator.set_state(state["generator"])
        _restore_global_rngs(state)
        if "evaluator" in state:
            self.evaluator.load_state_dict(state["evaluator"])


def check_search_settings(strategy: Strategy, budget: int | None, pool_size: int | None, defer: bool,
                          on_nonfinite: str, propose_threads: int | str | None) -> None:
    """Raise ValueError naming the first bad setting of a search (``conf/search``), before any work."""
    if budget is not None and budget < 1:
        raise ValueError(f"search: budget must be >= 1 or null, got {budget}")
    if budget is not None and budget < strategy.initial_size:
        raise ValueError(f"search: budget must be >= the strategy's initial_size={strategy.initial_size} (the random "
                         f"architectures that start the search), got {budget}")
    if pool_size is not None and pool_size < 1:
        raise ValueError(f"search: pool_size must be >= 1 or null, got {pool_size}")
    if defer and pool_size is not None and pool_size <= strategy.per_round:
        raise ValueError(f"search: with deferred evaluation pool_size must exceed the strategy's per_round="
                         f"{strategy.per_round}, got {pool_size}")
    if on_nonfinite not in ON_NONFINITE:
        raise ValueError(f"search: on_nonfinite must be one of {list(ON_NONFINITE)}, got {on_nonfinite!r}")
    if propose_threads not in (None, "auto") and not (isinstance(propose_threads, int) and propose_threads >= 1):
        raise ValueError(f"controller: threads must be auto, an integer >= 1 or null, got {propose_threads!r}")


@contextmanager
def _torch_threads(setting: int | str | None) -> Iterator[None]:
    """torch's intra-op CPU threads set by ``setting`` inside the block (``controller_threads``), restored after."""
    before = torch.get_num_threads()
    threads = controller_threads(setting)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _plain_numpy_state(state: tuple) -> tuple:
    """numpy's RNG state with plain Python values, so that checkpoints load with ``weights_only=True``."""
    name, keys, *rest = state
    return (name, keys.tolist(), *(value.item() if hasattr(value, "item") else value for value in rest))


def _restore_global_rngs(state: dict[str, Any]) -> None:
    """Set torch's, numpy's and Python's global RNGs to those saved in a loop ``state_dict``."""
    torch.set_rng_state(state["torch_rng"])
    name, keys, *rest = state["numpy_rng"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    random.setstate(state["python_rng"])
