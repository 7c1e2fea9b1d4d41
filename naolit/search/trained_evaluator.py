"""NAO as the paper ran it: every candidate trained on its own, in parallel, its validation score the target."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger

from naolit.io import atomic_path
from naolit.search.candidate import candidate_seed, train_candidate
from naolit.search.executors import Outcome
from naolit.spaces import Arch

log = logging.getLogger(__name__)
# metric name -> (what the candidate's training logs, whether higher is better)
METRICS = {"valid_acc": ("val/acc", True), "valid_ppl": ("val/ppl", False)}
RECORD_FIELDS = ["key", "tokens", "metric", "failure", "epochs", "steps", "seconds", "worker", "device", "host",
                 "attempts", "checkpoint", "finished"]


class TrainedEvaluator:
    """Scores architectures by training each one as a fixed network (``naolit.search.candidate``) on
    ``executor`` (``naolit.search.executors``), all of a round's new ones at once.

    ``candidate``: the ``space``, ``data``, ``model`` and ``trainer`` configs of a candidate's training
    and its CPU ``threads``. Each candidate trains with a seed drawn from ``seed`` and its architecture,
    in ``folder/<hash>/``. As each finishes, its record (the metric, or why it failed; epochs, steps,
    seconds, worker, device, checkpoint) is written atomically to ``folder/<hash>.json``; an architecture
    with a record of the same settings is never trained again, so a resumed search trains only what had
    not finished. A candidate that failed every try scores NaN, its reason in ``failures`` (the search
    loop records it as failed). Scores are higher-is-better: a perplexity is negated.
    """

    def __init__(self, candidate: Mapping[str, Any], executor: Mapping[str, Any], folder: str, seed: int,
                 metric: str = "valid_acc"):
        if metric not in METRICS:
            raise ValueError(f"evaluator: metric must be one of {sorted(METRICS)}, got {metric!r}")
        self.candidate = _plain(candidate)
        self.monitor, self.higher_is_better = METRICS[metric]
        self.candidate["monitor"] = self.monitor
        threads = self.candidate.get("threads")
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"evaluator: candidate.threads must be an integer >= 1, got {threads}")
        if self.candidate["trainer"].get("limit_val_batches") == 0:
            raise ValueError("evaluator: a candidate is scored by its validation metric, so trainer.limit_val_batches "
                             "must not be 0")
        self.space = instantiate(self.candidate["space"])
        self.executor = instantiate(_plain(executor))
        self.folder, self.seed, self.metric_name = Path(folder), seed, metric
        # what a record must have been trained with to be reused
        self.settings = hashlib.sha256(json.dumps([self.candidate, seed], sort_keys=True).encode()).hexdigest()[:16]
        self.failures: dict[Arch, str] = {}  # architecture -> why its training failed
        self.train_fn: Callable[..., dict[str, Any]] = train_candidate  # what each worker runs

    def to_metric(self, score: float) -> float:
        return score if self.higher_is_better else -score

    def record_path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def finished(self, key: str) -> dict[str, Any] | None:
        """The record of the candidate ``key`` trained with these settings, if there is one."""
        path = self.record_path(key)
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        return record if record.get("settings") == self.settings else None

    def score(self, archs: Sequence[Arch]) -> list[float]:
        """Train the architectures that have no record yet (each once), on the executor; their scores,
        NaN for a failed one."""
        keys = [self.space.arch_hash(arch) for arch in archs]
        records = {key: record for key in set(keys) if (record := self.finished(key)) is not None}
        if records:
            log.info("%d of %d candidates were trained before: reusing their records", len(records), len(set(keys)))
        todo = {key: arch for key, arch in zip(keys, archs) if key not in records}
        records |= self._train(todo)
        for key, arch in zip(keys, archs):
            if records[key]["failure"] is not None:
                self.failures[self.space.canonical(arch)] = records[key]["failure"]
        return [self._score(records[key]) for key in keys]

    def _score(self, record: dict[str, Any]) -> float:
        metric = record["metric"]
        if record["failure"] is not None or metric is None:
            return math.nan
        return metric if self.higher_is_better else -metric

    def _train(self, todo: dict[str, Arch]) -> dict[str, dict[str, Any]]:
        """Train ``todo`` (hash -> architecture) on the executor; their records, each written as it arrives."""
        if not todo:
            return {}
        keys = list(todo)
        calls = [(self.candidate, list(todo[key]), candidate_seed(self.seed, key), str(self.folder / key))
                 for key in keys]
        log.info("training %d candidates on %s (%d at a time)", len(keys), self.executor.name,
                 self.executor.num_workers)
        start, records = time.perf_counter(), {}

        def started(index: int, where: str) -> None:
            log.info("candidate %s sent to %s", keys[index], where)

        for outcome in self.executor.run(self.train_fn, calls, on_start=started):
            key = keys[outcome.index]
            records[key] = self._write(key, todo[key], outcome)
            done, elapsed = len(records), time.perf_counter() - start
            result = (f"{self.metric_name} {records[key]['metric']:.4g}" if records[key]["failure"] is None
                      else f"failed: {records[key]['failure']}")
            log.info("candidate %s (%d/%d) %s, %.1f s on %s; ETA %.0f s", key, done, len(keys), result,
                     records[key]["seconds"] or 0.0, records[key]["worker"], elapsed / done * (len(keys) - done))
        return records

    def _write(self, key: str, arch: Arch, outcome: Outcome) -> dict[str, Any]:
        """The candidate's record, written atomically to ``folder/<key>.json``."""
        value = outcome.value or {}
        metric = value.get("metric")
        record = {"key": key, "tokens": " ".join(map(str, arch)), "settings": self.settings,
                  "metric": metric if metric is not None and math.isfinite(metric) else None,
                  "failure": outcome.error if outcome.error is not None else value.get("failure"),
                  "epochs": value.get("epochs"), "steps": value.get("steps"), "seconds": value.get("seconds"),
                  "worker": outcome.where, "device": value.get("device"), "host": value.get("host"),
                  "attempts": outcome.attempts, "checkpoint": value.get("checkpoint"), "finished": time.time()}
        with atomic_path(self.record_path(key)) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")
        return record

    def records(self) -> list[dict[str, Any]]:
        """Every candidate record of these settings in the folder, in the order they finished."""
        found = [json.loads(path.read_text()) for path in self.folder.glob("*.json")]
        return sorted((r for r in found if r.get("settings") == self.settings), key=lambda r: r["finished"])

    def publish(self, folder: Path, loggers: Sequence[Logger], step: int) -> None:
        """Every candidate so far as ``folder/candidates.csv`` and, to W&B, as the table ``search/candidates``."""
        rows = [[record[field] for field in RECORD_FIELDS] for record in self.records()]
        with atomic_path(folder / "candidates.csv") as tmp, tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(RECORD_FIELDS)
            writer.writerows(rows)
        for logger in loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table(key="search/candidates", columns=RECORD_FIELDS, data=rows, step=step)

    def close(self) -> None:
        """Release the executor's workers."""
        self.executor.close()


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config as plain, resolved data: what travels to the workers."""
    return OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else dict(config)
