"""The search between a supernet's training epochs (NAO-WS): one callback for every supernet."""

from __future__ import annotations

import logging
import statistics
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger

from naolit.search.loop import SearchLoop
from naolit.search.pool import Record
from naolit.search.strategies import Strategy
from naolit.search.supernet_evaluator import SupernetEvaluator
from naolit.supernets import Supernet

log = logging.getLogger(__name__)


class SearchCallback(pl.Callback):
    """Every ``every_n_epochs`` training epochs, one round of the search loop with the supernet as
    evaluator: rescore the pool, score the architectures trained since the last round, keep the best
    ``pool_size - per_round``, and let the strategy (NAO, or a baseline) propose ``per_round`` new
    ones. The supernet then trains on pool + proposals until the next round.

    The whole search state (pool, history, pending proposals, controller, RNGs) is this callback's
    checkpoint state, so resuming a Lightning checkpoint resumes the same search. Under DDP every
    rank runs the loop; scoring is split over the ranks and rank 0's proposals are broadcast, so the
    pools stay identical. Rank 0 writes ``search/`` in ``output_dir``: the pool and history (CSV, each
    round), the best cell's picture per round, and at the end the ``export_top`` best architectures
    (JSON genotype + picture).
    """

    def __init__(self, strategy: Strategy, every_n_epochs: int, pool_size: int, seed: int = 0,
                 export_top: int = 5, output_dir: str | None = None):
        if every_n_epochs < 1:
            raise ValueError(f"search callback: every_n_epochs must be >= 1, got {every_n_epochs}")
        if export_top < 1:
            raise ValueError(f"search callback: export_top must be >= 1, got {export_top}")
        self.loop = SearchLoop(strategy, evaluator=None, seed=seed, pool_size=pool_size, rescore=True, defer=True)
        self.every_n_epochs, self.export_top, self.output_dir = every_n_epochs, export_top, output_dir
        self.evaluator: SupernetEvaluator | None = None

    # ---- Lightning hooks --------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not isinstance(pl_module, Supernet):
            raise TypeError(f"search callback: the model must be a naolit Supernet, got {type(pl_module).__name__}")
        if pl_module.space.name != self.loop.strategy.space.name:
            raise ValueError(f"search callback: the strategy searches space {self.loop.strategy.space.name!r} "
                             f"but the supernet holds space {pl_module.space.name!r}")
        self.evaluator = SupernetEvaluator(pl_module, trainer.world_size, trainer.global_rank)
        self.loop.evaluator = self.evaluator
        if trainer.world_size > 1:
            self.loop.broadcast = lambda proposals: trainer.strategy.broadcast(proposals, src=0)
        self.output_dir = Path(self.output_dir or trainer.default_root_dir) / "search"

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Supernet) -> None:
        if self.loop.round == 0 and not self.loop.pending:  # a fresh search (not a resumed one)
            self.loop.start()
        pl_module.set_train_archs(self.loop.train_archs())

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Supernet) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        new = self.loop.step()
        pl_module.set_train_archs(self.loop.train_archs())
        metrics = self.round_metrics(new)
        if trainer.is_global_zero:
            self._write_round(trainer, metrics)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: Supernet) -> None:
        if trainer.is_global_zero and len(self.loop.pool):
            self.export()

    def state_dict(self) -> dict[str, Any]:
        return self.loop.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.loop.load_state_dict(state_dict)

    # ---- what a round reports -------------------------------------------------------------------
    def round_metrics(self, new: list[Record]) -> dict[str, float]:
        """The last round in numbers: the pool's and the new architectures' metric, controller quality, timings."""
        name, to_metric = self.evaluator.supernet.metric_name, self.evaluator.to_metric
        pool = [to_metric(r.score) for r in self.loop.pool.records()]
        metrics = {"search/round": float(self.loop.round), "search/pool_size": float(len(pool)),
                   "search/new": float(len(new)), f"search/best_{name}": to_metric(self.loop.pool.best().score),
                   f"search/pool_mean_{name}": statistics.fmean(pool),
                   f"search/pool_median_{name}": statistics.median(pool)}
        if new:
            metrics[f"search/new_mean_{name}"] = statistics.fmean(to_metric(r.score) for r in new)
        if "propose" in self.loop.timings:  # the controller's quality on the data of this round
            metrics |= getattr(self.loop.strategy, "metrics", {})
        metrics |= {f"time/{phase}_s": seconds for phase, seconds in self.loop.timings.items()}
        return metrics

    def _write_round(self, trainer: pl.Trainer, metrics: dict[str, float]) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        best = self.loop.pool.best()
        picture = self.loop.strategy.space.draw(best.arch, self.output_dir / f"best_cell_round{self.loop.round}.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("search/best_cell", [str(picture)], step=trainer.global_step)
        self._write_tables()
        log.info("search round %d: %s", self.loop.round,
                 ", ".join(f"{k.split('/')[-1]}={v:.4g}" for k, v in metrics.items()))

    def _write_tables(self) -> None:
        self.loop.pool.write_csv(self.output_dir / "pool.csv")
        self.loop.pool.write_csv(self.output_dir / "history.csv", self.loop.pool.history)

    def export(self) -> list[Path]:
        """The ``export_top`` best architectures of the pool as top{i}.json and top{i}.png (i = 1 is the best)."""
        space, paths = self.loop.strategy.space, []
        for i, record in enumerate(self.loop.pool.top(self.export_top), start=1):
            paths.append(space.export(record.arch, self.output_dir / f"top{i}"))
        self._write_tables()
        log.info("exported the %d best architectures to %s", len(paths), self.output_dir)
        return paths
