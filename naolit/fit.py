"""`python train.py` for Lightning jobs: weight-sharing searches and final training of a fixed cell.

The config names a datamodule (``data``), a LightningModule (``model``), the Trainer and its
callbacks and loggers. The datamodule is set up first so that what the model's shape depends on
(vocabulary size, number of classes) comes from the data: ``data.model_kwargs()``.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm.contrib.logging import logging_redirect_tqdm

from naolit import checkpoints
from naolit.config_groups import build_loggers, ending_runs, instantiate_entries
from naolit.faults import NonFiniteGuard
from naolit.io import remove_stale_temporaries, write_error
from naolit.resume import checkpoint_file
from naolit.search import SearchCallback

log = logging.getLogger(__name__)
LAST_CHECKPOINT = "checkpoints/last.ckpt"  # conf/callbacks/default.yaml
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")  # ckpt_path values Lightning resolves itself


def writer(cfg: DictConfig) -> dict[str, object]:
    """Which job this is, as its checkpoints record it: one resumes only a job of the same model, that
    searches exactly when this one does (``checkpoints.check_lightning_checkpoint``)."""
    return {"task_name": cfg.task_name, "entry": cfg.entry, "model": cfg.model._target_.rsplit(".", 1)[-1],
            "search": cfg.get("search") is not None}


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, pl.LightningModule, pl.Trainer]:
    """The datamodule, model and trainer ``cfg`` describes (the data already prepared and set up).

    The datamodule's, callbacks' (the search's) and trainer's settings are checked as they are built,
    before the data is read or downloaded. Every trainer checks its training loss (``NonFiniteGuard``)
    and writes which job it is into its checkpoints (``checkpoints.WriterStamp``).
    """
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    callbacks = [*instantiate_entries(cfg, "callbacks"), NonFiniteGuard(), checkpoints.WriterStamp(writer(cfg))]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=build_loggers(cfg) or False)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = instantiate(cfg.model, **datamodule.model_kwargs())
    if cfg.accel:
        from naolit.accel import accelerate  # the opt-in seam: nothing else imports the CPU speed-ups

        accelerate(model)
    return datamodule, model, trainer


def run(cfg: DictConfig) -> dict[str, float]:
    """Fit (resuming from ``ckpt_path``: a run folder or a checkpoint, checked first, or ``last`` for the run
    folder's last checkpoint), then test when ``test_after_fit``; returns the final logged metrics, and a
    search's summary."""
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for folder in (out, out / "search"):
        remove_stale_temporaries(folder)
    ckpt_path = checkpoint_file(cfg.ckpt_path, LAST_CHECKPOINT) if cfg.ckpt_path else None
    if ckpt_path and ckpt_path not in LIGHTNING_CKPT_NAMES:
        checkpoints.check_lightning_checkpoint(ckpt_path, writer(cfg))
    datamodule, model, trainer = build(cfg)
    # log lines (search rounds) on lines of their own, above the progress bar
    with ending_runs(trainer.loggers), logging_redirect_tqdm():
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        except OSError as err:  # a full disk while Lightning writes a checkpoint: say so, naming the file if known
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise write_error(err.filename2 or err.filename or out, err) from err
        if cfg.get("test_after_fit"):
            trainer.test(model, datamodule=datamodule)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    for callback in trainer.callbacks:
        if isinstance(callback, SearchCallback):
            metrics |= callback.report.summary()
    log.info("final metrics %s -> %s", metrics, cfg.paths.output_dir)
    return metrics
