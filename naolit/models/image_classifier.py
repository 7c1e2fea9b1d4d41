"""Final training of a fixed CNN cell on CIFAR: the NAO/DARTS recipe as a LightningModule."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from naolit.models.cnn import NASNetwork, count_flops, count_parameters
from naolit.spaces.cnn import CNNCellSpace

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


class ImageClassifier(pl.LightningModule):
    """The 3N+2-cell network of ``arch`` (a name of ``space.named_genotypes()`` or a genotype .json file).

    Loss: cross-entropy, plus ``auxiliary_weight`` times the auxiliary head's when ``auxiliary``.
    Drop-path rises linearly from 0 at the first epoch towards ``drop_path_prob`` at the last.
    SGD with momentum; the learning rate follows a cosine from ``lr`` to ``min_lr`` over
    ``trainer.max_epochs``, stepped once per epoch. Gradient clipping is the Trainer's
    (``gradient_clip_val``). At fit start the parameter count (auxiliary head excluded) and FLOPs are
    logged, and the genotype is written to the run folder (``trainer.default_root_dir``) as
    ``genotype.json`` and ``genotype.png``.
    """

    def __init__(self, space: CNNCellSpace, arch: str | Path, num_classes: int, layers: int = 5, channels: int = 36,
                 auxiliary: bool = True, auxiliary_weight: float = 0.4, drop_path_prob: float = 0.2,
                 lr: float = 0.025, min_lr: float = 0.0, momentum: float = 0.9, weight_decay: float = 3e-4):
        super().__init__()
        if auxiliary_weight < 0:
            raise ValueError(f"image classifier: auxiliary_weight must be >= 0, got {auxiliary_weight}")
        if not 0.0 <= drop_path_prob < 1.0:
            raise ValueError(f"image classifier: drop_path_prob must be in [0, 1), got {drop_path_prob}")
        if not 0.0 <= min_lr <= lr:
            raise ValueError(f"image classifier: need 0 <= min_lr <= lr, got min_lr={min_lr}, lr={lr}")
        self.save_hyperparameters(ignore=["space"])
        self.space = space
        self.arch = space.resolve(arch)
        self.net = NASNetwork(space, self.arch, num_classes, layers, channels, auxiliary=auxiliary)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits of a (B, 3, H, W) image batch."""
        return self.net(images)[0]

    def on_fit_start(self) -> None:
        params, flops = count_parameters(self.net), count_flops(self.net)
        log.info("%s: %.3fM parameters (auxiliary head excluded), %.1fM FLOPs per image",
                 self.hparams.arch, params / 1e6, flops / 1e6)
        for logger in self.loggers:
            logger.log_metrics({"model/params": params, "model/flops": flops}, step=0)
        if self.trainer.is_global_zero:
            self.space.export(self.arch, Path(self.trainer.default_root_dir) / "genotype")

    def on_train_epoch_start(self) -> None:
        self.net.drop_path_prob = self.hparams.drop_path_prob * self.current_epoch / self.trainer.max_epochs
        self.log("train/drop_path_prob", self.net.drop_path_prob, on_step=False, on_epoch=True)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits, aux_logits = self.net(images)
        loss = F.cross_entropy(logits, labels)
        if aux_logits is not None:
            loss = loss + self.hparams.auxiliary_weight * F.cross_entropy(aux_logits, labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(labels))
        self.log("train/acc", accuracy, on_step=False, on_epoch=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: Batch, stage: str) -> None:
        # Batch means weighted by batch size: the epoch values are exact over the whole split.
        images, labels = batch
        logits = self(images)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        self.log_dict({f"{stage}/loss": F.cross_entropy(logits, labels), f"{stage}/acc": accuracy,
                       f"{stage}/error": 1.0 - accuracy},
                      prog_bar=stage == "val", on_epoch=True, batch_size=len(labels), sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        epochs = self.trainer.max_epochs
        if epochs is None or epochs < 1:
            raise ValueError(f"image classifier: the cosine schedule needs trainer.max_epochs >= 1, got {epochs}")
        optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=self.hparams.momentum,
                                    weight_decay=self.hparams.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=self.hparams.min_lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
