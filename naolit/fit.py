"""`python train.py` for Lightning jobs: weight-sharing searches and final training of a fixed cell.

The config names a datamodule (``data``), a LightningModule (``model``), the Trainer and its
callbacks and loggers. The datamodule is set up first so that what the model's shape depends on
(vocabulary size, number of classes) comes from the data: ``data.model_kwargs()``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm.contrib.logging import logging_redirect_tqdm

from naolit.config_groups import build_loggers, ending_runs, instantiate_entries
from naolit.resume import checkpoint_file
from naolit.search import SearchCallback

log = logging.getLogger(__name__)
LAST_CHECKPOINT = "checkpoints/last.ckpt"  # conf/callbacks/default.yaml


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, pl.LightningModule, pl.Trainer]:
    """The datamodule, model and trainer ``cfg`` describes (the data already prepared and set up)."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = instantiate(cfg.model, **datamodule.model_kwargs())
    if cfg.accel:
        from naolit.accel import accelerate  # the opt-in seam: nothing else imports the CPU speed-ups

        accelerate(model)
    trainer = instantiate(cfg.trainer, callbacks=instantiate_entries(cfg, "callbacks"),
                          logger=build_loggers(cfg) or False)
    return datamodule, model, trainer


def run(cfg: DictConfig) -> dict[str, float]:
    """Fit (resuming from ``ckpt_path``: a run folder, a checkpoint, or ``last`` for the run folder's last
    checkpoint), then test when ``test_after_fit``; returns the final logged metrics, and a search's summary."""
    Path(cfg.paths.output_dir).mkdir(parents=True, exist_ok=True)
    datamodule, model, trainer = build(cfg)
    ckpt_path = checkpoint_file(cfg.ckpt_path, LAST_CHECKPOINT) if cfg.ckpt_path else None
    # log lines (search rounds) on lines of their own, above the progress bar
    with ending_runs(trainer.loggers), logging_redirect_tqdm():
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        if cfg.get("test_after_fit"):
            trainer.test(model, datamodule=datamodule)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    for callback in trainer.callbacks:
        if isinstance(callback, SearchCallback):
            metrics |= callback.report.summary()
    log.info("final metrics %s -> %s", metrics, cfg.paths.output_dir)
    return metrics
