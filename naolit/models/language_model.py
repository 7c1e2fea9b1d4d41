"""Final training of one RNN cell as a word-level language model: NAO's PTB / WikiText-2 recipe,
which is AWD-LSTM's (SGD, then averaged SGD once validation stops improving)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel
from torchmetrics import MeanMetric

from naolit.models.rnn import RNNModel
from naolit.models.rnn_cell import lm_loss, sgd_step, start_state
from naolit.spaces import RNNCellSpace

log = logging.getLogger(__name__)


class RNNLanguageModel(pl.LightningModule):
    """The cell ``arch`` (a name from ``space.named_genotypes()`` or a genotype .json path) trained
    with truncated BPTT, its hidden state carried across the windows of an epoch.

    Optimisation (manual): SGD with weight decay, gradient norm clipped to ``clip``, the learning rate
    scaled by window length / ``bptt``. After each validation, AWD-LSTM's non-monotone trigger: once
    the validation loss is worse than the best one from more than ``nonmono`` validations ago, the
    parameters are averaged from then on (averaged SGD; the SGD steps themselves are unchanged, as
    torch's ASGD with t0=0, lambd=0 does), and validation and test use the average. The average and
    the validation history are part of the checkpoint, so a resumed run continues where it stopped.
    Logs train/loss, train/ppl, val/loss, val/ppl per epoch, train/asgd (1 once averaging), test/loss, test/ppl.
    At fit start the parameter count is logged and the cell is written to the run folder
    (``trainer.default_root_dir``) as ``genotype.json`` and ``genotype.png``.
    """

    def __init__(self, space: RNNCellSpace, arch: str | Path, vocab_size: int, hidden_size: int = 850,
                 lr: float = 20.0, clip: float = 0.25, weight_decay: float = 8e-7, tar: float = 1e-3,
                 dropout_output: float = 0.75, dropout_hidden: float = 0.25, dropout_x: float = 0.75,
                 dropout_input: float = 0.2, dropout_embedding: float = 0.0, init_range: float = 0.04,
                 bptt: int = 35, nonmono: int = 5):
        super().__init__()
        for name, value in [("lr", lr), ("clip", clip), ("bptt", bptt)]:
            if value <= 0:
                raise ValueError(f"RNNLanguageModel: {name} must be > 0, got {value}")
        if nonmono < 0:
            raise ValueError(f"RNNLanguageModel: nonmono must be >= 0, got {nonmono}")
        self.save_hyperparameters(ignore=["space"])
        self.automatic_optimization = False
        self.space, self.arch = space, space.resolve(arch)
        self.net = RNNModel(space, self.arch, vocab_size, hidden_size, dropout_output, dropout_hidden, dropout_x,
                            dropout_input, dropout_embedding, init_range)
        self.average = AveragedModel(self.net).requires_grad_(False)  # n_averaged == 0 until the switch
        self.val_losses: list[float] = []  # validation losses before the switch, for the trigger
        self.val_nll, self.test_nll = MeanMetric(), MeanMetric()
        self.hidden: Tensor | None = None  # carried between training windows
        self.eval_hidden: Tensor | None = None  # carried between validation (or test) windows

    @property
    def averaging(self) -> bool:
        """Whether the switch to averaged SGD has happened."""
        return bool(self.average.n_averaged > 0)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.net.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    # ---- training ---------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        params = sum(p.numel() for p in self.net.parameters())
        log.info("%s: %.2fM parameters", self.hparams.arch, params / 1e6)
        for logger in self.loggers:
            logger.log_metrics({"model/params": params}, step=0)
        if self.trainer.is_global_zero:
            self.space.export(self.arch, Path(self.trainer.default_root_dir) / "genotype")

    def on_train_epoch_start(self) -> None:
        self.hidden = None  # each epoch starts the streams anew

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, targets = batch
        outputs = self.net(inputs, start_state(self.hidden, self.net, inputs.size(1)))
        self.hidden = outputs[-1].detach()
        nll = self.net.nll(outputs, targets).mean()
        loss = lm_loss(nll, outputs, self.hparams.tar)
        sgd_step(self, loss, self.hparams.lr, self.hparams.clip, inputs.size(0), self.hparams.bptt)
        if self.averaging:
            self.average.update_parameters(self.net)
        self.log("train/loss", nll, prog_bar=True)
        self.log("train/ppl", nll.exp())
        return loss.detach()

    def switch_if_stalled(self, val_loss: float) -> None:
        """AWD-LSTM's trigger: start averaging when ``val_loss`` is worse than the best validation loss
        from more than ``nonmono`` validations ago; then remember ``val_loss``."""
        if self.averaging:
            return
        earlier = self.val_losses[: len(self.val_losses) - self.hparams.nonmono]
        if earlier and val_loss > min(earlier):
            self.average.update_parameters(self.net)
        self.val_losses.append(val_loss)

    # ---- evaluation -------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self.eval_hidden = None

    def on_test_epoch_start(self) -> None:
        self.eval_hidden = None

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_nll)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_nll)

    def on_validation_epoch_end(self) -> None:
        loss = self._log_epoch("val", self.val_nll)
        if not self.trainer.sanity_checking:
            self.switch_if_stalled(float(loss))
        self.log("train/asgd", float(self.averaging))

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_nll)

    def _evaluate(self, batch: tuple[Tensor, Tensor], metric: MeanMetric) -> None:
        inputs, targets = batch
        net = self.average.module if self.averaging else self.net
        outputs = net(inputs, start_state(self.eval_hidden, net, inputs.size(1)))
        self.eval_hidden = outputs[-1]
        metric.update(net.nll(outputs, targets).mean(), weight=targets.numel())

    def _log_epoch(self, split: str, metric: MeanMetric) -> Tensor:
        loss = metric.compute()  # token-weighted mean over the epoch (and over ranks)
        metric.reset()
        self.log(f"{split}/loss", loss)
        self.log(f"{split}/ppl", loss.exp(), prog_bar=True)
        return loss

    # ---- checkpoints ------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["val_losses"] = list(self.val_losses)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.val_losses = list(checkpoint["val_losses"])
