"""Non-finite values (NaN, inf): the one error they raise, and the check every Lightning training runs.

The policy, for every evaluator, the controller and every training loss: a non-finite value is
detected where it appears and raised as ``NonFiniteError``, naming what it was, the architecture
and the search round where known. The job stops; its last good state is the one written before the
value appeared (a tabular search's ``search_state.pt``, a Lightning job's last checkpoint), and
``train.py`` exits with status 1. Only an architecture's score may instead be recorded as a failure
while the search goes on (``search.on_nonfinite=skip``, see ``SearchLoop``); a non-finite value never
enters a pool, a sort or an export.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch


class NonFiniteError(FloatingPointError):
    """A NaN or infinite score or loss. ``round`` (the search round) is filled in by the search loop
    when the value appeared inside one; ``last_good`` (where the state to resume from is) by the job
    that stops."""

    def __init__(self, message: str, round: int | None = None):
        super().__init__(message)
        self.message, self.round = message, round
        self.last_good: str | None = None

    def __str__(self) -> str:
        text = self.message if self.round is None else f"search round {self.round}: {self.message}"
        return text if self.last_good is None else f"{text}\n{self.last_good}"


class NonFiniteGuard(pl.Callback):
    """Raises ``NonFiniteError`` at the first training step whose loss is not finite, naming the epoch,
    the step and the architecture the step trained (a supernet's ``last_train_arch``, a fixed
    network's ``arch``). When a ``NonFiniteError`` stops the run, from here or from a search round,
    names the last checkpoint written before it: the state to resume from."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if not isinstance(loss, torch.Tensor) or torch.isfinite(loss).all():
            return
        arch = getattr(pl_module, "last_train_arch", None) or getattr(pl_module, "arch", None)
        where = f" of architecture {pl_module.space.to_genotype(arch)}" if arch is not None else ""
        raise NonFiniteError(f"the training loss{where} is {loss.float().mean().item()} at epoch "
                             f"{trainer.current_epoch}, step {trainer.global_step}: the training diverged; lower the "
                             f"model's learning rate or gradient-norm clip (conf/model)")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        checkpoints = trainer.checkpoint_callback
        if not isinstance(exception, NonFiniteError) or exception.last_good is not None or checkpoints is None:
            return
        last = getattr(checkpoints, "last_model_path", "") or checkpoints.best_model_path
        exception.last_good = (f"The last good state is {last}: resume from it with ckpt_path={last} once the cause is "
                               f"fixed." if last else "No checkpoint was written before it: there is nothing to resume.")
