"""Fit the controller on a pool of (architecture, score) pairs with a Lightning Trainer."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

import pytorch_lightning as pl
import torch

from naolit.controller.data import controller_dataloader
from naolit.controller.module import NAOController


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-Trainer banner (device info, tips): a search builds one Trainer per round."""
    logger = logging.getLogger("pytorch_lightning")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def fit_controller(
    controller: NAOController,
    archs: torch.Tensor,
    scores: torch.Tensor,
    epochs: int,
    batch_size: int = 100,
    grad_clip: float = 5.0,
    accelerator: str = "cpu",
    progress_bar: bool = False,
    logger: pl.loggers.Logger | bool = False,
    generator: torch.Generator | None = None,
    normalize: str = "rank",
) -> pl.Trainer:
    """Train (warm start: the controller keeps its weights across calls) for ``epochs`` epochs.

    Scores (higher is better) are normalised over the current pool: ``rank`` (quantiles, the
    default) or ``minmax`` (NAO's). Accuracy-like scores bunch near the top, where min-max puts them
    on the flat end of the predictor's sigmoid; ranks spread them evenly (see README, controller quality).
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"fit_controller: epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    with _quiet_lightning():
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator=accelerator,
            devices=1,
            gradient_clip_val=grad_clip,
            logger=logger,
            enable_checkpointing=False,
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=1,
        )
        trainer.fit(controller, controller_dataloader(archs, scores, batch_size, generator, normalize))
    return trainer
