"""What every search reports, tabular or weight-sharing: its metrics each round, and its ``search/`` folder.

- ``pool.csv`` (the live pool, best first) and ``history.csv`` (every evaluation in order, by round;
  a failed one with an empty score and its ``failure``), rewritten each round. The score column is
  named for what it holds: the evaluator's metric (``valid_ppl``, ``valid_acc``, a table column), not
  the higher-is-better search score.
- ``best_genotype.json`` and ``best_cell.png``: the best architecture so far, rewritten when it changes.
- ``top{1..k}.json`` and ``top{1..k}.png``: the ``export_top`` best architectures, at the end.
"""

from __future__ import annotations

import csv
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import Logger, WandbLogger

from naolit.io import atomic_path
from naolit.search.loop import SearchLoop
from naolit.search.pool import Record
from naolit.spaces import Arch

log = logging.getLogger(__name__)


class SearchReport:
    """The reports of ``loop``'s search, written to ``folder``."""

    def __init__(self, loop: SearchLoop, folder: str | Path, export_top: int = 5):
        if export_top < 1:
            raise ValueError(f"search: export_top must be >= 1, got {export_top}")
        self.loop, self.folder, self.export_top = loop, Path(folder), export_top
        self._drawn: Arch | None = None  # the architecture best_cell.png shows
        self.logged: list[tuple[int, dict[str, float]]] = []  # (step, metrics) of every round published

    @property
    def metric_name(self) -> str:
        return self.loop.evaluator.metric_name

    def round_metrics(self, new: list[Record]) -> dict[str, float]:
        """The last round in numbers: the pool's and the new architectures' scores and metric, what the
        evaluator and the strategy report (test accuracy of the best, controller quality), seconds per phase."""
        name, to_metric = self.metric_name, self.loop.evaluator.to_metric
        scores = [r.score for r in self.loop.pool.records()]
        scored = [r.score for r in new if r.failure is None]
        metrics = self.summary() | {
            "search/new": float(len(new)), "search/failed": float(len(new) - len(scored)),
            "search/pool_size": float(len(scores)), "search/pool_mean_score": statistics.fmean(scores),
            f"search/pool_mean_{name}": statistics.fmean(to_metric(s) for s in scores),
            f"search/pool_median_{name}": statistics.median(to_metric(s) for s in scores)}
        if scored:
            metrics[f"search/new_mean_{name}"] = statistics.fmean(to_metric(s) for s in scored)
        if "propose" in self.loop.timings:  # the controller's quality on the data of this round
            metrics |= getattr(self.loop.strategy, "metrics", {})
        return metrics | {f"time/{phase}_s": seconds for phase, seconds in self.loop.timings.items()}

    def summary(self) -> dict[str, float]:
        """The search so far: its best score and metric, architectures evaluated, rounds, and what the
        evaluator reports (a table's test accuracy of the best)."""
        best = self.loop.pool.best()
        return {"search/round": float(self.loop.round), "search/evaluated": float(len(self.loop.pool.seen)),
                "search/best_score": best.score,
                f"search/best_{self.metric_name}": self.loop.evaluator.to_metric(best.score),
                **getattr(self.loop.evaluator, "metrics", {})}

    def publish_round(self, new: list[Record], loggers: list[Logger], step: int) -> dict[str, float]:
        """Log the round's metrics to ``loggers`` at ``step`` (and the best cell's picture to W&B when it
        changed), rewrite the pool, the history and the best architecture's files; returns the metrics.
        The loggers write the metrics out at once (``save``): a run killed later keeps them."""
        metrics = self.round_metrics(new)
        self.logged.append((step, metrics))
        picture = self.write_round()
        for logger in loggers:
            logger.log_metrics(metrics, step=step)
            if picture is not None and isinstance(logger, WandbLogger):
                logger.log_image("search/best_cell", [str(picture)], step=step)
            logger.save()
        log.info("search round %d: %d evaluated, best %s %.4g", self.loop.round, len(self.loop.pool.seen),
                 self.metric_name, metrics[f"search/best_{self.metric_name}"])
        return metrics

    def replay(self, loggers: list[Logger]) -> None:
        """Log the rounds published before a resume to a resumed run's ``loggers`` (new ones, or emptied:
        CSVLogger starts its file anew), so that they hold every round."""
        for logger in loggers:
            for step, metrics in self.logged:
                logger.log_metrics(metrics, step=step)
            logger.save()

    def state_dict(self) -> dict[str, Any]:
        # plain floats, so that the state loads with weights_only=True
        return {"logged": [[step, {k: float(v) for k, v in metrics.items()}] for step, metrics in self.logged]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.logged = [(step, dict(metrics)) for step, metrics in state["logged"]]

    def write_round(self) -> Path | None:
        """pool.csv and history.csv, and best_genotype.json and best_cell.png where the best architecture
        changed; returns the picture's path if it was drawn."""
        self.write_tables()
        best = self.loop.pool.best().arch
        if best == self._drawn:
            return None
        space = self.loop.strategy.space
        space.save_genotype(best, self.folder / "best_genotype.json")
        self._drawn = best
        return space.draw(best, self.folder / "best_cell.png")

    def export(self, loggers: Sequence[Logger] = ()) -> list[Path]:
        """The tables, the best architecture's files and the ``export_top`` best architectures as
        top{i}.json and top{i}.png (i = 1 is the best); the best one's also to W&B as an artifact.
        Returns the JSON paths."""
        self.write_round()
        space = self.loop.strategy.space
        paths = [space.export(record.arch, self.folder / f"top{i}")
                 for i, record in enumerate(self.loop.pool.top(self.export_top), start=1)]
        log.info("exported the %d best architectures to %s", len(paths), self.folder)
        for logger in loggers:
            if isinstance(logger, WandbLogger):
                self.log_artifact(logger)
        return paths

    def log_artifact(self, logger: WandbLogger) -> None:
        """best_genotype.json and best_cell.png as the W&B artifact ``best_<space>_architecture`` (type
        ``architecture``), with the search's summary as its metadata."""
        import wandb

        artifact = wandb.Artifact(f"best_{self.loop.strategy.space.name}_architecture", type="architecture",
                                  metadata=self.summary())
        for name in ("best_genotype.json", "best_cell.png"):
            artifact.add_file(str(self.folder / name))
        logger.experiment.log_artifact(artifact)

    def write_tables(self) -> None:
        pool = self.loop.pool
        self.write_csv(self.folder / "pool.csv", pool.records())
        # a round's failures after its scored evaluations (sorted is stable)
        self.write_csv(self.folder / "history.csv", sorted(pool.history + pool.failures, key=lambda r: r.round),
                       failures=True)

    def write_csv(self, path: Path, records: list[Record], failures: bool = False) -> Path:
        """``records`` in order with their metric, round, origin, genotype hash and tokens (and, with
        ``failures``, why an evaluation failed: its metric is then empty), atomically."""
        space, to_metric = self.loop.strategy.space, self.loop.evaluator.to_metric
        with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            header = ["rank", self.metric_name, "round", "origin", "hash", "tokens"]
            writer.writerow(header + ["failure"] if failures else header)
            for rank, r in enumerate(records):
                metric = "" if r.score is None else to_metric(r.score)
                row = [rank, metric, r.round, r.origin, space.arch_hash(r.arch), " ".join(map(str, r.arch))]
                writer.writerow(row + [r.failure or ""] if failures else row)
        return path
