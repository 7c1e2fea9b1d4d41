"""Objects from the entries of a config group (``callbacks``, ``logger``), for every kind of job; a job's
W&B run named for the job and its sweep, and ended with the job."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger


def entries(cfg: DictConfig, group: str) -> list[DictConfig]:
    """The entries of a config group such as ``callbacks`` or ``logger``; an entry set to null
    (e.g. ``callbacks.progress_bar=null``) is switched off."""
    return [entry for entry in (cfg.get(group) or {}).values() if entry is not None]


def instantiate_entries(cfg: DictConfig, group: str) -> list:
    """One object per entry of a config group."""
    return [instantiate(entry) for entry in entries(cfg, group)]


def wandb_run_identity(cfg: DictConfig) -> dict[str, str]:
    """Where a job's W&B run belongs: ``group`` the sweep (``<task>_<multirun folder>``; a single run: the
    task), ``job_type`` the experiment (``+experiment=NAME``, else the task) and ``name`` the job's folder
    (``3_seed=1,strategy=re``, with ``/seed=<s>`` for each seed of ``seeds``), as on disk."""
    out = Path(cfg.paths.output_dir)
    if not HydraConfig.initialized():
        return {"group": cfg.task_name, "job_type": cfg.task_name, "name": out.name}
    hydra = HydraConfig.get()
    multirun = hydra.mode == RunMode.MULTIRUN
    return {"group": f"{cfg.task_name}_{Path(hydra.sweep.dir).name}" if multirun else cfg.task_name,
            "job_type": hydra.runtime.choices.get("experiment") or cfg.task_name,
            "name": os.path.relpath(out, Path(hydra.runtime.output_dir).parent)}


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """The configured loggers, each given the whole resolved config as its hyperparameters. A W&B entry's
    ``group``, ``job_type`` and ``name`` left null come from ``wandb_run_identity``."""
    loggers = []
    for entry in entries(cfg, "logger"):
        identity = {}
        if issubclass(get_class(entry._target_), WandbLogger):
            identity = {key: value for key, value in wandb_run_identity(cfg).items() if entry.get(key) is None}
        loggers.append(instantiate(entry, **identity))
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return loggers


@contextmanager
def ending_runs(loggers: list[Logger]) -> Iterator[None]:
    """End the job's W&B run when the block ends (marked failed if it raised). W&B keeps one run per process
    open until it is finished: the next job of a sweep in this process must start its own."""
    try:
        yield
    except BaseException:
        finish_wandb(loggers, exit_code=1)
        raise
    finish_wandb(loggers, exit_code=0)


def finish_wandb(loggers: list[Logger], exit_code: int) -> None:
    """Finish the process's W&B run, if ``loggers`` include W&B and the run was started."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        if wandb.run is not None:  # None on the ranks > 0 of a DDP job, and before the first log
            wandb.finish(exit_code=exit_code)
