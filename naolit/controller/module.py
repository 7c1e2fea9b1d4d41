"""The NAO controller as a LightningModule: encoder, predictor and decoder trained jointly."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from naolit.controller.decoder import Decoder
from naolit.controller.encoder import Encoder, embed
from naolit.controller.predictor import Predictor
from naolit.faults import NonFiniteError
from naolit.modes import eval_mode
from naolit.spaces import SearchSpace


class NAOController(pl.LightningModule):
    """Trains on (architecture tokens, normalised score) batches with
    loss = trade_off * MSE(predictor) + (1 - trade_off) * NLL(decoder).

    Branch-swap (or whatever the space defines) augmentation is applied on the fly to each batch.
    """

    def __init__(
        self,
        space: SearchSpace,
        embedding_size: int = 48,
        hidden_size: int = 96,
        encoder_layers: int = 1,
        dropout: float = 0.1,
        predictor_hidden_size: int = 200,
        predictor_layers: int = 3,
        predictor_dropout: float = 0.1,
        trade_off: float = 0.8,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        augment: bool = True,
    ):
        super().__init__()
        if not 0.0 <= trade_off <= 1.0:
            raise ValueError(f"controller: trade_off must be in [0, 1], got {trade_off}")
        for name, value in [("embedding_size", embedding_size), ("hidden_size", hidden_size),
                            ("encoder_layers", encoder_layers), ("predictor_hidden_size", predictor_hidden_size)]:
            if value < 1:
                raise ValueError(f"controller: {name} must be >= 1, got {value}")
        self.save_hyperparameters(ignore=["space"])
        self.space = space
        self.encoder = Encoder(space.vocab_size, space.tokens_per_step, embedding_size, hidden_size,
                               encoder_layers, dropout)
        self.predictor = Predictor(hidden_size, predictor_hidden_size, predictor_layers, predictor_dropout)
        self.decoder = Decoder(space.allowed, embedding_size, hidden_size, dropout)

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(step outputs, architecture embedding) of a token batch."""
        step_outputs = self.encoder(tokens)
        return step_outputs, embed(step_outputs)

    def losses(self, tokens: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        step_outputs, embedding = self.encode(tokens)
        mse = F.mse_loss(self.predictor(embedding), targets)
        log_probs = self.decoder(step_outputs, embedding, tokens)
        nll = F.nll_loss(log_probs.flatten(0, 1), tokens.flatten())
        trade_off = self.hparams.trade_off
        return {"loss": trade_off * mse + (1 - trade_off) * nll, "mse": mse, "nll": nll}

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        tokens, targets = batch
        if self.hparams.augment:
            tokens = self.space.augment(tokens)
        losses = self.losses(tokens, targets)
        if not torch.isfinite(losses["loss"]):
            raise NonFiniteError(f"the controller's training loss is {losses['loss'].item()} (step "
                                 f"{self.global_step}): it diverged; lower controller.model.lr (now "
                                 f"{self.hparams.lr:g}) or controller.fit.grad_clip")
        self.log_dict({f"controller/{k}": v for k, v in losses.items()}, on_step=False, on_epoch=True,
                      batch_size=tokens.shape[0])
        return losses["loss"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # The fused kernel is several times faster than the per-parameter loop, on CPU and GPU alike.
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                                fused=True)

    @torch.no_grad()
    def predict_scores(self, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Predicted normalised scores of a token batch (evaluation mode)."""
        with eval_mode(self):
            return torch.cat([self.predictor(self.encode(chunk.to(self.device))[1]).cpu()
                              for chunk in tokens.split(batch_size)])

    @torch.no_grad()
    def reconstruct(self, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Decode(encode(tokens)): how well the decoder recovers each architecture."""
        with eval_mode(self):
            return torch.cat([self.decoder.decode(*self.encode(chunk.to(self.device))).cpu()
                              for chunk in tokens.split(batch_size)])
