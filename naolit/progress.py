"""A progress bar that knows how long an epoch of variable-length windows is, and how long the run is."""

from __future__ import annotations

import math
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

from naolit.search import SearchCallback


class EpochProgressBar(TQDMProgressBar):
    """Lightning's bar, with two additions.

    - A training loader without a length (AWD-LSTM's variable bptt windows) still gets a total: the
      datamodule's ``num_train_batches(epoch)``, the exact count of this epoch's windows.
    - The postfix shows the whole run's ETA (``run_eta``): the remaining epochs at the mean wall time of
      the finished ones (validation included), plus, in a weight-sharing search, the remaining search
      rounds at the mean time of the rounds done so far. Before the first round there is no such
      time, and the ETA, training alone, is shown as a lower bound (``>=``).
    """

    def __init__(self, refresh_rate: int = 1, leave: bool = False):
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self._fit_start = self._last_epoch_end = 0.0
        self._start_epoch = 0

    @property
    def total_train_batches(self) -> int | float:
        total = super().total_train_batches
        counter = getattr(self.trainer.datamodule, "num_train_batches", None)
        if math.isinf(total) and counter is not None:
            return counter(self.trainer.current_epoch)
        return total

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._fit_start = self._last_epoch_end = time.monotonic()
        self._start_epoch = trainer.current_epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        if trainer.current_epoch > self._start_epoch:  # the previous epoch, its search round included, is over
            self._last_epoch_end = time.monotonic()

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        eta = self.run_eta(trainer)
        if eta is not None:
            seconds, complete = eta
            clock = time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 else f"{seconds / 86400:.1f}d"
            metrics["run_eta"] = clock if complete else f">={clock}"
        return metrics

    def run_eta(self, trainer: pl.Trainer) -> tuple[float, bool] | None:
        """Seconds left in the run and whether they include every part of it (None before an epoch ends)."""
        done = trainer.current_epoch - self._start_epoch
        if done <= 0 or not trainer.max_epochs or trainer.max_epochs < 0:
            return None
        search = next((c for c in trainer.callbacks if isinstance(c, SearchCallback)), None)
        rounds_seconds = sum(search.round_seconds) if search else 0.0
        per_epoch = (self._last_epoch_end - self._fit_start - rounds_seconds) / done
        seconds = per_epoch * (trainer.max_epochs - trainer.current_epoch) - (time.monotonic() - self._last_epoch_end)
        rounds_left = search.rounds_in(range(trainer.current_epoch, trainer.max_epochs)) if search else 0
        if rounds_left and not search.round_seconds:
            return max(seconds, 0.0), False
        if rounds_left:
            seconds += rounds_left * rounds_seconds / len(search.round_seconds)
        return max(seconds, 0.0), True
