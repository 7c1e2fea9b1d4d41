"""The architecture pool: the architectures a search works from, and the history of every evaluation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

from naolit.spaces import Arch, SearchSpace


@dataclass(frozen=True)
class Record:
    """One evaluation: the architecture, its score (higher is better), the round and how it was made.
    A failed evaluation has no score and says why in ``failure`` (e.g. ``valid_ppl=nan``)."""

    arch: Arch
    score: float | None
    round: int
    origin: str  # "random", "nao eta=2", "mutation", ...
    failure: str | None = None


class ArchPool:
    """Live pool keyed by canonical form (symmetric twins are one architecture) plus the full history.

    ``history`` keeps every scored evaluation in order, re-scorings included; ``live`` maps each
    canonical form in the pool to its latest record. Scores are finite: a failed evaluation (a
    non-finite score) goes to ``failures`` instead and takes its architecture out of the live pool.
    """

    def __init__(self, space: SearchSpace):
        self.space = space
        self.history: list[Record] = []
        self.failures: list[Record] = []
        self.live: dict[Arch, Record] = {}
        self.seen: set[Arch] = set()  # canonical forms ever evaluated, dropped and failed ones included

    def __len__(self) -> int:
        return len(self.live)

    def __contains__(self, arch: Sequence[int]) -> bool:
        return self.space.canonical(arch) in self.live

    def add(self, arch: Sequence[int], score: float, round: int, origin: str) -> Record:
        """Record an evaluation and put (or update) the architecture in the live pool."""
        if not math.isfinite(score):
            raise ValueError(f"ArchPool.add: the score of {tuple(arch)} is {score}: only finite scores enter the "
                             f"pool (a failed evaluation goes to add_failure)")
        record = Record(tuple(arch), float(score), round, origin)
        key = self.space.canonical(arch)
        self.history.append(record)
        self.live[key] = record
        self.seen.add(key)
        return record

    def add_failure(self, arch: Sequence[int], round: int, origin: str, failure: str) -> Record:
        """Record a failed evaluation (``failure`` says why): the architecture leaves the live pool and
        counts as seen, so that it is not proposed again."""
        record = Record(tuple(arch), None, round, origin, failure)
        key = self.space.canonical(arch)
        self.failures.append(record)
        self.live.pop(key, None)
        self.seen.add(key)
        return record

    def records(self) -> list[Record]:
        """Live records, best first (ties keep insertion order)."""
        return sorted(self.live.values(), key=lambda r: -r.score)

    def top(self, k: int) -> list[Record]:
        return self.records()[:k]

    def best(self) -> Record:
        if not self.live:
            raise ValueError("the pool is empty: evaluate some architectures first")
        return self.top(1)[0]

    def keep_best(self, size: int) -> list[Record]:
        """Drop all but the ``size`` best live architectures; returns the dropped records."""
        ranked = self.records()
        for record in ranked[size:]:
            del self.live[self.space.canonical(record.arch)]
        return ranked[size:]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens, scores) of the live pool, for training the controller."""
        records = list(self.live.values())
        return (torch.tensor([r.arch for r in records], dtype=torch.long),
                torch.tensor([r.score for r in records], dtype=torch.float))

    def state_dict(self) -> dict[str, Any]:
        return {"history": [asdict(r) for r in self.history], "failures": [asdict(r) for r in self.failures],
                "live": [asdict(r) for r in self.live.values()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        def record(d: dict[str, Any]) -> Record:
            return Record(tuple(d["arch"]), d["score"], d["round"], d["origin"], d.get("failure"))

        self.history = [record(d) for d in state["history"]]
        self.failures = [record(d) for d in state.get("failures", [])]
        self.live = {self.space.canonical(r.arch): r for r in map(record, state["live"])}
        self.seen = {self.space.canonical(r.arch) for r in self.history + self.failures}
