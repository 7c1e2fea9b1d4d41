"""Fit the controller on a pool of (architecture, score) pairs with a Lightning Trainer."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import pytorch_lightning as pl
import torch

from naolit.controller.data import NORMALIZERS, controller_dataloader
from naolit.controller.module import NAOController
from naolit.faults import NonFiniteError


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
    steps: int,
    batch_size: int = 100,
    grad_clip: float = 5.0,
    normalize: str = "rank",
    unlabelled: int = 0,
    accelerator: str = "cpu",
    progress_bar: bool = False,
    logger: pl.loggers.Logger | bool = False,
    generator: torch.Generator | None = None,
) -> pl.Trainer:
    """Train (warm start: the controller keeps its weights across calls) for ``steps`` optimizer steps
    (batches of ``batch_size``), whatever the pool's size: the cost of a fit does not grow with the pool.

    Scores (higher is better) are normalised over the current pool: ``rank`` (quantiles, the
    default) or ``minmax`` (NAO's). Accuracy-like scores bunch near the top, where min-max puts them
    on the flat end of the predictor's sigmoid; ranks spread them evenly (see README, controller quality).

    With ``unlabelled`` > 0 (SemiNAS, Luo et al. 2020), that many random architectures not in ``archs``
    are then labelled by the predictor just trained, and the controller trains ``steps`` more on the
    labelled and the pseudo-labelled ones together: the encoder and decoder see far more of the space
    than the few evaluated architectures.

    A diverged controller raises ``NonFiniteError``: a non-finite loss at the step it appears
    (``NAOController.training_step``), a collapsed predictor after training (``check_predictor``).
    """
    check_fit_settings({"steps": steps, "batch_size": batch_size, "grad_clip": grad_clip, "normalize": normalize,
                        "unlabelled": unlabelled})
    targets = NORMALIZERS[normalize](scores.float())
    trainer = _train(controller, archs, targets, steps, batch_size, grad_clip, accelerator, progress_bar, logger,
                     generator)
    if unlabelled:
        space = controller.space
        extra = space.sample_new(unlabelled, {tuple(a) for a in space.canonicalize(archs).tolist()},
                                 generator)
        extra = torch.tensor(extra, dtype=torch.long).reshape(-1, archs.shape[1])
        pseudo = controller.predict_scores(extra)
        trainer = _train(controller, torch.cat([archs.long(), extra]), torch.cat([targets, pseudo]), steps,
                         batch_size, grad_clip, accelerator, progress_bar, logger, generator)
    check_predictor(controller, archs, scores)
    return trainer


def _train(controller: NAOController, archs: torch.Tensor, targets: torch.Tensor, steps: int, batch_size: int,
           grad_clip: float, accelerator: str, progress_bar: bool, logger: pl.loggers.Logger | bool,
           generator: torch.Generator | None) -> pl.Trainer:
    """``steps`` optimizer steps on (archs, normalised targets), cycling through shuffled batches."""
    with _quiet_lightning():
        trainer = pl.Trainer(
            max_steps=steps,
            max_epochs=-1,
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
        trainer.fit(controller, controller_dataloader(archs, targets, batch_size, generator))
    return trainer


def check_fit_settings(fit: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first bad ``controller.fit`` setting among those ``fit`` holds (a strategy
    checks them when it is built, before the search starts)."""
    for name in ("steps", "batch_size"):
        if name in fit and fit[name] < 1:
            raise ValueError(f"controller.fit: {name} must be >= 1, got {fit[name]}")
    if "unlabelled" in fit and fit["unlabelled"] < 0:
        raise ValueError(f"controller.fit: unlabelled must be >= 0, got {fit['unlabelled']}")
    if "grad_clip" in fit and not fit["grad_clip"] > 0:
        raise ValueError(f"controller.fit: grad_clip must be > 0, got {fit['grad_clip']}")
    if "normalize" in fit and fit["normalize"] not in NORMALIZERS:
        raise ValueError(f"controller.fit: normalize must be one of {sorted(NORMALIZERS)}, got {fit['normalize']!r}")


def check_predictor(controller: NAOController, archs: torch.Tensor, scores: torch.Tensor) -> None:
    """Raise NonFiniteError if the predictor's outputs on its training pool are not finite, or are all
    equal while the scores are not: a predictor saturated or dead after a divergence, or shrunk to a
    constant by too strong a weight decay (its ranking quality, Kendall tau, is then undefined, and
    NAO's gradient steps are zero)."""
    predicted = controller.predict_scores(archs)
    lower_lr = f"lower controller.model.lr (now {controller.hparams.lr:g})"
    if not torch.isfinite(predicted).all():
        bad = predicted[~torch.isfinite(predicted)][0].item()
        raise NonFiniteError(f"the controller predicts {bad} for an architecture of its training pool: the "
                             f"controller diverged; {lower_lr}")
    if len(predicted) > 1 and (predicted == predicted[0]).all() and (scores != scores[0]).any():
        raise NonFiniteError(f"the controller's Kendall tau on its training pool is nan: its predictor gives all "
                             f"{len(predicted)} architectures the same score {predicted[0].item():g}; it diverged or "
                             f"collapsed to a constant: {lower_lr} or controller.model.weight_decay (now "
                             f"{controller.hparams.weight_decay:g})")
