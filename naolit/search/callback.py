"""The search between a supernet's training epochs (NAO-WS): one callback for every supernet."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from naolit.resume import overridden
from naolit.search.loop import SearchLoop, check_search_settings
from naolit.search.report import SearchReport
from naolit.search.strategies import Strategy
from naolit.search.supernet_evaluator import SupernetEvaluator
from naolit.supernets import Supernet

log = logging.getLogger(__name__)


class SearchCallback(pl.Callback):
    """Every ``every_n_epochs`` training epochs, one round of the search loop with the supernet as
    evaluator: rescore the pool, score the architectures trained since the last round, keep the best
    ``pool_size - per_round``, and let the strategy (NAO, or a baseline) propose ``per_round`` new
    ones. The supernet then trains on pool + proposals until the next round. Training stops early once
    ``budget`` distinct architectures were scored or after ``max_rounds`` rounds (null: no limit).
    A non-finite score stops the run or is recorded as a failure (``on_nonfinite``), and the strategy
    proposes on ``propose_threads`` CPU threads (see ``SearchLoop``).

    The whole search state (pool, history, pending proposals, controller, RNGs) is this callback's
    checkpoint state (with the round metrics logged so far, which a resumed run logs again), so resuming a
    Lightning checkpoint resumes the same search. Under DDP every
    rank runs the loop; scoring is split over the ranks and rank 0's proposals are broadcast, so the
    pools stay identical. Rank 0 writes the search's files (``SearchReport``) to ``output_dir``/search.
    """

    def __init__(self, strategy: Strategy, every_n_epochs: int, pool_size: int, budget: int | None = None,
                 max_rounds: int | None = None, seed: int = 0, export_top: int = 5, output_dir: str | None = None,
                 on_nonfinite: str = "stop", propose_threads: int | str | None = None):
        if every_n_epochs < 1:
            raise ValueError(f"search: every_n_epochs must be >= 1, got {every_n_epochs}")
        if max_rounds is not None and max_rounds < 1:
            raise ValueError(f"search: max_rounds must be >= 1 or null, got {max_rounds}")
        check_search_settings(strategy, budget, pool_size, True, on_nonfinite, propose_threads)
        self.strategy, self.pool_size, self.budget, self.seed = strategy, pool_size, budget, seed
        self.on_nonfinite, self.propose_threads = on_nonfinite, propose_threads
        self.every_n_epochs, self.max_rounds, self.export_top, self.output_dir = (every_n_epochs, max_rounds,
                                                                                  export_top, output_dir)
        self.loop: SearchLoop | None = None  # made in setup, once the supernet to score with is known
        self.report: SearchReport | None = None
        self.round_seconds: list[float] = []  # wall time of each round run in this process (for an ETA)

    # ---- Lightning hooks --------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not isinstance(pl_module, Supernet):
            raise TypeError(f"search callback: the model must be a naolit Supernet, got {type(pl_module).__name__}")
        if pl_module.space.name != self.strategy.space.name:
            raise ValueError(f"search callback: the strategy searches space {self.strategy.space.name!r} "
                             f"but the supernet holds space {pl_module.space.name!r}")
        if trainer.max_epochs is not None and 0 <= trainer.max_epochs < self.every_n_epochs:
            raise ValueError(f"search: every_n_epochs must be <= trainer.max_epochs={trainer.max_epochs}, or no search "
                             f"round would run; got {self.every_n_epochs}")
        broadcast = None
        if trainer.world_size > 1:
            broadcast = lambda proposals: trainer.strategy.broadcast(proposals, src=0)  # noqa: E731
        self.loop = SearchLoop(self.strategy, SupernetEvaluator(pl_module, trainer.world_size, trainer.global_rank),
                               seed=self.seed, budget=self.budget, pool_size=self.pool_size, rescore=True,
                               defer=True, broadcast=broadcast, on_nonfinite=self.on_nonfinite,
                               propose_threads=self.propose_threads)
        self.report = SearchReport(self.loop, Path(self.output_dir or trainer.default_root_dir) / "search",
                                   self.export_top)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Supernet) -> None:
        if self.loop.round == 0 and not self.loop.pending:  # a fresh search (not a resumed one)
            self.loop.start()
        elif trainer.is_global_zero:  # a resumed one: its loggers get the rounds logged before
            self.report.replay(trainer.loggers)
        pl_module.set_train_archs(self.loop.train_archs())

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Supernet) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        start = time.monotonic()
        new = self.loop.step()
        pl_module.set_train_archs(self.loop.train_archs())
        if trainer.is_global_zero:
            self.report.publish_round(new, trainer.loggers, step=trainer.global_step)
        self.round_seconds.append(time.monotonic() - start)
        if self.loop.done or (self.max_rounds is not None and self.loop.round >= self.max_rounds):
            log.info("search: stopping after round %d (%d architectures evaluated)", self.loop.round,
                     len(self.loop.pool.seen))
            trainer.should_stop = True

    def rounds_in(self, epochs: range) -> int:
        """How many search rounds run at the ends of ``epochs`` (counted from 0), ``max_rounds`` permitting."""
        rounds = sum((epoch + 1) % self.every_n_epochs == 0 for epoch in epochs)
        return rounds if self.max_rounds is None else min(rounds, max(self.max_rounds - self.loop.round, 0))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: Supernet) -> None:
        if trainer.is_global_zero and len(self.loop.pool):
            self.report.export(trainer.loggers)

    def state_dict(self) -> dict[str, Any]:
        return {**self.loop.state_dict(), "report": self.report.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.loop.load_state_dict(state_dict)  # Lightning restores callbacks after their setup
        self.report.load_state_dict(state_dict["report"])
        if overridden("search.budget"):  # else the interrupted run's budget
            self.loop.budget = self.budget
