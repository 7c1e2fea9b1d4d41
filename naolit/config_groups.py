"""Objects from the entries of a config group (``callbacks``, ``logger``), for every kind of job."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger


def instantiate_entries(cfg: DictConfig, group: str) -> list:
    """One object per entry of a config group such as ``callbacks`` or ``logger``; an entry set to null
    (e.g. ``callbacks.progress_bar=null``) is switched off."""
    return [instantiate(entry) for entry in (cfg.get(group) or {}).values() if entry is not None]


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """The configured loggers, each given the whole resolved config as its hyperparameters."""
    loggers = instantiate_entries(cfg, "logger")
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return loggers
